"""The metadata read the way a check found the images fit better, written again (``cryosplat
amend``): the poses as one of the pose check's readings (:data:`~cryosplat.reconstruct.pose_check
.VARIANTS`: the shifts negated, their x and y swapped, the rotations inverted, the Euler angles
rot and psi swapped, the x or y axis flipped for images mirrored, the shifts halved, ...), the
astigmatism with one of the astigmatism check's slips undone
(:data:`~cryosplat.particles.astigmatism_check.VARIANTS`: the angle negated, defocus U and V
swapped, both).

Every slip the checks name but the shifts halved undoes itself, so reading the metadata so and
writing them again is the fix; the names on the command line are the checks' own names written
as options (:func:`~cryosplat.core.option_names.option_name`: ``shifts negated`` is
``shifts-negated``), so a warning's words are what to type. Only the rows of the particles given
are amended (a ``--class``, ``--ind`` or ``--optics-group`` choice, e.g. one source of a merged
set); the file's other rows and every other value stay as written
(:func:`~cryosplat.particles.metadata_out.write_metadata`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosplat.core.errors import InputError
from cryosplat.core.option_names import option_name
from cryosplat.particles import astigmatism_check
from cryosplat.particles.metadata_out import NewPoses, holds_metadata, write_metadata
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.star_tables import write_star_ctf_state
from cryosplat.reconstruct import ctf_state_check, pose_check

__all__ = [
    "Amendment",
    "MIRROR_ASTIGMATISM",
    "amend_metadata",
    "amendment_notes",
    "POSE_READINGS",
    "ASTIGMATISM_SLIPS",
    "CTF_STATES",
]


POSE_READINGS = {option_name(v): v for v in pose_check.VARIANTS[1:]}
ASTIGMATISM_SLIPS = {option_name(v): v for v in astigmatism_check.VARIANTS}
CTF_STATES = {option_name(state): code for code, state in enumerate(ctf_state_check.STATES)}


@dataclass(frozen=True)
class Amendment:
    """What to amend: ``poses`` a key of :data:`POSE_READINGS`, ``astigmatism`` one of
    :data:`ASTIGMATISM_SLIPS`, ``ctf_state`` one of :data:`CTF_STATES` (None: as written)."""

    poses: str | None = None
    astigmatism: str | None = None
    ctf_state: str | None = None

    def validate(self) -> None:
        """Raise :class:`~cryosplat.core.errors.InputError` naming a reading no check has."""
        for given, known, what in (
            (self.poses, POSE_READINGS, "--poses-as"),
            (self.astigmatism, ASTIGMATISM_SLIPS, "--astigmatism-as"),
            (self.ctf_state, CTF_STATES, "--ctf-state-as"),
        ):
            if given is not None and given not in known:
                raise InputError(f"{what} {given!r}: not one of {', '.join(known)}")
        if self.poses is None and self.astigmatism is None and self.ctf_state is None:
            raise InputError(
                "nothing to amend: give --poses-as, --astigmatism-as, --ctf-state-as or more"
            )

    def describe(self) -> str:
        parts = []
        if self.poses is not None:
            parts.append(f"poses read as {POSE_READINGS[self.poses]}")
        if self.astigmatism is not None:
            parts.append(f"astigmatism read with {ASTIGMATISM_SLIPS[self.astigmatism]}")
        if self.ctf_state is not None:
            code = CTF_STATES[self.ctf_state]
            parts.append(f"images flagged {ctf_state_check.STATES[code]}")
        return " and ".join(parts)


MIRROR_ASTIGMATISM = next(
    slip
    for slip, (negated, swapped) in astigmatism_check.VARIANTS.items()
    if negated and not swapped
)
"""Images mirrored (in x or in y) hold their Thon rings mirrored: the astigmatism's axis at minus
its angle (the defocus at azimuth φ, read at −φ or π − φ, is the recorded one's with the angle
negated; the astigmatism repeats every half turn)."""


def amendment_notes(particles: ParticleSet, amendment: Amendment) -> list[str]:
    """What to consider beside ``amendment``: RELION reads images phase-flipped from an option,
    not from the flag; the poses read with an axis flipped (images mirrored) leave as written an
    astigmatic CTF, which fits the images mirrored only if it was fitted on them, and the
    antisymmetric aberrations and an anisotropic magnification, which are refined with the poses
    (RELION's CTF refinement) and so belong to the images unmirrored."""
    notes = []
    if amendment.ctf_state is not None and CTF_STATES[amendment.ctf_state] == 1:
        notes.append(
            "relion_reconstruct and relion_refine take phase-flipped images with their option "
            "--ctf_phase_flipped (RELION keeps the flag with its optimiser's settings); cryosplat "
            "reads it from the STAR file written here"
        )
    if "axis flipped" not in POSE_READINGS.get(amendment.poses, ""):
        return notes
    ctf = particles.ctf
    astigmatic = ctf is not None and bool(
        (np.abs(ctf.defocus_u_angstrom - ctf.defocus_v_angstrom) > 0).any()
    )
    if astigmatic and amendment.astigmatism is None:
        notes.append(
            "the images mirrored mirror their astigmatism too: unless their CTF was fitted on "
            f"them as mirrored, add --astigmatism-as {option_name(MIRROR_ASTIGMATISM)} (cryosplat "
            "info's astigmatism check reads which from the images' Thon rings, where they are "
            "strong enough)"
        )
    mirrored = []
    if particles.odd_zernike is not None and bool(np.any(particles.odd_zernike != 0)):
        mirrored.append("antisymmetric aberrations (beam tilt, trefoil: rlnOddZernike)")
    mags = particles.mag_matrices
    if mags is not None and bool(np.any(np.abs(mags - np.eye(2)) > 1e-9)):
        mirrored.append("anisotropic magnification (rlnMagMat)")
    if mirrored:
        notes.append(
            f"their {' and '.join(mirrored)} were refined with the poses, so on the images "
            "unmirrored, and are written as they were: refine them again on the amended set "
            "(relion_ctf_refine) before trusting its finest shells"
        )
    return notes


def amend_metadata(
    particles: ParticleSet,
    amendment: Amendment,
    folder: Path,
    poses_pickle: Path | str | None = None,
    ctf_pickle: Path | str | None = None,
) -> list[Path]:
    """Write the particles' metadata again into ``folder`` with ``amendment`` applied to their
    rows of the file (``amended.star``, ``amended.cs``, or cryoDRGN's ``poses.pkl`` and
    ``ctf.pkl`` where those pickles were given); returns the files written."""
    amendment.validate()
    poses = ctf = None
    if amendment.poses is not None:
        if particles.rotations is None:
            raise InputError(f"{particles.source}: no poses to read another way")
        read = pose_check.read_as(particles, POSE_READINGS[amendment.poses])
        box_angstrom = particles.box * particles.pixel_size_angstrom
        shifts = read.shifts_angstrom  # none written: the particles are centred
        shifts = np.zeros((len(particles), 2)) if shifts is None else shifts
        pixel = particles.pixel_sizes_angstrom()
        poses = NewPoses(read.rotations, shifts, pixel, box_angstrom)
    if amendment.astigmatism is not None:
        if particles.ctf is None:
            raise InputError(f"{particles.source}: no CTF to read another way")
        slip = ASTIGMATISM_SLIPS[amendment.astigmatism]
        ctf = astigmatism_check.with_slip(particles.ctf, slip)
    missing = [
        what
        for what, new, pickle in (("poses", poses, poses_pickle), ("ctf", ctf, ctf_pickle))
        if new is not None and pickle is None and not holds_metadata(particles.source)
    ]
    if missing:
        raise InputError(
            f"{particles.source}: the amended {' and '.join(missing)} are written into a STAR "
            f"file, a .cs file or cryoDRGN's {missing[0]}.pkl (--{missing[0]})"
        )
    star = particles.source is not None and Path(particles.source).suffix.lower() == ".star"
    if amendment.ctf_state is not None and not star:
        raise InputError(
            f"{particles.source}: only a STAR file records the images' CTF state "
            "(rlnCtfDataArePhaseFlipped, rlnCtfDataAreCtfPremultiplied); cryoSPARC's .cs files "
            "and cryoDRGN's pickles hold raw images"
        )
    folder.mkdir(parents=True, exist_ok=True)
    rows = particles.rows_in_file()
    written = write_metadata(
        particles.source,
        rows,
        folder,
        "amended",
        poses,
        ctf,
        poses_pickle=poses_pickle,
        ctf_pickle=ctf_pickle,
    )
    if amendment.ctf_state is not None:
        out = folder / "amended.star"
        source = out if out in written else particles.source
        write_star_ctf_state(source, rows, CTF_STATES[amendment.ctf_state], out)
        written = [*dict.fromkeys([*written, out])]
    return written
