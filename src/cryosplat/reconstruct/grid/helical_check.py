"""Whether the data hold the helix a run imposes (its hand, twist and rise).

Summing a half set over the asymmetric units of a helix the data do not hold (the other hand, a
twist or rise off) gives a map of copies that the data do not hold; and since both halves are
summed alike, their FSC, and the resolution read from it, does not say so (a helix of twist 30°
imposed with −30°: 8.07 Å reported for a map at 43.7 Å against the truth, round 2, session 93).

The check, as the point group's (:mod:`cryosplat.reconstruct.grid.symmetry_check`): a sample of
each half set is inverted without symmetry at the checks' small box (``D_A``, ``D_B``), and for the
helix's next unit and its farthest one summed (``h = 1`` and the largest ``|h|`` of
:meth:`~cryosplat.core.helical.HelicalSymmetry.steps`) the FSC of ``D_A`` with ``D_B`` moved onto
unit ``h`` (turned by ``h·twist`` about z, then moved by ``h·rise`` along z) is compared with the
FSC of ``D_A`` with ``D_B`` itself over the shells that hold signal, each shell counted by its
Fourier samples. A helix the data hold agrees (about 1, less what leaves the box); a wrong one
decorrelates. Under :data:`MIN_AGREEMENT` the run stops (``--accept-warnings`` runs it anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from cryosplat.core.helical import HelicalSymmetry
from cryosplat.core.symmetry import rotate_volume
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.validate import apply_check
from cryosplat.reconstruct.grid.gather import AccumulateConfig
from cryosplat.reconstruct.grid.symmetry_check import half_sample_maps

__all__ = [
    "HAND_MARGIN",
    "HelicalCheck",
    "MAX_SPAN_FRACTION",
    "MIN_AGREEMENT",
    "apply_helical_check",
    "check_helix",
    "unit_moved",
]

MIN_AGREEMENT = 0.5
"""Least agreement of a held helix (as :data:`~cryosplat.reconstruct.grid.symmetry_check.
MIN_AGREEMENT`)."""

MAX_SPAN_FRACTION = 0.5
"""Units summed over more than this share of the box along z are warned of (RELION's helical
refinement imposes the helix on its central 30 % by default, ``--helical_z_percentage``)."""

HAND_MARGIN = 0.1
"""A helix whose other hand (the twist negated) agrees by more than this over it is not held,
whatever its own agreement: at small twists the other hand blurs little over the units summed
(twist −1.2°, rise 4.75 Å, nine units: 0.85 for the helix, 0.50 for its other hand, whose map read
9.61 Å at 0.5 against 7.37 Å; round 2, session 93)."""


@dataclass(frozen=True)
class HelicalCheck:
    """The check's result: the least ``agreement`` over the units checked, at unit ``step``, and
    the same for the other hand (``other_hand``; None where the twist negated is the same turn),
    over the judged ``shells`` (finest ``resolution_angstrom``) of ``n_images`` images."""

    helical: HelicalSymmetry
    agreement: float
    step: int
    shells: tuple[int, ...]
    resolution_angstrom: float
    n_images: int
    other_hand: float | None = None

    @property
    def held(self) -> bool:
        """Agreement at least :data:`MIN_AGREEMENT`, and the other hand not better by more than
        :data:`HAND_MARGIN`."""
        better = self.other_hand is not None and self.other_hand > self.agreement + HAND_MARGIN
        return self.agreement >= MIN_AGREEMENT and not better

    def describe(self) -> str:
        other = "" if self.other_hand is None else f"; with the twist negated {self.other_hand:.2f}"
        what = (
            f"{len(self.shells)} shells to {self.resolution_angstrom:.1f} Å, {self.n_images} "
            "images: the sample's half maps' FSC with each other moved onto the helix's next and "
            f"farthest unit summed, over their FSC unmoved, is at least {self.agreement:.2f} "
            f"(unit {self.step}){other}"
        )
        helix = f"the helix of twist {self.helical.twist_degrees:g}° and rise "
        helix += f"{self.helical.rise_angstrom:g} Å"
        if self.held:
            return f"the data hold {helix} ({what})"
        why = (
            f"under {MIN_AGREEMENT}"
            if self.agreement < MIN_AGREEMENT
            else f"the other hand agrees better by more than {HAND_MARGIN}"
        )
        return (
            f"the data do not hold {helix} ({what}; {why}): is the hand right (positive twist: "
            "right-handed, as RELION), and are the twist and rise the refinement's? Imposed, it "
            "would make a map of copies the data do not hold, and the half maps, summed alike, "
            "would not say so"
        )


def unit_moved(volume: torch.Tensor, helical: HelicalSymmetry, step: int, pixel: float):
    """``volume`` (``[z, y, x]``, origin at voxel ``D//2``) moved onto the helix's unit ``step``:
    turned by ``step·twist`` about z, then moved by ``step·rise`` along z (a Fourier phase): the
    map whose statistics :func:`~cryosplat.reconstruct.grid.helical_statistics.
    helically_symmetrized` adds for ``step``."""
    turned = rotate_volume(volume, helical.rotation(-step))  # R_z(step · twist)
    shift = step * helical.rise_angstrom / pixel
    if not shift:
        return turned
    box = turned.shape[0]
    kz = torch.fft.fftfreq(box, dtype=torch.float64)[:, None, None]
    phase = torch.exp(-2j * np.pi * kz * shift)
    return torch.fft.ifft(torch.fft.fft(turned.double(), dim=0) * phase, dim=0).real


def check_helix(
    particles: ParticleSet,
    halves: tuple[np.ndarray, np.ndarray],
    helical: HelicalSymmetry,
    config: AccumulateConfig,
) -> HelicalCheck | None:
    """Check that ``particles`` hold ``helical`` (module docstring); None where the sample holds
    too little signal to judge (fewer than ``MIN_SHELLS`` shells past the first at
    ``JUDGED_FSC``)."""
    sample = half_sample_maps(particles, halves, config)
    if sample is None:
        return None

    pixel = sample.pixel_size_angstrom

    def least(helix: HelicalSymmetry) -> tuple[float, int]:
        worst, which = np.inf, 1
        for step in sorted({1, max(helix.steps(), key=abs)}):
            agreement = sample.agreement(unit_moved(sample.map_b, helix, step, pixel))
            if agreement < worst:
                worst, which = agreement, step
        return worst, which

    agreement, step = least(helical)
    mirror = replace(helical, twist_degrees=-helical.twist_degrees)
    same_turn = np.allclose(mirror.rotation(1), helical.rotation(1), atol=1e-9)
    return HelicalCheck(
        helical,
        agreement,
        step,
        sample.shells,
        sample.resolution_angstrom,
        sample.n_images,
        None if same_turn else least(mirror)[0],
    )


def apply_helical_check(
    particles: ParticleSet,
    halves: tuple[np.ndarray, np.ndarray],
    helical: HelicalSymmetry,
    config: AccumulateConfig,
    accept_warnings: bool = False,
    drawn_here: bool = False,
) -> HelicalCheck | None:
    """Run :func:`check_helix` for a reconstruction: its line goes to ``particles.notes``; a
    helix the data do not hold stops the run with :class:`InputError` unless
    ``accept_warnings``, then it is a warning. Units that span more than
    :data:`MAX_SPAN_FRACTION` of the box along z are warned of, and so are half sets drawn here
    (``drawn_here``) from a file that records no helical tubes."""
    if drawn_here and particles.patch_groups is None:
        particles.warnings.append(
            "helical symmetry on half sets drawn here from a file that records no helical tubes "
            "(RELION's rlnHelicalTubeID with rlnMicrographName, cryoSPARC's "
            "filament/filament_uid): neighbouring segments of one tube overlap and hold the same "
            "stretch of filament, and where they fall in both halves the FSC and the resolution "
            "read too high; give the refinement's half sets (rlnRandomSubset) or the tube ids"
        )
    box_angstrom = particles.box * particles.pixel_size_angstrom
    if helical.span_angstrom() > MAX_SPAN_FRACTION * box_angstrom:
        particles.warnings.append(
            f"the {helical.n_asu} helical units summed span {helical.span_angstrom():.0f} Å "
            f"along z, more than {MAX_SPAN_FRACTION:g} of the box ({box_angstrom:.0f} Å): the "
            "outer units are read from the box's edges and beyond (a shift in Fourier space "
            "wraps round the padded box), where the segment holds little of the filament; sum "
            "fewer units (--helical-asu)"
        )
    result = check_helix(particles, halves, helical, config)
    if result is None:
        particles.notes.append("helical check: the sample holds too little signal to judge")
        return None
    apply_check(particles, f"helical check: {result.describe()}", result.held, accept_warnings)
    return result
