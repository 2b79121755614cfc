"""The particles' metadata written again in their own format with new poses, new defocus values,
or both: a RELION STAR file, a cryoSPARC ``.cs`` file, or cryoDRGN's ``poses.pkl`` and
``ctf.pkl`` (:func:`write_metadata`). Each writer keeps every other value as the file holds it
and changes only the rows named; ``refine-poses``, ``refine-defocus`` and ``amend`` write through
it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosplat.core.ctf import CTFParams
from cryosplat.particles.cryodrgn import write_ctf_pickle_defocus, write_poses_pickle
from cryosplat.particles.cryosparc import write_cs_defocus, write_cs_poses
from cryosplat.particles.star_tables import write_star_defocus, write_star_poses

__all__ = ["NewPoses", "holds_metadata", "write_metadata"]


def holds_metadata(source: Path | str | None) -> bool:
    """Whether new values can be written into the particle file ``source`` itself (a STAR or a
    cryoSPARC ``.cs`` file); a stack read with cryoDRGN's pickles needs the pickle they replace."""
    return source is not None and Path(source).suffix.lower() in (".star", ".cs")


@dataclass(frozen=True)
class NewPoses:
    """New poses of some rows of a particle file.

    Attributes
    ----------
    rotations : np.ndarray, shape (n, 3, 3)
        RELION's ``A`` of each row.
    shifts_angstrom : np.ndarray, shape (n, 2)
        RELION's origins, Å.
    pixel_sizes_angstrom : np.ndarray, shape (n,)
        Each particle's pixel size (a RELION 3.0 STAR holds its origins in pixels).
    box_angstrom : float
        The images' side (cryoDRGN's ``poses.pkl`` holds its shifts as fractions of it).
    """

    rotations: np.ndarray
    shifts_angstrom: np.ndarray
    pixel_sizes_angstrom: np.ndarray
    box_angstrom: float


def write_metadata(
    source: Path | str | None,
    rows: np.ndarray,
    folder: Path,
    stem: str,
    poses: NewPoses | None = None,
    ctf: CTFParams | None = None,
    poses_pickle: Path | str | None = None,
    ctf_pickle: Path | str | None = None,
) -> list[Path]:
    """Write the particle file ``source`` again into ``folder`` with ``poses`` and/or the defocus
    values of ``ctf`` at its 0-based ``rows``: ``STEM.star`` or ``STEM.cs`` in the file's own
    format, or, where cryoDRGN's pickles hold them (``poses_pickle``, ``ctf_pickle``),
    ``poses.pkl`` and ``ctf.pkl``. Returns the files written (none where ``source`` is none of
    those and no pickle holds the new values)."""
    written = []
    if poses is not None and poses_pickle is not None:
        out = folder / "poses.pkl"
        args = (poses.rotations, poses.shifts_angstrom, poses.box_angstrom)
        write_poses_pickle(poses_pickle, rows, *args, out)
        written.append(out)
        poses = None
    if ctf is not None and ctf_pickle is not None:
        write_ctf_pickle_defocus(ctf_pickle, rows, ctf, folder / "ctf.pkl")
        written.append(folder / "ctf.pkl")
        ctf = None
    if (poses is None and ctf is None) or not holds_metadata(source):
        return written
    suffix = Path(source).suffix.lower()
    out = folder / f"{stem}{suffix}"
    between = folder / f".{stem}.poses{suffix}"  # poses first, then the defocus values over them
    if poses is not None:
        target = between if ctf is not None else out
        if suffix == ".star":
            write_star_poses(
                source,
                rows,
                poses.rotations,
                poses.shifts_angstrom,
                poses.pixel_sizes_angstrom,
                target,
            )
        else:
            write_cs_poses(source, rows, poses.rotations, poses.shifts_angstrom, target)
        source = target
    if ctf is not None:
        (write_star_defocus if suffix == ".star" else write_cs_defocus)(source, rows, ctf, out)
        between.unlink(missing_ok=True)
    return [*written, out]
