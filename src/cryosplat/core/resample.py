"""A map resampled onto another grid (another box, another voxel size) by trigonometric
interpolation, centre on centre.

Two maps of one molecule made by different programs, or one of them from particles downsampled
for speed, sample the same density on different grids. On the FFT-aligned grid of
:mod:`cryosplat.core.conventions` both hold the molecule's origin at voxel ``D // 2``, so voxel
``j`` of the output lies at ``(j - D_out // 2) · p_out`` Å from it, which is the input's fractional
voxel ``u = D_in // 2 + (j - D_out // 2) · p_out / p_in``.

The value there is the input's Fourier series evaluated at ``u`` (the interpolant that reproduces
every input voxel and holds no frequency the input does not), kept to the output's Nyquist
frequency so that a finer map is low-passed, not aliased, onto a coarser grid (a Fourier crop,
as ``relion_image_handler --rescale_angpix`` does, but at any ratio of voxel sizes and without
rounding the box). The series is separable, so each axis is one matrix product with the weights
of :func:`interpolation_weights`. Outside the input's box (a larger output extent) the output is
zero: the series would wrap the other side's edge in.
"""

from __future__ import annotations

import numpy as np

__all__ = ["interpolation_weights", "resample_volume"]


def interpolation_weights(
    box_in: int, positions: np.ndarray, cutoff_cycles: float | None = None
) -> np.ndarray:
    """Weights that evaluate a periodic sequence's Fourier series at fractional positions.

    Parameters
    ----------
    box_in : int
        Length ``N`` of the sequence.
    positions : np.ndarray, shape (M,)
        Where to evaluate it, in input samples (sample ``n`` at ``n``).
    cutoff_cycles : float, optional
        Keep frequencies of at most this many cycles per ``N`` samples (the one at the cutoff
        with half its weight, as the Nyquist term of an even ``N`` is split between ``±N/2``);
        default and at most ``N / 2``.

    Returns
    -------
    np.ndarray, shape (M, N), float64
        ``values_out = weights @ values_in``. Rows at integer positions, with no cutoff below
        ``N / 2``, are rows of the identity.
    """
    if box_in < 1:
        raise ValueError(f"box_in must be at least 1, got {box_in}")
    nyquist = box_in / 2
    cutoff = nyquist if cutoff_cycles is None else min(float(cutoff_cycles), nyquist)
    if not cutoff >= 0:
        raise ValueError(f"cutoff_cycles must be non-negative, got {cutoff_cycles}")
    k = np.arange(int(np.floor(cutoff + 1e-9)) + 1, dtype=np.float64)
    weight = np.where(np.abs(k - cutoff) < 1e-9, 0.5, 1.0)
    weight[0] = 1.0
    offset = np.asarray(positions, dtype=np.float64)[:, None] - np.arange(box_in)[None, :]
    total = np.full(offset.shape, weight[0])
    for cycles, w in zip(k[1:], weight[1:], strict=True):
        total += 2 * w * np.cos(2 * np.pi / box_in * cycles * offset)
    return total / box_in


def resample_volume(
    volume: np.ndarray, pixel_size_angstrom: float, box_out: int, pixel_out_angstrom: float
) -> np.ndarray:
    """A map resampled onto a cubic grid of ``box_out`` voxels of ``pixel_out_angstrom``,
    centre voxel on centre voxel (module docstring).

    Parameters
    ----------
    volume : np.ndarray, shape (Dz, Dy, Dx)
        Cubic, or not (a deposited map boxed around its model): each axis about its own centre
        voxel ``D_axis // 2``.
    pixel_size_angstrom : float
        The map's voxel size (Å).
    box_out : int
    pixel_out_angstrom : float
        The grid to resample onto.

    Returns
    -------
    np.ndarray, shape (box_out, box_out, box_out), float32
        Band-limited to the coarser of the two Nyquist frequencies; zero outside the map's box.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (Dz, Dy, Dx), got shape {volume.shape}")
    if not (pixel_size_angstrom > 0 and pixel_out_angstrom > 0):
        raise ValueError(
            f"voxel sizes must be positive, got {pixel_size_angstrom} and {pixel_out_angstrom}"
        )
    if box_out < 1:
        raise ValueError(f"box_out must be at least 1, got {box_out}")
    ratio = pixel_out_angstrom / pixel_size_angstrom
    weights = {n: _axis_weights(n, box_out, ratio) for n in set(volume.shape)}
    depth, rows, columns = volume.shape
    source = np.ascontiguousarray(volume, dtype=np.float32)
    # z, then y (one product per z plane), then x: each result already in its place, so no
    # transposed copy of the largest arrays is made.
    out = (weights[depth] @ source.reshape(depth, -1)).reshape(box_out, rows, columns)
    out = np.matmul(weights[rows], out)
    return np.matmul(out, weights[columns].T)


def _axis_weights(box_in: int, box_out: int, ratio: float) -> np.ndarray:
    """One axis's weights (box_out, box_in), float32: output voxel ``j`` at the input's
    ``box_in // 2 + (j − box_out // 2) · ratio``, zero outside the input."""
    positions = box_in // 2 + (np.arange(box_out) - box_out // 2) * ratio
    # The output's Nyquist (1 / 2 p_out) in cycles per input box: N p_in / (2 p_out).
    weights = interpolation_weights(box_in, positions, box_in / (2 * ratio))
    inside = (positions > -1e-6) & (positions < box_in - 1 + 1e-6)
    weights[~inside] = 0.0
    return weights.astype(np.float32)
