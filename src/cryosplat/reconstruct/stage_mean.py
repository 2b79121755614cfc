"""A half map made of the last two stages' fits: their mean where both were fitted.

The grid engine fits coarse to fine; the last stage starts from the one before, with the density
control's splits and prunes, and fits the frequencies its grid holds. The last two stages' fits of
one half set are two estimates of the same density from the same data that differ in the
arrangement of their Gaussians, and where the data are weak that arrangement is a visible part of
a fit's error (fits of the same data from different starts agree only to FSC 0.84–0.88 at the
0.5 crossing of the EMD-5625 benchmark set). So the half map takes, at the frequencies the
previous stage's grid holds, the mean of the two fits' maps, and above them the last fit alone:

    ``H(k) = M_S(k) + w(k) (M_{S−1}(k) − M_S(k)) / 2``

with ``w = 1`` up to :data:`TAPER_SHELLS` below the previous stage's Nyquist shell, falling as a
raised cosine to 0 at it. Each half's two fits were made of its own half set alone, so the half
maps stay independent; nothing is fitted again. Measured over 48 fits of 29 sets against the
last fit alone (``benchmarks/RESULTS.md``, round 2, session 18): the 0.5 crossing with the truth
1.4 % finer on average, none more than 0.1 % coarser, the 0.143 crossing 0.5 % finer. The mean
over all frequencies (the two models' Gaussians together) did as well at 0.5 but halved the last
fit's detail past the previous stage's Nyquist: the 0.143 crossing of EMD-1832 with another noise
spectrum 11.75 → 13.04 Å, 8ZPM's 0.5 crossing 1.5 % coarser.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cryosplat.validation.fsc import half_grid_shells

__all__ = ["TAPER_SHELLS", "band_weights", "mean_in_band"]

TAPER_SHELLS = 2.0
"""Width (shells) of the raised-cosine edge below the previous stage's Nyquist shell."""


def band_weights(n_shells: int, band_shells: float) -> torch.Tensor:
    """``w(k)`` for shells ``0 .. n_shells − 1``: 1 up to ``band_shells − TAPER_SHELLS``, a raised
    cosine down to 0 at ``band_shells``, 0 beyond. float64 (n_shells,)."""
    if not band_shells > 0:
        raise ValueError(f"band_shells must be positive, got {band_shells}")
    k = torch.arange(n_shells, dtype=torch.float64)
    edge = (k - (band_shells - TAPER_SHELLS)) / TAPER_SHELLS
    w = 0.5 * (1.0 + torch.cos(math.pi * edge.clamp(0.0, 1.0)))
    return torch.where(k >= band_shells, torch.zeros_like(w), w)


def mean_in_band(last: np.ndarray, previous: np.ndarray, band_shells: float, device=None):
    """The half map ``H`` of the module's formula from the last and the previous stage's maps.

    Parameters
    ----------
    last, previous : np.ndarray, shape (D, D, D)
        The two fits' maps on the full grid (same pixel size).
    band_shells : float
        The previous stage's Nyquist shell in shells of the full box (its box / 2).
    device : torch device of the transforms (the CPU by default).

    Returns
    -------
    np.ndarray, shape (D, D, D), float64.
    """
    if last.shape != previous.shape:
        raise ValueError(f"maps differ in shape: {last.shape} and {previous.shape}")
    box = last.shape[0]
    shells, _ = half_grid_shells(box, device)
    n = box // 2 + 2
    weights = (0.5 * band_weights(n, band_shells)).to(shells.device, torch.float32)
    # Only the correction is transformed, in single precision (as the maps are written): at
    # large boxes a few D³ grids, not a dozen.
    diff = torch.as_tensor(previous - last, dtype=torch.float32, device=shells.device)
    spectrum = torch.fft.rfftn(diff)
    del diff
    spectrum *= weights[shells.long().clamp_max(n - 1)]
    correction = torch.fft.irfftn(spectrum, s=last.shape).cpu().numpy()
    return np.asarray(last, dtype=np.float64) + correction
