"""A RELION STAR file's particle table, and the file written back with chosen rows or moved defoci.

Reading the particles themselves is :mod:`cryosplat.particles.relion`'s; these write what
``score`` keeps and ``refine-defocus`` refines, every other value as the source wrote it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryosplat.core.conventions import (
    euler_relion_to_matrix,
    matrix_to_euler_relion,
    matrix_to_rotvec,
)
from cryosplat.core.ctf import CTFParams
from cryosplat.core.errors import InputError
from cryosplat.io.star import StarBlock, read_star, write_star
from cryosplat.particles.particle_set import pose_arrays

__all__ = [
    "ANGLE_COLUMNS",
    "CTF_COLUMNS",
    "CTF_IN_IMAGES_COLUMNS",
    "particle_block",
    "write_star_ctf_state",
    "write_star_defocus",
    "write_star_poses",
    "write_star_rows",
]

CTF_COLUMNS = ("rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle")
ANGLE_COLUMNS = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
CTF_IN_IMAGES_COLUMNS = {1: "rlnCtfDataArePhaseFlipped", 2: "rlnCtfDataAreCtfPremultiplied"}
"""RELION's flags for images that already carry their CTF, by code of
:data:`~cryosplat.core.ctf.CTF_IN_IMAGES` (0, raw, is neither flag set)."""


def particle_block(blocks: dict[str, StarBlock], path: Path) -> StarBlock:
    """The particle table of a STAR file's ``blocks``: ``data_particles``, or else the first table
    holding image names, angles or defocus."""
    if "particles" in blocks:
        return blocks["particles"]
    for block in blocks.values():
        if block.is_loop and any(
            c in block for c in ("rlnImageName",) + ANGLE_COLUMNS + CTF_COLUMNS
        ):
            return block
    raise InputError(
        f"{path}: no particle table (no data_particles block and no loop_ with "
        "rlnImageName, angles or defocus)"
    )


def write_star_rows(source: str | Path, rows: np.ndarray, out: str | Path) -> None:
    """Write the STAR file ``source`` to ``out`` with only the particles at ``rows`` (0-based rows
    of its particle table), every value as written; its other tables (``data_optics``) whole.
    Key-value blocks (not tables) are left out."""
    source = Path(source)
    blocks = read_star(source)
    particles = particle_block(blocks, source)
    rows = np.asarray(rows, dtype=np.int64)
    tables = {}
    for name, block in blocks.items():
        if not block.is_loop:
            continue
        columns = block.columns
        if block is particles:
            columns = {k: [v[i] for i in rows] for k, v in columns.items()}
        tables[name] = columns
    write_star(out, tables)


def write_star_defocus(
    source: str | Path, rows: np.ndarray, ctf: CTFParams, out: str | Path
) -> None:
    """Write the STAR file ``source`` to ``out`` with the defocus values and angle of ``ctf``
    (one row per entry of ``rows``, the 0-based rows of its particle table) in ``rlnDefocusU``,
    ``rlnDefocusV`` and ``rlnDefocusAngle`` where they differ from those written; every other
    value as written, its other tables whole. Key-value blocks are left out."""
    source = Path(source)
    blocks = read_star(source)
    particles = particle_block(blocks, source)
    missing = [c for c in CTF_COLUMNS[:2] if c not in particles]
    if missing:
        raise InputError(f"{source}: the particle table has no {', '.join(missing)}")
    if len(ctf) != len(rows):
        raise ValueError(f"ctf has {len(ctf)} rows for {len(rows)} rows of the table")
    new = dict(
        zip(
            CTF_COLUMNS,
            (ctf.defocus_u_angstrom, ctf.defocus_v_angstrom, ctf.defocus_angle_degrees),
            strict=True,
        )
    )
    _write_moved(blocks, particles, rows, new, out)


def write_star_poses(
    source: str | Path,
    rows: np.ndarray,
    rotations: np.ndarray,
    shifts_angstrom: np.ndarray,
    pixel_sizes_angstrom: np.ndarray,
    out: str | Path,
) -> None:
    """Write the STAR file ``source`` to ``out`` with the poses ``rotations`` (RELION's ``A``,
    (n, 3, 3)) and ``shifts_angstrom`` (RELION's origins, (n, 2)), one per entry of ``rows`` (the
    0-based rows of its particle table), where they differ from those written: the Euler angles
    in ``rlnAngleRot``, ``rlnAngleTilt`` and ``rlnAnglePsi``, the origins in the file's own
    columns (``rlnOriginXAngst/YAngst`` in Å, or RELION 3.0's ``rlnOriginX/Y`` in pixels of each
    particle's own size, ``pixel_sizes_angstrom`` (n,); a table with neither gets the former, or
    the latter where the file has no optics table). A pose as written keeps its text. Every other
    value as written, its other tables whole."""
    source = Path(source)
    blocks = read_star(source)
    particles = particle_block(blocks, source)
    rows = np.asarray(rows, dtype=np.int64)
    rotations, shifts_angstrom = pose_arrays(rotations, shifts_angstrom, len(rows))
    missing = [c for c in ANGLE_COLUMNS if c not in particles]
    if missing:
        raise InputError(f"{source}: the particle table has no {', '.join(missing)}")
    written = np.stack([particles.get_float(c)[rows] for c in ANGLE_COLUMNS], 1)
    turn = rotations @ np.swapaxes(euler_relion_to_matrix(*written.T), 1, 2)
    kept = np.linalg.norm(matrix_to_rotvec(turn), axis=1) < 1e-9
    angles = np.where(kept[:, None], written, matrix_to_euler_relion(rotations))
    new = dict(zip(ANGLE_COLUMNS, angles.T, strict=True))
    pixel = np.asarray(pixel_sizes_angstrom, dtype=np.float64).reshape(-1)
    if "rlnOriginXAngst" in particles or ("rlnOriginX" not in particles and "optics" in blocks):
        origins, unit = ("rlnOriginXAngst", "rlnOriginYAngst"), np.ones(len(rows))
    else:
        origins, unit = ("rlnOriginX", "rlnOriginY"), pixel
    for axis, column in enumerate(origins):
        new[column] = shifts_angstrom[:, axis] / unit
    _write_moved(blocks, particles, rows, new, out)


def _write_moved(
    blocks: dict[str, StarBlock],
    particles: StarBlock,
    rows: np.ndarray,
    new: dict[str, np.ndarray],
    out: str | Path,
) -> None:
    """Write ``blocks`` to ``out`` with the particle table's ``new`` values (a column's per entry
    of ``rows``) where they differ from those written (a missing column is added, zero
    elsewhere); key-value blocks left out."""
    rows = np.asarray(rows, dtype=np.int64)
    tables = {}
    for name, block in blocks.items():
        if not block.is_loop:
            continue
        columns = dict(block.columns)
        if block is particles:
            for column, values_new in new.items():
                values_new = np.asarray(values_new, dtype=np.float64)
                if column in block:
                    values, recorded = list(columns[column]), block.get_float(column)[rows]
                else:
                    values, recorded = ["0.000000"] * block.n_rows, np.zeros(len(rows))
                moved = values_new != recorded
                if not moved.any():
                    continue
                for row, value in zip(
                    rows[moved].tolist(), values_new[moved].tolist(), strict=True
                ):
                    values[row] = f"{value:.6f}"
                columns[column] = values
        tables[name] = columns
    write_star(out, tables)


def write_star_ctf_state(source: str | Path, rows: np.ndarray, code: int, out: str | Path) -> None:
    """Write the STAR file ``source`` to ``out`` with the images of its particles at ``rows``
    (0-based rows of its particle table) flagged as holding CTF state ``code`` (a code of
    :data:`~cryosplat.core.ctf.CTF_IN_IMAGES`: 0 raw, 1 phase-flipped, 2 premultiplied) in
    :data:`CTF_IN_IMAGES_COLUMNS`; every other value as written, key-value blocks left out.

    With an optics table (RELION 3.1) the flags are its optics groups', so ``rows`` must hold
    every particle of each group they touch (an :class:`~cryosplat.core.errors.InputError`
    names the first group they split); the particle table's own flag columns, where it has
    them, are set to agree. Without one (RELION 3.0) the flags are the particles' own; a
    missing column is added, 0 in the rows not chosen."""
    if code not in (0, *CTF_IN_IMAGES_COLUMNS):
        raise ValueError(f"code must be 0, 1 or 2, got {code}")
    source = Path(source)
    blocks = read_star(source)
    particles = particle_block(blocks, source)
    rows = np.asarray(rows, dtype=np.int64)
    flags = {c: str(int(code == k)) for k, c in CTF_IN_IMAGES_COLUMNS.items()}
    tables = {}
    for name, block in blocks.items():
        if block.is_loop:
            tables[name] = {k: list(v) for k, v in block.columns.items()}
    table = tables[next(n for n, b in blocks.items() if b is particles)]
    optics = blocks.get("optics")
    if optics is not None and optics is not particles:
        chosen = _whole_optics_groups(optics, particles, rows, source)
        for column, flag in flags.items():
            values = tables["optics"].setdefault(column, ["0"] * optics.n_rows)
            for i in chosen.tolist():
                values[i] = flag
    for column, flag in flags.items():
        if column not in particles and optics is not None:
            continue  # the optics table holds it
        values = table.setdefault(column, ["0"] * particles.n_rows)
        for row in rows.tolist():
            values[row] = flag
    write_star(out, tables)


def _whole_optics_groups(
    optics: StarBlock, particles: StarBlock, rows: np.ndarray, source: Path
) -> np.ndarray:
    """The rows of the optics table whose groups hold the particles at ``rows``, each of which
    they must hold whole (groups numbered as :mod:`cryosplat.particles.relion` reads them)."""
    n_groups = optics.n_rows
    ids = optics.get_int("rlnOpticsGroup") if "rlnOpticsGroup" in optics else None
    ids = np.arange(1, n_groups + 1) if ids is None else ids
    if "rlnOpticsGroup" in particles:
        lookup = {int(i): g for g, i in enumerate(ids.tolist())}
        group_of = np.array([lookup[int(i)] for i in particles.get_int("rlnOpticsGroup")])
    else:
        group_of = np.zeros(particles.n_rows, dtype=np.int64)
    names = (
        [str(n) for n in optics.get_str("rlnOpticsGroupName")]
        if "rlnOpticsGroupName" in optics
        else [f"opticsGroup{i}" for i in ids.tolist()]
    )
    counts = np.bincount(group_of[rows], minlength=n_groups)
    whole = np.bincount(group_of, minlength=n_groups)
    chosen = np.flatnonzero(counts)
    for group in chosen.tolist():
        if counts[group] != whole[group]:
            raise InputError(
                f"{source}: the particles chosen are {counts[group]} of the {whole[group]} of "
                f"optics group {names[group]}: a RELION 3.1 STAR file flags the images' CTF "
                "state per optics group; choose whole groups (--optics-group)"
            )
    return chosen
