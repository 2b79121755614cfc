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
    "particle_block",
    "write_star_defocus",
    "write_star_poses",
    "write_star_rows",
]

CTF_COLUMNS = ("rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle")
ANGLE_COLUMNS = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")


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
