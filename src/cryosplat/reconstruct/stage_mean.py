"""A half map made of the last stages' fits: at each frequency, the mean of those that hold it.

The grid engine fits coarse to fine; each stage starts from the one before, with the density
control's splits and prunes, and fits the frequencies its grid holds. The last stages' fits of one
half set are estimates of the same density from the same data that differ in the arrangement of
their Gaussians, and where the data are weak that arrangement is a visible part of a fit's error
(fits of the same data from different starts agree only to FSC 0.84–0.88 at the 0.5 crossing of
the EMD-5625 benchmark set). So the half map takes, at each frequency, the mean of the fits whose
stage grid holds it:

    ``H(k) = Σ_s w_s(k) M_s(k) / Σ_s w_s(k)``

over the last ``n`` stages, ``w = 1`` for the last and, for an earlier stage, 1 up to
:data:`TAPER_SHELLS` below its Nyquist shell, falling as a raised cosine to 0 at it. Each half's
fits were made of its own half set alone, so the half maps stay independent; nothing is fitted
again. Measured over 48 fits of 29 sets against the last fit alone (``benchmarks/RESULTS.md``,
round 2, session 18): the last two stages, the 0.5 crossing with the truth 1.40 % finer on
average, none more than 0.1 % coarser; the last three (the default), 1.59 %, the worst 0.12 %
coarser; the 0.143 crossing 0.5 % finer either way. The mean over all frequencies (the models'
Gaussians together) did as well at 0.5 but halved the last fit's detail past the previous stage's
Nyquist: the 0.143 crossing of EMD-1832 with another noise spectrum 11.75 → 13.04 Å, 8ZPM's 0.5
crossing 1.5 % coarser.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from cryosplat.validation.fsc import half_grid_shells
from cryosplat.validation.masks import soft_edge

__all__ = ["TAPER_SHELLS", "band_weights", "mean_of_stages"]

TAPER_SHELLS = 2.0
"""Width (shells) of the raised-cosine edge below an earlier stage's Nyquist shell."""


def band_weights(n_shells: int, band_shells: float) -> torch.Tensor:
    """``w(k)`` for shells ``0 .. n_shells − 1``: 1 up to ``band_shells − TAPER_SHELLS``, a raised
    cosine down to 0 at ``band_shells``, 0 beyond. float64 (n_shells,)."""
    if not band_shells > 0:
        raise ValueError(f"band_shells must be positive, got {band_shells}")
    k = torch.arange(n_shells, dtype=torch.float64)
    return soft_edge(k - (band_shells - TAPER_SHELLS), TAPER_SHELLS)


def mean_of_stages(
    last: np.ndarray,
    earlier: Sequence[tuple[np.ndarray, float]],
    device: torch.device | str | None = None,
) -> np.ndarray:
    """The half map ``H`` of the module's formula.

    Parameters
    ----------
    last : np.ndarray, shape (D, D, D)
        The last stage's map.
    earlier : sequence of (np.ndarray (D, D, D), float)
        Earlier stages' maps on the same grid, each with its stage's Nyquist shell in shells of
        the full box (its box / 2).
    device : torch device of the transforms (the CPU by default).

    Returns
    -------
    np.ndarray, shape (D, D, D), float64: ``last`` plus ``Σ_s c_s (M_s − last)``, ``c_s = w_s /
    (1 + Σ w)``; only the corrections are transformed, in single precision (as maps are written).
    """
    last = np.asarray(last, dtype=np.float64)
    if not earlier:
        return last
    box = last.shape[0]
    shells, _ = half_grid_shells(box, device)
    index = shells.long().clamp_max(box // 2 + 1)
    weights = [band_weights(box // 2 + 2, band) for _, band in earlier]
    total = 1.0 + sum(weights)
    spectrum = None
    for (volume, _), w in zip(earlier, weights, strict=True):
        if volume.shape != last.shape:
            raise ValueError(f"maps differ in shape: {last.shape} and {volume.shape}")
        diff = torch.as_tensor(volume - last, dtype=torch.float32, device=shells.device)
        term = torch.fft.rfftn(diff)
        del diff
        term *= (w / total).to(shells.device, torch.float32)[index]
        spectrum = term if spectrum is None else spectrum.add_(term)
        del term
    return last + torch.fft.irfftn(spectrum, s=last.shape).cpu().numpy()
