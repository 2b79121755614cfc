"""A mixture voxelised on two grids: broad Gaussians at twice the voxel size, the rest at it.

A Gaussian of scale ``σ`` voxels has a spectrum ``e^{−2π² σ² f²}`` (``f`` in cycles per voxel): one
of :data:`COARSE_MIN_SCALE_PIXELS` or more along its narrowest axis keeps less than
:data:`COARSE_SPECTRUM_TOLERANCE` of its peak at the Nyquist frequency of a grid of twice the
voxel size, so samples on that grid hold it (:mod:`cryosplat.core.coarse_spectrum` takes them to
the fine grid's spectrum). Its footprint there has an eighth of the voxels: the broad negative
population of a fit (scales of 1–3 stage pixels, footprints of radius 9) is most of a step's
voxelisation at the finer stages, and sampled this way it costs a fraction of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cryosplat.core.coarse_spectrum import coarse_offset
from cryosplat.core.mixture import Mixture
from cryosplat.model.voxelize import voxelize_gaussians

__all__ = [
    "COARSE_SPECTRUM_TOLERANCE",
    "COARSE_MIN_SCALE_PIXELS",
    "TwoGridVolume",
    "coarse_rows",
    "footprint_saving",
    "voxelize_two_grids",
]

COARSE_SPECTRUM_TOLERANCE = 1e-3
# e^{−2π² σ² (1/4)²} = tolerance at the coarse grid's Nyquist frequency, 1/4 cycle per fine voxel
COARSE_MIN_SCALE_PIXELS = math.sqrt(8.0 * math.log(1.0 / COARSE_SPECTRUM_TOLERANCE)) / math.pi


@dataclass
class TwoGridVolume:
    """A map as a fine part ``(D, D, D)`` and a smooth part sampled at twice the voxel size
    ``(D/2, D/2, D/2)`` (None when there is none), both density per Å³, origin at voxel
    ``box // 2`` of each; the coarse voxel ``j`` is the fine voxel ``2j + offset``
    (:func:`~cryosplat.core.coarse_spectrum.coarse_offset`)."""

    fine: torch.Tensor
    coarse: torch.Tensor | None = None

    @property
    def box(self) -> int:
        return self.fine.shape[-1]

    @property
    def offset(self) -> int:
        return coarse_offset(self.box)


def coarse_rows(scales: torch.Tensor, pixel_size_angstrom: float, box: int) -> torch.Tensor:
    """Mask ``(N,)`` of the Gaussians the coarse grid holds: smallest scale at least
    :data:`COARSE_MIN_SCALE_PIXELS` voxels (none for an odd box or one under 16, whose coarse
    grid would be too small to pay)."""
    if box % 2 or box < 16:
        return torch.zeros(scales.shape[0], dtype=torch.bool, device=scales.device)
    smallest = scales.detach().amin(dim=-1)
    return smallest >= COARSE_MIN_SCALE_PIXELS * pixel_size_angstrom


def footprint_saving(scales: torch.Tensor, pixel_size_angstrom: float, n_sigma: float) -> float:
    """About how many footprint values the coarse grid saves for Gaussians of these ``scales``
    (N, 3) (Å): their balls of radius ``⌈n_sigma · s / pixel⌉ + ½`` on the fine grid less those
    on the coarse one."""
    largest = scales.detach().amax(dim=-1).double()
    fine = torch.ceil(n_sigma * largest / pixel_size_angstrom) + 0.5
    coarse = torch.ceil(n_sigma * largest / (2.0 * pixel_size_angstrom)) + 0.5
    return float((4.0 * math.pi / 3.0 * (fine**3 - coarse**3)).sum())


def voxelize_two_grids(
    mixture: Mixture,
    box: int,
    pixel_size_angstrom: float,
    n_sigma: float = 3.0,
    min_saving: float = 0.0,
) -> TwoGridVolume:
    """Voxelise the broad Gaussians (:func:`coarse_rows`) on a grid of box ``D/2`` and voxel
    ``2 · pixel``, the others on the D³ grid (:func:`~cryosplat.model.voxelize.voxelize_gaussians`
    on each; differentiable in every argument).

    ``min_saving``: all on the fine grid unless the coarse one saves at least this many footprint
    values (:func:`footprint_saving`), e.g. a few times the coarse grid's transform size, which
    the caller pays for it."""
    wide = coarse_rows(mixture.scales, pixel_size_angstrom, box)
    fine_only = not bool(wide.any())
    if not fine_only and min_saving > 0:
        saving = footprint_saving(mixture.scales[wide], pixel_size_angstrom, n_sigma)
        fine_only = saving < min_saving
    if fine_only:
        return TwoGridVolume(voxelize_gaussians(mixture, box, pixel_size_angstrom, n_sigma))
    narrow = Mixture(*(t[~wide] for t in mixture))
    broad = Mixture(*(t[wide] for t in mixture))
    return TwoGridVolume(
        voxelize_gaussians(narrow, box, pixel_size_angstrom, n_sigma),
        voxelize_gaussians(broad, box // 2, 2.0 * pixel_size_angstrom, n_sigma),
    )
