"""Per-particle weights: how much each image counts in a reconstruction.

``cryosplat score`` writes ``weights.npy``: for each row of the particle file, the chance that
the image holds the molecule at its pose (``1 −`` its chance of holding noise alone), NaN for rows
it did not score. ``reconstruct --weights weights.npy`` multiplies each image's terms in the
Fourier statistics by its weight (times its noise level's weight, where images are weighed by
their noise), so an image that is probably junk counts little instead of being left out or kept
whole (round 2, session 64, ``benchmarks/bench_junk.py``: on four sets with a quarter junk the
map's FSC with the truth gains 0.0014–0.0031 more over its curve than with the named particles
left out; on a fifth, with more signal, 0.0009 less).

The file is a float array indexed by the file's 0-based rows, as ``--ind`` numbers them; the
chosen particles' weights must be finite and at least 0, and not all 0. A weight of 1 for every
particle makes the same statistics as none.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from cryosplat.core.errors import InputError
from cryosplat.io.atomic import atomic_path
from cryosplat.particles.particle_set import ParticleSet

__all__ = ["read_weights", "with_weights", "write_weights"]


def read_weights(path: str | Path, rows_in_file: np.ndarray) -> np.ndarray:
    """The weights of the file rows ``rows_in_file`` (N,) from ``path``, float64 (N,).

    Raises
    ------
    InputError
        The file is missing or not a 1D numeric ``.npy`` array, it has no weight for a chosen row
        (too short, or NaN there), a weight is negative or infinite, or every weight is 0.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: weights file not found")
    try:
        table = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a .npy array of weights ({exc})") from None
    if table.ndim != 1 or not np.issubdtype(table.dtype, np.number):
        raise InputError(
            f"{path}: expected a 1D array of numbers (one weight per row of the particle file), "
            f"got shape {table.shape} of {table.dtype}"
        )
    rows = np.asarray(rows_in_file, dtype=np.int64)
    beyond = np.flatnonzero(rows >= len(table))
    if beyond.size:
        raise InputError(
            f"{path}: {len(table)} weights, no weight for row {rows[beyond[0]]} of the particle "
            "file (0-based)"
        )
    weights = table[rows].astype(np.float64)
    missing = np.flatnonzero(np.isnan(weights))
    if missing.size:
        raise InputError(
            f"{path}: no weight (NaN) for {missing.size} chosen particles, first row "
            f"{rows[missing[0]]} (0-based): give the rows the weights were made for (--ind, "
            "--class)"
        )
    bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
    if bad.size:
        raise InputError(
            f"{path}: weight {weights[bad[0]]} for row {rows[bad[0]]}; weights are finite and "
            "at least 0"
        )
    if not weights.sum() > 0:
        raise InputError(f"{path}: every chosen particle's weight is 0")
    return weights


def with_weights(particles: ParticleSet, path: str | Path | None) -> ParticleSet:
    """``particles`` with the weights ``path`` gives their file rows (unchanged for None)."""
    if path is None:
        return particles
    weights = read_weights(path, particles.rows_in_file())
    how = (
        f"weighted by {Path(path).name} (mean {weights.mean():.3f}; "
        f"{int((weights < 0.5).sum()):,} under 0.5)"
    )
    selection = f"{particles.selection}, {how}" if particles.selection else how
    return replace(particles, weights=weights, selection=selection, notes=list(particles.notes))


def write_weights(path: str | Path, rows_in_file: np.ndarray, weights: np.ndarray) -> None:
    """Write ``weights`` (N,) of the file rows ``rows_in_file`` (N,) as a file-row-indexed array,
    NaN for the rows not given; atomically."""
    rows = np.asarray(rows_in_file, dtype=np.int64)
    table = np.full(int(rows.max()) + 1 if rows.size else 0, np.nan)
    table[rows] = weights
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, table)
