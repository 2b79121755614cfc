"""The local Wiener weight of a map made from two independent half maps.

The map is the mean ``M = (A + B) / 2`` of two half maps fitted to independent half sets. Where
the molecule is, ``A`` and ``B`` agree: their local covariance ``S = ⟨A·B⟩`` estimates the local
signal power. In the solvent and at the edge of the box they hold independent errors:
``N = ⟨(A − B)²⟩ / 4`` estimates the local error power of ``M``. With both averaged over a
Gaussian window of ``σ`` voxels, ``w = S / (S + N)`` (0 where ``S ≤ 0``) is the Wiener filter of
``M`` in real space, voxel by voxel: it leaves the molecule as it is and takes out of the map
what the two halves do not share, as a soft solvent mask would, but estimated from the data with
no threshold, no dilation and no choice of edge.

The weight is applied to every frequency of ``M`` but its lowest shells
(:func:`apply_local_weight`, :data:`UNWEIGHTED_SHELLS`): there, at wavelengths of half the box and
more, the halves agree everywhere in the box, so the weight has no noise to take out; multiplied by
a weight that falls from the molecule's core to its edge, the envelope held by those shells was
bent instead (the first shell's FSC with the truth 0.002-0.004 lower on the beta-galactosidase and
EMD-1832 sets; benchmarks/RESULTS.md, round 2, session 28).

A mask (or this weight) made from both halves and applied to the half maps would make their FSC
dishonest; it is applied to ``M`` only, as RELION's post-processing applies its solvent mask to
the full map, and the half maps are left as fitted.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.fourier import squared_radius
from cryosplat.validation.masks import gaussian_smooth, soft_edge

__all__ = [
    "DEFAULT_SIGMA_PX",
    "MAX_AUTO_SIGMA_PX",
    "RESOLUTION_PER_SIGMA",
    "UNWEIGHTED_SHELLS",
    "UNWEIGHTED_TAPER_SHELLS",
    "apply_local_weight",
    "local_wiener_weight",
    "window_for_resolution",
]

# Measured on fifteen sets, two seeds each (benchmarks/RESULTS.md, round 2, session 8): FSC 0.5
# with the truth 1.8 % finer on average at 1.5 voxels (1.7 % at 2, 1.4 % at 3), and clear of the
# narrow windows' noisy averages (0.75 voxels made one fit 5 % coarser).
DEFAULT_SIGMA_PX = 1.5

# The window is at least a third of the resolution (in voxels): those fifteen sets resolve 3-4.5
# voxels, where 1.5 voxels is that. Data recorded at a finer pixel than their resolution needs
# (round 2, session 34: EMD-5625 at box 112, 2.115 Å/px, resolved at some 9 voxels) got a weight
# averaged over a fraction of a resolution element: noise, made of both halves, that cost the map
# (FSC with the truth 0.5 at 20.3 Å; 18.3 Å with 3 voxels) and carried each half's noise into the
# other's cross-validation (13.5 Å reported; 16.8 Å with 3 voxels).
RESOLUTION_PER_SIGMA = 3.0
# A window of ten voxels and more averages over much of a small molecule: views all within 10° of
# one axis ask 18.5 voxels of EMD-1832 at box 64 (its resolution 317 Å by the bound alone); at
# 4 its map is level with 1.5 (0.5 at 32.5 against 33.1 Å), as is beta-galactosidase at box 200
# (4.2 asked).
MAX_AUTO_SIGMA_PX = 4.0

# Shells (``round(|k|)`` in pixels of the box, 0 the mean) that :func:`apply_local_weight` leaves
# as they are. Measured on 35 benchmark sets (round 2, session 28; benchmarks/RESULTS.md): with
# shells 0-2 left unweighted the largest deficit of the first shells under the better peer 0.012
# -> 0.010 and its mean 0.0038 -> 0.0031, the 0.5 and 0.143 crossings within 0.11 % of before
# (mean -0.001 % and -0.008 %); with 0-1 0.012 and 0.0036, with 0-3 0.0097 and 0.0034.
UNWEIGHTED_SHELLS = 2
# Shells over which :func:`apply_local_weight` passes from the map's own coefficients to the
# weighted map's, a raised cosine from ``|k| = UNWEIGHTED_SHELLS + ½`` (round 2, session 35). A
# step there, between the map and the map times a weight of 0.77 on average, was smeared into
# the next shell by the soft sphere any FSC is taken in: on EMD-3197 padded to box 60 (window
# 2.69 voxels) shell 3 held 0.818 with the truth where the map had 0.839 and its product 0.835,
# 0.024 under relion's curve; with the taper 0.829. Over 43 sets: the largest deficit under the
# better peer 0.024 -> 0.017, no set's deficit larger, the crossings -0.01 % on average (the
# worst +0.04 %).
UNWEIGHTED_TAPER_SHELLS = 1.0


def window_for_resolution(resolution_angstrom: float, pixel_size_angstrom: float) -> float:
    """The weight's window (voxels) for a map of this resolution: a
    :data:`RESOLUTION_PER_SIGMA`-th of it in voxels, at least :data:`DEFAULT_SIGMA_PX` and at most
    :data:`MAX_AUTO_SIGMA_PX`; the default where the resolution is not finite (none vouched)."""
    if not pixel_size_angstrom > 0:
        raise ValueError(f"pixel_size_angstrom must be positive, got {pixel_size_angstrom}")
    if not np.isfinite(resolution_angstrom) or not resolution_angstrom > 0:
        return DEFAULT_SIGMA_PX
    sigma = resolution_angstrom / (RESOLUTION_PER_SIGMA * pixel_size_angstrom)
    return float(min(MAX_AUTO_SIGMA_PX, max(DEFAULT_SIGMA_PX, sigma)))


def local_wiener_weight(
    half_a: ArrayLike,
    half_b: ArrayLike,
    sigma_px: float = DEFAULT_SIGMA_PX,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """The weight ``w = S / (S + N)`` by which the mean of two half maps is multiplied.

    Parameters
    ----------
    half_a, half_b : array-like, shape (D, D, D)
        Half maps of independent half sets, same units.
    sigma_px : float
        Standard deviation (voxels) of the Gaussian window of the local averages.
    device : torch device, optional
        Where the transforms run (the CPU by default).

    Returns
    -------
    np.ndarray, shape (D, D, D), float32 in [0, 1]: 0 where the halves' local covariance is not
    positive (nothing they share), near 1 where their difference is small against it.
    """
    a = torch.as_tensor(np.asarray(half_a), dtype=torch.float32, device=device)
    b = torch.as_tensor(np.asarray(half_b), dtype=torch.float32, device=device)
    if a.shape != b.shape:
        raise ValueError(f"half maps differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
    signal = gaussian_smooth(a * b, sigma_px)
    noise = gaussian_smooth((a - b).square_(), sigma_px).mul_(0.25).clamp_min_(0.0)
    total = signal + noise
    weight = torch.where(
        (signal > 0) & (total > 0), signal / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0
    )
    return weight.clamp_(0.0, 1.0).cpu().numpy()


def apply_local_weight(
    volume: ArrayLike,
    weight: ArrayLike,
    unweighted_shells: int = UNWEIGHTED_SHELLS,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """``volume × weight`` at every frequency but the lowest shells, which keep ``volume``'s own.

    Parameters
    ----------
    volume : array-like, shape (D, D, D)
        A half map or the mean of two (the operation is linear: the mean of two weighted half
        maps is the weighted mean).
    weight : array-like, shape (D, D, D)
        E.g. :func:`local_wiener_weight` of the two half maps.
    unweighted_shells : int
        Shells ``round(|k|) ≤ unweighted_shells`` (pixels of the box; 0 is the map's mean) are
        taken from ``volume``, and the next :data:`UNWEIGHTED_TAPER_SHELLS` pass to the product
        through a raised cosine; negative: the plain product.
    device : torch device, optional
        Where the transforms run (the CPU by default).

    Returns
    -------
    np.ndarray, shape (D, D, D), the dtype of ``volume``.
    """
    v = torch.as_tensor(np.asarray(volume), device=device)
    w = torch.as_tensor(np.asarray(weight), dtype=v.dtype, device=v.device)
    if v.ndim != 3 or len(set(v.shape)) != 1 or w.shape != v.shape:
        raise ValueError(
            f"volume and weight must be cubes of one shape, got {tuple(v.shape)} and "
            f"{tuple(w.shape)}"
        )
    weighted = v * w
    if unweighted_shells >= 0:
        # The low shells of what the weight took away, put back: one transform each way.
        taken = torch.fft.rfftn(v - weighted)
        taken *= _restored_share(v.shape[0], unweighted_shells, v.device, taken.real.dtype)
        weighted += torch.fft.irfftn(taken, s=tuple(v.shape))
    return weighted.cpu().numpy()


def _restored_share(box: int, unweighted_shells: int, device, dtype) -> torch.Tensor:
    """Per point of the real-FFT half grid, the share of the map's own coefficient
    :func:`apply_local_weight` keeps: 1 to ``|k| = unweighted_shells + ½``, a raised cosine to 0
    over :data:`UNWEIGHTED_TAPER_SHELLS` shells (:func:`~cryosplat.validation.masks.soft_edge`),
    0 beyond."""
    radius = squared_radius(box, 3, half=True, centred=False, device=device, dtype=dtype).sqrt_()
    return soft_edge(radius - (unweighted_shells + 0.5), UNWEIGHTED_TAPER_SHELLS)
