"""Choosing the particles to reconstruct: one or more 3D classes, a list of rows, or optics groups.

A RELION ``Class3D`` run writes every particle with its class (``rlnClassNumber``, from 1), and a
cryoSPARC heterogeneous refinement with ``alignments3D/class`` (from 0); ``relion_reconstruct
--class N`` reconstructs one of them. cryoDRGN chooses particles by an index file (``--ind``: a
pickled array of 0-based rows, as ``cryodrgn filter`` writes one). :func:`select_particles` does
both, in that order: the rows of the file first, then the classes among them.

Particles of several classes made into one map are averaged as if they were one molecule in one
state. Where a set holds several classes and none was chosen,
:meth:`~cryosplat.particles.particle_set.ClassLabels.unchosen_warning` says so (``info`` and ``reconstruct`` warn, and the run goes on: a set made by selecting good classes
keeps their numbers and is meant to be reconstructed together).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from cryosplat.core.errors import InputError
from cryosplat.particles.cryodrgn import load_pickle
from cryosplat.particles.cryosparc import write_cs_rows
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.star_tables import write_star_rows

__all__ = [
    "read_row_indices",
    "select_classes",
    "select_optics_groups",
    "select_particles",
    "select_rows",
    "write_metadata_rows",
]


def _as_rows(values: object, path: Path, n_rows: int) -> np.ndarray:
    """``values`` (from an index file) as sorted 0-based rows of a set of ``n_rows``."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a list of particle indices ({exc})") from None
    if arr.dtype == bool:
        if arr.shape != (n_rows,):
            raise InputError(
                f"{path}: a true/false mask of {arr.size} values, but there are {n_rows:,} "
                "particles"
            )
        arr = np.flatnonzero(arr)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        raise InputError(
            f"{path}: expected a one-dimensional list of particle indices, got an array of "
            f"shape {arr.shape} and type {arr.dtype}"
        )
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))
        if bad.size:
            raise InputError(
                f"{path}: entry {bad[0] + 1} is {float(arr[bad[0]]):g}, not a whole number"
            )
    rows = arr.astype(np.int64)
    if rows.size == 0:
        raise InputError(f"{path}: holds no particle indices")
    if (bad := np.flatnonzero((rows < 0) | (rows >= n_rows))).size:
        raise InputError(
            f"{path}: index {rows[bad[0]]} (entry {bad[0] + 1}) is outside the set's rows 0 to "
            f"{n_rows - 1} (indices count from 0, as cryoDRGN's do)"
        )
    unique, counts = np.unique(rows, return_counts=True)
    if (twice := np.flatnonzero(counts > 1)).size:
        raise InputError(f"{path}: index {unique[twice[0]]} is listed {counts[twice[0]]} times")
    return unique


def read_row_indices(path: str | Path, n_rows: int) -> np.ndarray:
    """The 0-based rows an index file names, sorted, int64 (M,).

    Parameters
    ----------
    path : str or Path
        ``.pkl`` (cryoDRGN's ``ind.pkl``: a pickled array or list of indices), ``.npy``, or text
        (indices separated by white space or commas). A true/false array of ``n_rows`` values
        (``.pkl``, ``.npy``) is a mask.
    n_rows : int
        Rows of the particle set the indices refer to.

    Raises
    ------
    InputError
        The file is missing or unreadable, holds no indices, a value that is not a whole number,
        an index outside ``0 … n_rows − 1``, or an index twice.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: index file not found")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        values = load_pickle(path, "index")
    elif suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"{path}: not a readable .npy array ({exc})") from None
    else:
        text = path.read_text(errors="replace").replace(",", " ").split()
        try:
            values = np.array([float(t) for t in text])
        except ValueError as exc:
            raise InputError(f"{path}: not a list of particle indices ({exc})") from None
    return _as_rows(values, path, n_rows)


def select_rows(particles: ParticleSet, rows: np.ndarray, what: str) -> ParticleSet:
    """The particles at ``rows`` (0-based), with a note naming ``what`` chose them."""
    chosen = particles.subset(rows)
    chosen.notes.append(f"particles: {len(chosen):,} of {len(particles):,} ({what})")
    chosen.selection = "; ".join(s for s in (particles.selection, what) if s)
    return chosen


def select_classes(particles: ParticleSet, classes: tuple[int, ...]) -> ParticleSet:
    """The particles of ``classes`` (numbers as the file writes them).

    Raises
    ------
    InputError
        The set records no classes, or no particle is in one of ``classes``.
    """
    labels = particles.classes
    if labels is None:
        raise InputError(
            f"{particles.source}: --class {_class_list(classes)}: the particles have no class "
            "column (rlnClassNumber, alignments3D/class)"
        )
    counts = labels.counts()
    if missing := [c for c in classes if c not in counts]:
        raise InputError(
            f"{particles.source}: --class {_class_list(classes)}: no particle is in class "
            f"{_class_list(tuple(missing))}; the set holds {labels.listing()}"
        )
    mask = np.isin(labels.numbers, np.asarray(classes, dtype=np.int64))
    chosen = select_rows(particles, np.flatnonzero(mask), f"{labels.column} {_class_list(classes)}")
    chosen.classes = replace(chosen.classes, chosen=True)
    return chosen


def select_particles(
    particles: ParticleSet,
    *,
    classes: tuple[int, ...] | None = None,
    index_file: str | Path | None = None,
    optics_groups: tuple[str, ...] | None = None,
) -> ParticleSet:
    """The particles an index file, a list of classes and a list of optics groups choose (each
    may be None: all).

    The index file's rows (:func:`read_row_indices`) are taken first, then the classes among
    them (:func:`select_classes`), then the optics groups (:func:`select_optics_groups`).
    """
    if index_file is not None:
        rows = read_row_indices(index_file, len(particles))
        particles = select_rows(particles, rows, f"the rows {Path(index_file).name} lists")
    if classes:
        particles = select_classes(particles, tuple(classes))
    if optics_groups:
        particles = select_optics_groups(particles, optics_groups)
    return particles


def select_optics_groups(particles: ParticleSet, names: tuple[str, ...]) -> ParticleSet:
    """The particles of the optics groups ``names`` (``rlnOpticsGroupName``; blanks round each
    ignored): one source of a merged set, or all but one (a check names a source by its
    groups)."""
    known = [g.name for g in particles.optics]
    wanted = {n.strip() for n in names if n.strip()}
    if unknown := sorted(wanted - set(known)):
        raise InputError(f"optics group {unknown[0]!r}: the set's are {', '.join(known)}")
    chosen = [i for i, name in enumerate(known) if name in wanted]
    kept = np.flatnonzero(np.isin(particles.optics_group, chosen))
    listed = ", ".join(known[i] for i in chosen)
    if not kept.size:
        raise InputError(f"no particles in the optics groups {listed}")
    return select_rows(particles, kept, f"optics groups {listed}")


def write_metadata_rows(source: str | Path | None, rows: np.ndarray, stem: Path) -> Path | None:
    """The metadata file ``source`` with only its particles at ``rows`` (0-based rows of its
    particle table), in its own format, at ``stem`` plus its suffix (``.star``: every value as
    written, its optics table whole; ``.cs``: every field as stored); None, writing nothing,
    where ``source`` is neither."""
    suffix = Path(source).suffix.lower() if source is not None else ""
    if suffix == ".star":
        write_star_rows(source, rows, stem.with_suffix(".star"))
        return stem.with_suffix(".star")
    if suffix == ".cs":
        write_cs_rows(source, rows, stem.with_suffix(".cs"))
        return stem.with_suffix(".cs")
    return None


def _class_list(classes: tuple[int, ...]) -> str:
    return ",".join(str(c) for c in classes)
