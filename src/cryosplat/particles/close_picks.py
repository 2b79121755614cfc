"""Particles picked twice: two rows whose centres lie within :data:`CLOSE_PICK_ANGSTROM` of each
other on one micrograph.

Two pickers, or a picker run twice, leave the same particle in a set twice as two extracted images
of one patch of the micrograph: they share the micrograph's noise. Where the two fall in different
half sets, the halves share that noise too, so their FSC, and any resolution read from it, comes
out too high; within one half the particle counts twice. RELION's "Subset selection: remove
duplicates" (30 Å by default) and cryoSPARC's "Remove Duplicate Particles" take them out; a set
that skipped them gets a note from here (its rows and how many pairs straddle the half sets), half
sets drawn by cryosplat keep each pair in one half, and given half sets that split many pairs are
warned of (:mod:`cryosplat.particles.shared_patches`).

Where a RELION STAR records ``rlnMicrographName`` and ``rlnCoordinateX/Y`` (pixels of the
micrograph), a particle's centre is ``coordinate · micrograph pixel − origin`` in Å; the
micrograph's pixel size is ``rlnMicrographPixelSize`` where recorded, otherwise the image's
(exact for extraction without rescaling; after a binned one it overstates the distances, so
fewer pairs are named). A cryoSPARC table gives it as ``location/center_x_frac`` and
``center_y_frac`` of ``micrograph_shape`` at ``micrograph_psize_A``.
"""

from __future__ import annotations

import numpy as np

from cryosplat.io.star import StarBlock

__all__ = [
    "CLOSE_PICK_ANGSTROM",
    "relion_pick_centres",
    "cryosparc_pick_centres",
    "close_pairs",
    "close_pick_notes",
]

CLOSE_PICK_ANGSTROM = 30.0
"""Two picks closer than this on one micrograph are taken for one particle (RELION's default
minimum distance for removing duplicates)."""

MICROGRAPH_LIMIT_ANGSTROM = 1e6
"""Centres beyond this (100 µm; a micrograph spans a few µm) are no pick coordinates."""


def relion_pick_centres(
    particles: StarBlock,
    optics: StarBlock | None,
    group_of: np.ndarray,
    pixel_per_particle: np.ndarray,
    shifts_angstrom: np.ndarray | None,
) -> np.ndarray | None:
    """Each particle's centre on its micrograph, Å, float64 (N, 2); None where the STAR does not
    record the micrograph and the pick coordinates (or they are not finite)."""
    if not all(c in particles for c in ("rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY")):
        return None
    picks = np.stack(
        [particles.get_float("rlnCoordinateX"), particles.get_float("rlnCoordinateY")], axis=1
    )
    column = "rlnMicrographPixelSize"
    if column in particles:
        pixel = particles.get_float(column)
    elif optics is not None and column in optics:
        pixel = optics.get_float(column)[group_of]
    else:
        pixel = np.asarray(pixel_per_particle, dtype=np.float64)
    return _on_a_micrograph(picks * pixel[:, None], shifts_angstrom)


CRYOSPARC_PICK_FIELDS = (
    "location/center_x_frac",
    "location/center_y_frac",
    "location/micrograph_shape",
    "location/micrograph_psize_A",
)


def cryosparc_pick_centres(
    table: np.ndarray, shifts_angstrom: np.ndarray | None
) -> np.ndarray | None:
    """Each particle's centre on its micrograph, Å, float64 (N, 2), from a cryoSPARC table's
    ``location/center_x_frac`` and ``center_y_frac`` (fractions of the micrograph's width and
    height), ``micrograph_shape`` (rows, columns) and ``micrograph_psize_A``; None where they are
    not all recorded (or not finite)."""
    if not all(name in (table.dtype.names or ()) for name in CRYOSPARC_PICK_FIELDS):
        return None
    shape = np.asarray(table["location/micrograph_shape"], dtype=np.float64).reshape(-1, 2)
    fractions = np.stack(
        [table["location/center_x_frac"], table["location/center_y_frac"]], axis=1
    ).astype(np.float64)
    psize = np.asarray(table["location/micrograph_psize_A"], dtype=np.float64)
    return _on_a_micrograph(fractions * shape[:, ::-1] * psize[:, None], shifts_angstrom)


def _on_a_micrograph(picks: np.ndarray, shifts_angstrom: np.ndarray | None) -> np.ndarray | None:
    """The particles' centres, their picks (Å) less their shifts; None where any is not finite
    or lies beyond :data:`MICROGRAPH_LIMIT_ANGSTROM` (no coordinates on a micrograph)."""
    centres = picks if shifts_angstrom is None else picks - shifts_angstrom
    return centres if np.all(np.abs(centres) < MICROGRAPH_LIMIT_ANGSTROM) else None


def close_pairs(
    micrographs: np.ndarray, centres: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``i < j`` on one micrograph whose centres lie within ``radius``, in one pass over
    cells of side ``radius`` (each pair is in one cell or two adjacent ones).

    Parameters
    ----------
    micrographs : np.ndarray, shape (N,), int
    centres : np.ndarray, shape (N, 2), Å
    radius : float, Å

    Returns
    -------
    i, j : np.ndarray, int64 (P,)
    """
    n = len(centres)
    cell = np.floor(centres / radius).astype(np.int64)
    cell -= cell.min(axis=0) - 1  # from 1, so a neighbour's cell is never negative
    span = int(cell.max()) + 2
    mic = np.asarray(micrographs, dtype=np.int64)
    key = (mic * span + cell[:, 0]) * span + cell[:, 1]
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    found_i, found_j = [], []
    # each pair of cells once: a cell with itself, and with four of its eight neighbours
    for dx, dy in ((0, 0), (0, 1), (1, -1), (1, 0), (1, 1)):
        wanted = (mic * span + cell[:, 0] + dx) * span + cell[:, 1] + dy
        lo = np.searchsorted(sorted_key, wanted, side="left")
        count = np.searchsorted(sorted_key, wanted, side="right") - lo
        i = np.repeat(np.arange(n), count)
        start = np.repeat(lo - np.concatenate([[0], np.cumsum(count)[:-1]]), count)
        j = order[start + np.arange(i.size)]
        keep = (i != j) & (np.hypot(*(centres[i] - centres[j]).T) < radius)
        if (dx, dy) == (0, 0):
            keep &= i < j
        found_i.append(i[keep])
        found_j.append(j[keep])
    i, j = np.concatenate(found_i), np.concatenate(found_j)
    first, second = np.minimum(i, j), np.maximum(i, j)
    by_row = np.lexsort((second, first))
    return first[by_row], second[by_row]


def close_pick_notes(
    micrographs: np.ndarray | None,
    centres: np.ndarray | None,
    random_subset: np.ndarray | None,
    radius: float = CLOSE_PICK_ANGSTROM,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[str]:
    """A note where particles lie within ``radius`` of another on their micrograph, counting the
    pairs, those split between ``rlnRandomSubset`` 1 and 2, and naming the first rows (``pairs``:
    :func:`close_pairs` of them, where already found)."""
    if micrographs is None or centres is None or len(centres) < 2:
        return []
    i, j = close_pairs(micrographs, centres, radius) if pairs is None else pairs
    if i.size == 0:
        return []
    first = ", ".join(
        f"{a + 1} and {b + 1}" for a, b in list(zip(i.tolist(), j.tolist(), strict=True))[:3]
    )
    split = ""
    if random_subset is not None:
        across = int(np.count_nonzero(random_subset[i] != random_subset[j]))
        split = (
            f"; {across} of the pairs straddle rlnRandomSubset 1 and 2, where the halves share "
            "their noise and the FSC and resolution read too high"
            if across
            else "; none straddles the half sets"
        )
    return [
        f"picked twice?: {i.size} pairs of particles lie within {radius:g} Å of each other on "
        f"one micrograph (rows {first}{', ...' if i.size > 3 else ''}): two images of one "
        f"particle{split}. Remove duplicates first (RELION's Subset selection, cryoSPARC's "
        "Remove Duplicate Particles)"
    ]
