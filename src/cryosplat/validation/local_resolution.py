"""Local resolution: the FSC of the map's halves read in small windows across the molecule.

The map's resolution (:mod:`cryosplat.validation.crossval`) is one number for the box; a flexible
domain or a disordered surface is resolved worse than a rigid core. Around each of a grid of
centres ``R`` voxels apart that lie in the molecule (the automatic mask), the two halves of the
written map, before their local Wiener weight (a weight made from both halves would couple them;
with it every set below read 0-3 % finer), are cut into a box of ``2 (R + edge) + 2`` voxels and
multiplied by its soft sphere of radius ``R``; where their FSC falls below 0.143 is the window's resolution, as
``relion_postprocess --locres`` and cryoSPARC read half maps. Under independent errors that is
where the map correlates with the truth by 0.5 (``C_map = sqrt(2 F / (1 + F))``), the global
estimate's criterion, read in the window.

The halves are fitted to independent halves of the data but share the model's form, so their FSC
can run ahead of the truth where they share errors; the whole map's resolution is therefore the
cross-validated one, and the windows say where the map is better or worse than elsewhere.
Measured against the truth's FSC with the map in the same windows (round 2, session 61,
``benchmarks/RESULTS.md``): on eight sets (three atom truths, five real maps, two of them with a
part present in 60 % of the particles) the median window reads 0-15 % finer than the truth's,
and the windows' order follows the truth's (rank correlation 0.76 where the atoms' B-factors
rise across the molecule). Scaling every window by the whole map's cross-validated resolution
over its halves' was measured and not kept (``RESULTS.md``: it corrects some sets and overshoots
others by as much).

The values at the centres are spread to every voxel by trilinear interpolation, centres outside
the molecule taking their read neighbours' values, ring by ring outwards: ``local_resolution.mrc`` (Å), which
ChimeraX colours a surface by (``color sample #1 map #2 palette ...``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cryosplat.validation.fsc import (
    cross_power,
    half_grid_shells,
    power,
    resolution_at,
)
from cryosplat.validation.masks import spherical_mask

__all__ = [
    "LOCAL_THRESHOLD",
    "LocalResolution",
    "WINDOW_EDGE_PX",
    "local_resolution",
    "window_box",
    "window_fscs",
    "window_radius_px",
]

LOCAL_THRESHOLD = 0.143
"""The halves' FSC read in each window (the map's FSC with the truth 0.5 under independent
errors)."""
WINDOW_EDGE_PX = 3.0
"""Width (voxels) of each window's raised-cosine edge."""
WINDOW_RESOLUTIONS = 4.0
"""A window's radius, in the map's resolution (3 and 5 read the same on the sets measured)."""
MIN_WINDOW_RADIUS_PX = 8.0
"""The smallest window radius (voxels): a window box of 24, 12 shells."""
BATCH_VOXELS = 1 << 23
"""Voxels of the windows transformed at once (in single precision, a half's windows and their
transform ~0.1 GB; the shell sums in double)."""


def window_radius_px(resolution_angstrom: float, pixel_size_angstrom: float, box: int) -> float:
    """The windows' radius (voxels) for a map at ``resolution_angstrom``: :data:`WINDOW_RESOLUTIONS`
    times it, at least :data:`MIN_WINDOW_RADIUS_PX`, at most a quarter of the box."""
    radius = WINDOW_RESOLUTIONS * resolution_angstrom / pixel_size_angstrom
    if not math.isfinite(radius):
        radius = box / 4
    return float(min(max(radius, MIN_WINDOW_RADIUS_PX), box / 4))


def window_box(radius_px: float) -> int:
    """The box (voxels, even) a window of ``radius_px`` is cut into: its sphere, its edge and a
    voxel either side."""
    return 2 * int(math.ceil(radius_px + WINDOW_EDGE_PX)) + 2


@dataclass
class LocalResolution:
    """Local resolutions: per window centre, and spread over the box.

    Attributes
    ----------
    centres_px : np.ndarray, shape (M, 3), int
        Voxel indices (z, y, x) of the windows read.
    resolution_angstrom : np.ndarray, shape (M,)
        Each window's resolution (Å); a window whose halves share nothing reads its own box.
    volume : np.ndarray, shape (D, D, D), float32
        The resolution at every voxel (Å).
    radius_px : float
        The windows' radius.
    no_reading : np.ndarray, shape (M,), bool
        The windows whose halves share nothing (under the threshold from the zero frequency
        on: solvent, or the molecule's faint edge); their value is their box.
    """

    centres_px: np.ndarray
    resolution_angstrom: np.ndarray
    volume: np.ndarray
    radius_px: float
    no_reading: np.ndarray

    def _inside(self, mask: np.ndarray) -> np.ndarray:
        """The windows centred where ``mask > 0.5`` (all where none is)."""
        inside = np.asarray(mask)[tuple(self.centres_px.T)] > 0.5
        return inside if inside.any() else np.ones_like(inside)

    def without_reading(self, mask: np.ndarray) -> tuple[int, int]:
        """``(windows that read no resolution, windows)`` centred where ``mask > 0.5``."""
        inside = self._inside(mask)
        return int((inside & self.no_reading).sum()), int(inside.sum())

    def percentiles(self, mask: np.ndarray, q=(5.0, 50.0, 95.0)) -> tuple[float, ...]:
        """Percentiles ``q`` (Å) of the windows centred where ``mask > 0.5`` (all where none)
        that read a resolution (a window that reads none holds its box, which is no resolution
        of the map's; :meth:`without_reading` counts them). NaN where there are none."""
        inside = self._inside(mask)
        values = self.resolution_angstrom[inside & ~self.no_reading]
        if values.size == 0:
            return tuple(float("nan") for _ in q)
        return tuple(float(v) for v in np.percentile(values, q))


def _cut_window(volume: torch.Tensor, centre: np.ndarray, size: int) -> torch.Tensor:
    """The ``size``³ block of ``volume`` whose voxel ``size // 2`` is ``centre`` (zero outside)."""
    box = volume.shape[0]
    out = volume.new_zeros((size, size, size))
    lo = centre - size // 2
    src = [slice(max(0, a), min(box, a + size)) for a in lo]
    dst = [slice(s.start - a, s.stop - a) for s, a in zip(src, lo, strict=True)]
    out[dst[0], dst[1], dst[2]] = volume[src[0], src[1], src[2]]
    return out


def _centres(mask: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """The grid of centres (every ``spacing`` voxels, on voxel ``D // 2``), shape (n, n, n, 3),
    and which of them to read, (n, n, n) bool: those within half a spacing of the mask."""
    box = mask.shape[0]
    step = max(1, int(round(spacing)))
    axis = np.arange((box // 2) % step, box, step)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)
    inside = torch.as_tensor(np.asarray(mask) > 0.5, dtype=torch.float32)[None, None]
    reach = int(math.ceil(spacing / 2))
    near = inside
    for axis_kernel in ((2 * reach + 1, 1, 1), (1, 2 * reach + 1, 1), (1, 1, 2 * reach + 1)):
        padding = tuple(k // 2 for k in axis_kernel)  # a cube's max, one axis at a time
        near = torch.nn.functional.max_pool3d(near, axis_kernel, stride=1, padding=padding)
    near = near[0, 0].numpy() > 0
    return grid, near[tuple(np.moveaxis(grid, -1, 0))]


def _fill_nearest(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``values`` on the centres' grid with the unknown ones filled from their known neighbours,
    ring by ring outwards (each takes the mean of its known face neighbours)."""
    values = np.where(known, values, 0.0)
    known = known.copy()
    if not known.any():
        return values
    moves = [(a, step, _inner(values.shape, a, step)) for a in range(3) for step in (1, -1)]
    while not known.all():
        total = np.zeros_like(values)
        count = np.zeros(values.shape)
        for axis, step, inner in moves:
            total += np.roll(np.where(known, values, 0.0), step, axis=axis) * inner
            count += np.roll(known, step, axis=axis) * inner
        fresh = ~known & (count > 0)
        values[fresh] = total[fresh] / count[fresh]
        known |= fresh
    return values


def _inner(shape: tuple[int, ...], axis: int, step: int) -> np.ndarray:
    """1 where ``np.roll`` by ``step`` along ``axis`` brought a neighbour, 0 where it wrapped."""
    mask = np.ones(shape)
    edge = [slice(None)] * len(shape)
    edge[axis] = slice(0, 1) if step > 0 else slice(-1, None)
    mask[tuple(edge)] = 0.0
    return mask


def _spread(grid_values: np.ndarray, axis: np.ndarray, box: int) -> np.ndarray:
    """Trilinear interpolation of values on the centres' grid (at ``axis`` along each dimension)
    to every voxel of a ``box``³ volume (constant beyond the outermost centres)."""
    pos = np.interp(np.arange(box, dtype=np.float64), axis, np.arange(axis.size, dtype=np.float64))
    norm = torch.as_tensor(2.0 * pos / max(axis.size - 1, 1) - 1.0, dtype=torch.float32)
    z, y, x = torch.meshgrid(norm, norm, norm, indexing="ij")
    sample = torch.stack([x, y, z], dim=-1)[None]
    grid = torch.as_tensor(grid_values, dtype=torch.float32)[None, None]
    out = torch.nn.functional.grid_sample(grid, sample, mode="bilinear", align_corners=True)
    return out[0, 0].numpy()


def window_fscs(maps, centres: np.ndarray, radius_px: float) -> np.ndarray:
    """The FSC of two maps (tensors, (D, D, D)) within the window of ``radius_px`` about each of
    ``centres`` (M, 3), shape (M, S//2 + 1) with ``S`` :func:`window_box`; in single precision,
    the shell sums in double, in batches of :data:`BATCH_VOXELS`."""
    size = window_box(radius_px)
    window = spherical_mask(size, radius_px=radius_px, soft_width_px=WINDOW_EDGE_PX)
    window = torch.as_tensor(window, dtype=torch.float32, device=maps[0].device)
    shells, multiplicity = half_grid_shells(size, window.device)
    n = size // 2 + 1
    index = shells.reshape(-1).long().clamp_max(n)
    weight = multiplicity.reshape(-1)
    out = []
    per_batch = max(1, BATCH_VOXELS // size**3)
    for start in range(0, len(centres), per_batch):
        batch = centres[start : start + per_batch]
        spectra = [
            torch.fft.rfftn(
                torch.stack([_cut_window(m, c, size) for c in batch]).float() * window,
                dim=(-3, -2, -1),
            ).reshape(len(batch), -1)
            for m in maps
        ]

        def sums(values: torch.Tensor) -> torch.Tensor:  # in double precision
            total = torch.zeros((values.shape[0], n + 1), dtype=torch.float64, device=values.device)
            return total.index_add_(1, index, values.double() * weight)[:, :n]

        cross = sums(cross_power(*spectra))
        denom = torch.sqrt(sums(power(spectra[0])) * sums(power(spectra[1])))
        out.append(torch.where(denom > 0, cross / denom.clamp_min(1e-300), 0.0).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, n))


def local_resolution(
    halves: tuple[torch.Tensor, torch.Tensor],
    mask: np.ndarray,
    pixel_size_angstrom: float,
    radius_px: float,
) -> LocalResolution:
    """Local resolutions of a map (module docstring).

    Parameters
    ----------
    halves : two (D, D, D) tensors
        The written map's halves (each blended with its data as in the map, before the local
        weight).
    mask : (D, D, D) array
        The molecule (the automatic mask): windows are read where it lies.
    pixel_size_angstrom : float
    radius_px : float
        The windows' radius (voxels; :func:`window_radius_px`); the centres are this far apart.
    """
    if not radius_px >= 2.0:
        raise ValueError(f"radius_px must be at least 2, got {radius_px}")
    box = halves[0].shape[0]
    size = window_box(radius_px)
    grid, read = _centres(mask, radius_px)
    index = np.argwhere(read)
    centres = grid[tuple(index.T)]
    curves = window_fscs(halves, centres, radius_px)
    values = np.array(
        [resolution_at(c, LOCAL_THRESHOLD, size, pixel_size_angstrom, True) for c in curves]
    )
    no_reading = ~np.isfinite(values)
    values = np.where(no_reading, size * pixel_size_angstrom, values)
    on_grid = np.full(read.shape, np.nan)
    on_grid[tuple(index.T)] = values
    filled = _fill_nearest(on_grid, read)
    if not read.any():  # no molecule to read: every voxel at a window's box
        filled = np.full(read.shape, size * pixel_size_angstrom)
    volume = _spread(filled, grid[:, 0, 0, 0], box).astype(np.float32)
    return LocalResolution(centres, values, volume, float(radius_px), no_reading)
