"""A RELION STAR file's particle table, and the file written back with chosen rows or moved defoci.

Reading the particles themselves is :mod:`cryosplat.particles.relion`'s; these write what
``score`` keeps and ``refine-defocus`` refines, every other value as the source wrote it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryosplat.core.ctf import CTFParams
from cryosplat.core.errors import InputError
from cryosplat.io.star import StarBlock, read_star, write_star

__all__ = [
    "ANGLE_COLUMNS",
    "CTF_COLUMNS",
    "particle_block",
    "write_star_defocus",
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
    rows = np.asarray(rows, dtype=np.int64)
    if len(ctf) != len(rows):
        raise ValueError(f"ctf has {len(ctf)} rows for {len(rows)} rows of the table")
    new = dict(
        zip(
            CTF_COLUMNS,
            (ctf.defocus_u_angstrom, ctf.defocus_v_angstrom, ctf.defocus_angle_degrees),
            strict=True,
        )
    )
    tables = {}
    for name, block in blocks.items():
        if not block.is_loop:
            continue
        columns = dict(block.columns)
        if block is particles:
            for column, values_new in new.items():
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
