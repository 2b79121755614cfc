"""How many Gaussians a half model gets: the box's default, more where the data hold more.

The default number of Gaussians is a formula of the box (``cryosplat.reconstruct.run.
default_n_gaussians``: one per 40 voxels of a sphere of 0.4 of the box), chosen on sets at the
signal-to-noise ratios of the benchmarks (0.002–0.005). Where the data are much better measured,
that many Gaussians cannot hold what the data determine, and the model's representation error,
not the noise, limits the map: at SNR 0.05 the map's FSC with the truth fell 0.05–0.10 under a
direct inversion's at low and middle frequencies with the default count, and twice or three times
as many Gaussians removed that deficit (benchmarks/RESULTS.md, round 2 session 10).

The measure of what the data hold is the information in the shells where the signal exceeds the
noise: ``bits = Σ_k n_k log₂(1 + SSNR_k)`` over the shells with ``SSNR_k ≥ 1``, with ``n_k = 4πk²``
Fourier coefficients in shell ``k`` and ``SSNR_k = 2 FSC_k / (1 − FSC_k)`` the signal-to-noise ratio
of the full set from the FSC of the two halves' direct inversions (the prior's estimate too).
Shells under ``SSNR = 1`` are left out: there noise dominates, and a model's representation error
hides under it (an atom-based truth at low SNR holds many such shells, and more Gaussians did
not help it). A half model gets ``max(default, bits / BITS_PER_GAUSSIAN)`` Gaussians, at most
``MAX_FACTOR`` times the default and never more than ``GAUSSIANS_CAP`` unless the default is.
The grid engine fits the default in every stage but the last, whose model is grown to that count
by splitting its heaviest Gaussians (``density_control.grow_heaviest``): the coarse grids cannot
use more, and what more cost there is most of their time.

Chosen on 24 sets (benchmarks/RESULTS.md, round 2 session 10) with the count from the first
stage: 20 bits per Gaussian, every set at the benchmarks' signal-to-noise ratios keeping the
default. Since round 2, session 27 the count is grown in the last stage, at 10 bits per Gaussian:
on the sets this changes (those holding more than 10 bits per default Gaussian: EMD-5625 with
20,000 particles or SNR 0.015-0.05, the EMD-1832 sets, EMD-6824 and beta-galactosidase at high
SNR; 28 fits over two seeds) the 0.5 crossing is 0.3 % finer on average (the worst +0.8 %, but for
beta-galactosidase at box 48, whose curve, the same within 0.01, touches 0.5 at a dip and flips),
the 0.143 crossing 1.1 % finer (EMD-5625 3-7 %; the EMD-1832 sets -3.4 ... +4.5 %), and EMD-5625
at SNR 0.05 finer than cryoDRGN at 0.143 (10.47 against 10.72 Å; 11.28 Å with 20), in about the
same time: the coarse stages no longer carry them.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "BITS_PER_GAUSSIAN",
    "MAX_FACTOR",
    "GAUSSIANS_CAP",
    "MIN_SHELL_SSNR",
    "data_information_bits",
    "gaussians_for_data",
    "most_gaussians_for_data",
]

BITS_PER_GAUSSIAN = 10.0
"""Bits of the data's well-measured shells per Gaussian of the last stage (about one bit of each
of its ~10 free parameters; 20 until round 2, session 27, when every stage had that count)."""
MIN_SHELL_SSNR = 1.0
"""Shells whose full-set SSNR is under this hold no information a model's capacity could lose."""
MAX_FACTOR = 4.5
"""At most this many times the box's default. 3 until round 2, session 82, set when every stage
fitted the data's count; since only the last stage grows to it (session 27) that cap bound where
the data hold much (SNR 0.03-0.3, or 40,000 particles), which asked for 3.1 to over 10 times it.
On the 14 of 24 sets where 3 bound (``--datasets regimes,high_snr,capacity82``), at 4.5 the 0.143
crossing is finer on 9 (EMD-5625 at SNR 0.3 10.11 → 9.81 Å, from 40,000 particles 10.22 → 9.96
Å), level on 4 and 1 % coarser on one (finer on two other fit seeds), the 0.5 crossing within
the fit's seed-to-seed spread (−1.2 … +1.5 %); 6 and 10 moved no crossing by 0.1 Å more but
cost time where the count grew most (EMD-5625 at SNR 0.3: 2.86 × relion's full map at 3, 2.94 ×
at 4.5, 3.16 × at 6, alternated; benchmarks/RESULTS.md)."""
GAUSSIANS_CAP = 30_000
"""The most Gaussians per half that the box's default or the data ask for (a given
``--n-gaussians`` may be more)."""


def data_information_bits(half_fsc: ArrayLike) -> float:
    """``Σ n_k log₂(1 + SSNR_k)`` over the shells with ``SSNR_k ≥ MIN_SHELL_SSNR`` (bits).

    Parameters
    ----------
    half_fsc : array-like (K,)
        FSC of the two halves' direct inversions by shell, shell 0 first (e.g.
        :func:`cryosplat.reconstruct.grid.half_statistics.half_data_fsc`).
    """
    curve = np.nan_to_num(np.asarray(half_fsc, dtype=np.float64), nan=0.0)
    if curve.ndim != 1:
        raise ValueError(f"half_fsc must be one curve by shell, got shape {curve.shape}")
    fsc = np.clip(curve, 0.0, 0.999)
    ssnr = 2.0 * fsc / (1.0 - fsc)
    shells = np.arange(len(fsc), dtype=np.float64)
    coefficients = np.maximum(4.0 * math.pi * shells**2, 1.0)
    kept = ssnr >= MIN_SHELL_SSNR
    return float((coefficients * np.log2(1.0 + ssnr))[kept].sum())


def most_gaussians_for_data(default: int) -> int:
    """The most :func:`gaussians_for_data` can give for this default (what memory is planned for)."""
    return max(default, min(GAUSSIANS_CAP, int(MAX_FACTOR * default)))


def gaussians_for_data(default: int, half_fsc: ArrayLike) -> tuple[int, float]:
    """Gaussians per half model for data with this half-set FSC, and the bits they hold.

    ``max(default, bits / BITS_PER_GAUSSIAN)`` rounded to hundreds, at most
    :func:`most_gaussians_for_data`.
    """
    if default < 1:
        raise ValueError(f"default must be a positive number of Gaussians, got {default}")
    bits = data_information_bits(half_fsc)
    wanted = int(round(bits / BITS_PER_GAUSSIAN, -2))
    return min(most_gaussians_for_data(default), max(default, wanted)), bits
