"""Which Fourier samples of the map the data hold at all: a missing cone or wedge, shell by shell.

Every view samples a central plane of the map's transform. Where no view's plane passes (views
that all lie within ``θ`` of one axis leave every frequency more than ``θ`` from the plane
normal to it unsampled, a tilt limit a cone about that axis) the summed CTF² ``W`` is zero, and
what a map holds there is its model's alone. The cross-validated resolution
(:mod:`cryosplat.validation.crossval`) compares the map with data, which are zero there too, so it
estimates the map's correlation with the truth over the sampled frequencies only; the map's FSC
with the truth over the whole shell is that times ``sqrt(f)`` where the map correlates with
nothing in the unsampled part and the truth's power is even over directions, ``f`` the sampled
share of the shell (the share of the truth's power that the comparison sees).

``f`` is read from ``W`` itself, not from the data's noisy power: a frequency is sampled where its
``W`` exceeds :data:`UNSAMPLED_WEIGHT` of its shell's mean (trilinear insertion spreads each
plane over about one voxel of the padded grid, which the threshold counts as sampled); frequencies
past the statistics' own limit are left out. Measured (round 2, session 33) on the statistics of
35 benchmark sets, both halves together: every view within 10° of one axis 0.16-0.47 by shell
(``sin 10° = 0.17``, and the spread), no view past 60° and 70° of tilt 0.86 and 0.94 at least
(cones of 30° and 20°: ``cos 30° = 0.87``, ``cos 20° = 0.94``), 95 % of the views within 15° of
an axis and the rest uniform 0.85 at least (the few other views leave some high-shell samples
empty), every other set 0.985 or more. The reported resolution moved on those four sets only
(``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cryosplat.core.fourier import squared_radius
from cryosplat.validation.fsc import half_grid_shells

__all__ = ["UNSAMPLED_WEIGHT", "SampledFrequencies", "sampled_frequencies"]

# A frequency whose summed CTF² is under this share of its shell's mean holds nothing (module
# docstring): 10⁻³, far under what views spread unevenly give (the sparse directions of 95 % of
# the views within 15° of an axis hold 1-5 % of the mean) and far over rounding.
UNSAMPLED_WEIGHT = 1e-3


@dataclass(frozen=True)
class SampledFrequencies:
    """Which frequencies of a map of box ``D`` the data sample at all.

    Attributes
    ----------
    relative_weight : torch.Tensor, float32, shape (D, D, D//2 + 1)
        ``W`` over its shell's mean, on the uncentred real-FFT half grid of the map
        (``torch.fft.rfftn``'s layout); 0 past the statistics' own limit (the data hold nothing
        there either) and in shells whose mean is zero.
    share : np.ndarray, shape (D//2 + 1,)
        Per shell, the share of its frequencies within the statistics' limit that are sampled
        (``relative_weight`` above the threshold); 1 where none is within it or the shell's mean
        ``W`` is zero (nothing to compare).
    """

    relative_weight: torch.Tensor
    share: np.ndarray

    def mask(self, threshold: float = UNSAMPLED_WEIGHT) -> torch.Tensor:
        """Bool (D, D, D//2 + 1): the frequencies whose ``W`` exceeds ``threshold`` times its
        shell's mean (by default: those some view samples at all)."""
        return self.relative_weight > threshold


def sampled_frequencies(
    weights: Sequence[torch.Tensor],
    box: int,
    pad: int,
    max_radius: float | None = None,
    threshold: float = UNSAMPLED_WEIGHT,
) -> SampledFrequencies:
    """The frequencies of the ``box`` grid that the data sample, and their share per shell.

    Parameters
    ----------
    weights : sequence of torch.Tensor, each of shape (P, P, P//2 + 1)
        Summed CTF² ``W`` of disjoint particle sets (added), on the padded half grid of
        :mod:`cryosplat.core.fourier_slice` (``P = pad · box``; ``z`` and ``y`` centred).
    box : int
        Even map box ``D``; its frequencies are the padded grid's points at multiples of ``pad``.
    pad : int
    max_radius : float, optional
        The radius (in frequencies of the ``box`` grid) past which nothing was gathered
        (``FourierStatistics.max_radius``): unsampled in the mask, left out of the shares (the
        statistics' own limit, not the views'). Default: every frequency of the shells.
    threshold : float
        A frequency is sampled where ``W`` exceeds this share of its shell's mean.
    """
    size = pad * box
    if not weights:
        raise ValueError("no weights given")
    for grid in weights:
        if box % 2 or grid.shape != (size, size, size // 2 + 1):
            raise ValueError(
                f"weights of shape {tuple(grid.shape)} are not the padded half grid of an even "
                f"box {box} with pad {pad}"
            )
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    # On the map's uncentred half grid, in single precision and int32 (at box 256 each grid is
    # 34 MB; the shell index is the one every FSC shares).
    w = sum(grid[::pad, ::pad, ::pad].float().cpu() for grid in weights)
    w = torch.fft.ifftshift(w, dim=(0, 1))  # centred z, y → the rfftn layout
    shells = half_grid_shells(box)[0]
    n = box // 2 + 1
    inside = shells < n
    if max_radius is not None:
        r2 = squared_radius(box, 3, half=True, centred=False, dtype=torch.int32)
        inside &= r2 <= max_radius**2
        del r2
    index = shells[inside].long()
    values = w[inside].double()
    count = torch.bincount(index, minlength=n).double()
    mean = torch.bincount(index, weights=values, minlength=n) / count.clamp_min(1)
    held = torch.bincount(index[values > threshold * mean[index]], minlength=n).double()
    share = torch.where(mean > 0, held / count.clamp_min(1), torch.ones_like(mean))
    scale = torch.where(mean > 0, 1.0 / mean.clamp_min(1e-300), 0.0).float()
    relative = torch.zeros_like(w)
    relative[inside] = w[inside] * scale[index]
    return SampledFrequencies(relative, share.numpy())
