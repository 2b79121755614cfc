"""Whether the data hold the point group a run imposes, in RELION's orientation of it.

``--sym G`` counts every particle once per operator of ``G`` (:mod:`cryosplat.core.symmetry`,
RELION's conventions). If the poses came from a refinement in C1, or from one that put the
molecule's axes elsewhere (another program's convention of the group), the symmetrised map is a
blur of copies that the data do not hold, and nothing downstream says so: both half maps are
symmetrised alike.

The check, before any work: a sample of each half set (:data:`SAMPLE_ROWS` images) is gathered
without symmetry at a small box (:mod:`.sample_maps`), each half inverted directly (``D_A``,
``D_B``), and for every operator ``R_g`` the FSC of ``D_A`` with ``D_B`` rotated by ``R_g``
compared with the FSC of ``D_A`` with ``D_B`` itself, over the shells where the latter is at
least :data:`JUDGED_FSC` (where the sample holds signal; the first shell, the molecule's overall
mass, is left out), each shell counted by its Fourier samples (``∝ k²``: the low shells, where
any rotation of a compact molecule still correlates, weigh least). Rotating the other half keeps
the noise of the two apart, so a symmetric molecule in the right orientation gives ``FSC(D_A, R_g D_B) ≈ FSC(D_A, D_B)`` (agreement 1) and a
wrong orientation or group decorrelates the rotated copy. The least agreement over the operators
is reported; under :data:`MIN_AGREEMENT` the data do not hold the group.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from cryosplat.core.symmetry import rotate_volume, symmetry_operators
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.validate import apply_check
from cryosplat.reconstruct.grid.gather import AccumulateConfig
from cryosplat.reconstruct.grid.sample_maps import (
    JUDGED_FSC,
    cropped_for_checks,
    masked_inversions,
)
from cryosplat.validation.fsc import fsc

__all__ = [
    "HalfSampleMaps",
    "JUDGED_FSC",
    "MIN_AGREEMENT",
    "SAMPLE_ROWS",
    "SymmetryCheck",
    "apply_symmetry_check",
    "check_symmetry",
    "half_sample_maps",
]

SAMPLE_ROWS = 3000
"""Images of each half set gathered for the check (spread over the half)."""

MIN_SHELLS = 2
"""Fewer judged shells than this: the sample holds too little signal to judge."""

MIN_AGREEMENT = 0.5
"""Least agreement (FSC with the rotated copy over FSC with the copy itself) of a held group."""


@dataclass(frozen=True)
class SymmetryCheck:
    """The check's result.

    Attributes
    ----------
    symmetry : str
        The group checked.
    agreement : float
        The least, over the group's operators, of ``Σ k² FSC(D_A, R_g D_B) / Σ k² FSC(D_A, D_B)``
        over the judged shells ``k``: 1 for data that hold the group, near 0 for data that do not.
    operator : int
        Which operator (index into :func:`~cryosplat.core.symmetry.symmetry_operators`) agrees
        least.
    shells : tuple of int
        The judged shells (at the check's box).
    resolution_angstrom : float
        The finest judged shell's resolution.
    n_images : int
        Images of both halves in the sample.
    """

    symmetry: str
    agreement: float
    operator: int
    shells: tuple[int, ...]
    resolution_angstrom: float
    n_images: int

    @property
    def held(self) -> bool:
        """Whether the data hold the group (agreement at least :data:`MIN_AGREEMENT`)."""
        return self.agreement >= MIN_AGREEMENT

    def describe(self) -> str:
        """One line for the log (and, where the group is not held, the refusal)."""
        what = (
            f"{len(self.shells)} shells to {self.resolution_angstrom:.1f} Å, {self.n_images} "
            f"images: the sample's half maps' FSC with each other rotated by every operator of "
            f"{self.symmetry}, over their FSC unrotated, is at least {self.agreement:.2f} "
            f"(operator {self.operator})"
        )
        if self.held:
            return f"the data hold {self.symmetry} in RELION's orientation ({what})"
        return (
            f"the data do not hold {self.symmetry} in RELION's orientation ({what}, under "
            f"{MIN_AGREEMENT}): were the poses refined with this symmetry, in RELION's "
            "convention? Imposed, it would blur the map into copies the data do not hold"
        )


@dataclass(frozen=True)
class HalfSampleMaps:
    """A sample of each half set inverted without symmetry at the checks' small box (``map_a``,
    ``map_b``), their FSC (``itself``) and the shells it judges by (``shells``: past the first,
    where it is at least :data:`JUDGED_FSC`); what the point group's and the helix's checks
    compare ``map_a`` with ``map_b`` moved by."""

    map_a: torch.Tensor
    map_b: torch.Tensor
    itself: np.ndarray
    shells: tuple[int, ...]
    resolution_angstrom: float
    n_images: int
    pixel_size_angstrom: float

    def agreement(self, moved_b: torch.Tensor) -> float:
        """``Σ k² FSC(map_a, moved_b) / Σ k² FSC(map_a, map_b)`` over the judged shells (each
        counted by its Fourier samples, ``∝ k²``: the low shells, where any turn of a compact
        molecule still correlates, weigh least)."""
        judged = list(self.shells)
        counts = np.asarray(judged, dtype=np.float64) ** 2
        moved = np.asarray(fsc(self.map_a, moved_b))[judged]
        return float((counts * moved).sum() / (counts * self.itself[judged]).sum())


def half_sample_maps(
    particles: ParticleSet, halves: tuple[np.ndarray, np.ndarray], config: AccumulateConfig
) -> HalfSampleMaps | None:
    """:class:`HalfSampleMaps` of up to :data:`SAMPLE_ROWS` rows of each half, gathered with
    ``config`` without symmetry; None where a half is empty or fewer than :data:`MIN_SHELLS`
    shells hold signal."""
    small = cropped_for_checks(particles)
    rows = [small.spread_rows_of(h, SAMPLE_ROWS) for h in halves]
    if min(len(r) for r in rows) == 0:
        return None
    plain = replace(config, symmetry="C1", max_resolution_angstrom=None)
    map_a, map_b = masked_inversions(small, rows, plain)
    itself = np.asarray(fsc(map_a, map_b))
    shells = tuple(int(k) for k in np.flatnonzero(itself >= JUDGED_FSC) if k >= 2)
    if len(shells) < MIN_SHELLS:
        return None
    resolution = small.box * small.pixel_size_angstrom / max(shells)
    n_images = sum(len(r) for r in rows)
    pixel = small.pixel_size_angstrom
    return HalfSampleMaps(map_a, map_b, itself, shells, resolution, n_images, pixel)


def check_symmetry(
    particles: ParticleSet,
    halves: tuple[np.ndarray, np.ndarray],
    symmetry: str,
    config: AccumulateConfig,
) -> SymmetryCheck | None:
    """Check that ``particles`` (with poses and CTF) hold ``symmetry`` (module docstring).

    Parameters
    ----------
    particles : ParticleSet
    halves : (rows of half A, rows of half B)
    symmetry : str
        A point group in RELION's conventions; C1 is not checked.
    config : AccumulateConfig
        The run's statistics settings (device, batch, image weights); gathered here without
        symmetry at the checks' small box.

    Returns
    -------
    SymmetryCheck, or None for C1 or where the sample holds too little signal to judge (fewer
    than :data:`MIN_SHELLS` shells past the first with the halves' FSC at :data:`JUDGED_FSC`).
    """
    operators = symmetry_operators(symmetry)
    if len(operators) < 2:
        return None
    sample = half_sample_maps(particles, halves, config)
    if sample is None:
        return None
    worst, which = np.inf, 0
    for g, op in enumerate(operators):
        if np.allclose(op, np.eye(3)):
            continue
        agreement = sample.agreement(rotate_volume(sample.map_b, op))  # the sphere: itself
        if agreement < worst:
            worst, which = agreement, g
    return SymmetryCheck(
        symmetry, worst, which, sample.shells, sample.resolution_angstrom, sample.n_images
    )


def apply_symmetry_check(
    particles: ParticleSet,
    halves: tuple[np.ndarray, np.ndarray],
    symmetry: str,
    config: AccumulateConfig,
    accept_warnings: bool = False,
) -> SymmetryCheck | None:
    """Run :func:`check_symmetry` for a reconstruction: its line goes to ``particles.notes`` (the
    run's log lists them); data that do not hold the group stop the run with
    :class:`InputError` unless ``accept_warnings``, then it is a warning."""
    result = check_symmetry(particles, halves, symmetry, config)
    if result is None:
        if len(symmetry_operators(symmetry)) > 1:
            line = f"symmetry check: the sample holds too little signal to judge {symmetry}"
            particles.notes.append(line)
        return None
    line = f"symmetry check: {result.describe()}"
    apply_check(particles, line, result.held, accept_warnings)
    return result
