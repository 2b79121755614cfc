"""Rows whose images hold one patch of a micrograph, which gold-standard half sets keep whole.

Two kinds of rows share what their images hold beyond chance:

- **close picks** (:mod:`cryosplat.particles.close_picks`): two picks within 30 Å on one micrograph
  are two images of one particle, the same noise and the same signal;
- **segments of one helical tube** (RELION's ``rlnHelicalTubeID``, numbered per micrograph;
  cryoSPARC's ``filament/filament_uid``): a filament is boxed every few asymmetric units, so
  neighbouring segments overlap by most of their box and hold the same stretch of filament.

Where such rows fall in different half sets, the halves share that signal and noise, and their
FSC, and any resolution read from it, comes out too high; for helical segments far too high.
RELION's helical refinement draws ``rlnRandomSubset`` per tube for this reason. Where cryosplat
draws the half sets itself (:func:`cryosplat.particles.halves.split_halves`), it keeps each group
of :func:`patch_groups` whole; where the file's half sets split a tube, the reader warns.
"""

from __future__ import annotations

import numpy as np

from cryosplat.particles.close_picks import CLOSE_PICK_ANGSTROM, close_pairs, close_pick_notes

__all__ = [
    "linked_labels",
    "linked_rows",
    "patch_groups",
    "tube_keys",
    "helical_findings",
    "straddling_picks_warning",
    "patch_findings",
    "STRADDLING_PICKS_FRACTION",
]

STRADDLING_PICKS_FRACTION = 0.01
"""Pairs of close picks in different given half sets, as a fraction of the particles, from which
the reader warns (below it, :func:`~cryosplat.particles.close_picks.close_pick_notes` notes them).
Measured on EMD-5625 (2,000 particles, box 56, halves given), duplicates of 0.5, 1, 3 and 10 % of
the particles across the halves made the reported resolution read 4.5, 3.5, 5.5 and 27 % finer
than without them (round 2, session 93)."""


def linked_rows(n: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Connected components of ``n`` rows joined by the pairs ``(first[p], second[p])``.

    Returns
    -------
    np.ndarray, shape (n,), int64
        Each row's component, numbered from 0 in the order of the components' first rows.
    """
    first = np.asarray(first, dtype=np.int64).reshape(-1)
    second = np.asarray(second, dtype=np.int64).reshape(-1)
    root = np.arange(n, dtype=np.int64)
    while True:  # hook each pair's roots onto the smaller, then shortcut to the roots
        low = np.minimum(root[first], root[second])
        before = root.copy()
        np.minimum.at(root, root[first], low)
        np.minimum.at(root, root[second], low)
        while not np.array_equal(root, root[root]):
            root = root[root]
        if np.array_equal(root, before):
            break
    return np.unique(root, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _label_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs joining each row to the first row of its label (negative labels join nothing)."""
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.flatnonzero(labels >= 0)
    _, first, inverse = np.unique(labels[rows], return_index=True, return_inverse=True)
    return rows, rows[first[inverse.reshape(-1)]]


def linked_labels(*labellings: np.ndarray) -> np.ndarray:
    """Connected components of rows that share a label in any of ``labellings`` (each (N,),
    int; negative: no label), numbered as :func:`linked_rows` numbers them."""
    pairs = [_label_pairs(labels) for labels in labellings]
    first = np.concatenate([p[0] for p in pairs])
    second = np.concatenate([p[1] for p in pairs])
    return linked_rows(len(labellings[0]), first, second)


def tube_keys(micrographs: np.ndarray | None, tubes: np.ndarray) -> np.ndarray | None:
    """One key per helical tube, int64 (N,), numbered from 0.

    RELION numbers tubes per micrograph from 1 (``rlnHelicalTubeID``; 0 or less: no tube), so a
    tube is ``(micrograph, id)``; with ``micrographs`` None the ids are taken as unique across the
    set (cryoSPARC's 64-bit ``filament/filament_uid``, read exactly; 0: no filament).
    Rows of no tube get −1. None where the ids are not whole numbers."""
    tubes = np.asarray(tubes).reshape(-1)
    if micrographs is None:  # 0: no filament (a random 64-bit uid is never 0)
        keys = np.unique(tubes, return_inverse=True)[1].astype(np.int64).reshape(-1)
        return np.where(tubes == 0, -1, keys)
    ids = tubes.astype(np.float64)
    if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
        return None
    key = np.stack([np.asarray(micrographs, dtype=np.float64), ids], axis=1)
    inverse = np.unique(key, axis=0, return_inverse=True)[1].astype(np.int64).reshape(-1)
    return np.where(ids > 0, inverse, -1)


def _close_pairs(micrographs, centres, radius: float) -> tuple[np.ndarray, np.ndarray] | None:
    if micrographs is None or centres is None or len(centres) < 2:
        return None
    return close_pairs(micrographs, centres, radius)


def patch_groups(
    micrographs: np.ndarray | None,
    centres: np.ndarray | None,
    tubes: np.ndarray | None,
    radius: float = CLOSE_PICK_ANGSTROM,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray | None:
    """Groups of rows that hold one patch of a micrograph: picks within ``radius`` of each other
    on one micrograph (chained), and the segments of one helical tube (``tubes``:
    :func:`tube_keys`). ``pairs``: the close picks, where already found.

    Returns
    -------
    np.ndarray, shape (N,), int64, or None
        Each row's group (:func:`linked_rows`); None where no two rows share a patch.
    """
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    n = None
    if pairs is None:
        pairs = _close_pairs(micrographs, centres, radius)
    if pairs is not None:
        n = len(centres)
        parts.append(pairs)
    if tubes is not None:
        n = len(tubes)
        parts.append(_label_pairs(tubes))
    if n is None:
        return None
    first = np.concatenate([p[0] for p in parts])
    second = np.concatenate([p[1] for p in parts])
    if not np.any(first != second):
        return None
    return linked_rows(n, first, second)


def helical_findings(
    tubes: np.ndarray | None, random_subset: np.ndarray | None, column: str, split_column: str
) -> tuple[list[str], list[str]]:
    """A note on helical segments (how many, in how many tubes; no helical symmetry imposed) and
    a warning where the file's half sets (``random_subset``) split a tube."""
    if tubes is None or not np.any(tubes >= 0):
        return [], []
    in_tube = tubes >= 0
    n_tubes = len(np.unique(tubes[in_tube]))
    note = (
        f"helical segments: {int(in_tube.sum()):,} particles in {n_tubes:,} tubes ({column}). "
        "reconstruct imposes helical symmetry where --helical-twist, --helical-rise and "
        "--helical-asu give it (as relion_reconstruct's --helical_twist, --helical_rise and "
        "--nr_helical_asu); without them the map is the segments' reconstruction as single "
        "particles"
    )
    if random_subset is None:
        return [note + "; each tube's segments are kept in one half set"], []
    subsets = np.asarray(random_subset)[in_tube]
    labels = tubes[in_tube]
    size = int(labels.max()) + 1
    first = np.bincount(labels, weights=(subsets == 1), minlength=size) > 0
    second = np.bincount(labels, weights=(subsets == 2), minlength=size) > 0
    split = int(np.count_nonzero(first & second))
    if not split:
        return [note + f"; no tube is split between the {split_column} half sets"], []
    warning = (
        f"{split:,} of {n_tubes:,} helical tubes have segments in both {split_column} half sets: "
        "neighbouring segments overlap and hold the same stretch of filament, so the halves "
        "share it and their FSC and the resolution read too high. RELION's helical refinement "
        "draws the half sets per tube; --ignore-random-subset draws them here, each tube in "
        "one half (the halves are then not independent of the poses)"
    )
    return [note], [warning]


def straddling_picks_warning(
    micrographs: np.ndarray | None,
    centres: np.ndarray | None,
    random_subset: np.ndarray | None,
    split_column: str,
    radius: float = CLOSE_PICK_ANGSTROM,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
    n_particles: int | None = None,
) -> list[str]:
    """A warning where pairs of close picks in different given half sets reach
    :data:`STRADDLING_PICKS_FRACTION` of the particles (``n_particles``, default the rows);
    empty otherwise (``pairs``: the close picks, where already found)."""
    if micrographs is None or centres is None or random_subset is None or len(centres) < 2:
        return []
    i, j = close_pairs(micrographs, centres, radius) if pairs is None else pairs
    across = int(np.count_nonzero(random_subset[i] != random_subset[j]))
    n = len(centres) if n_particles is None else n_particles
    if across < STRADDLING_PICKS_FRACTION * n:
        return []
    return [
        f"{across:,} pairs of particles picked twice ({100 * across / n:.1f} % of the "
        f"particles; within {radius:g} Å on one micrograph) lie in different {split_column} half "
        "sets: each pair is one particle's image twice, so the halves share its noise, their FSC "
        "and the resolution read too high (duplicates of 10 % of a set across its halves read "
        "27 % finer) and the map is fitted to that noise. Remove duplicates first (RELION's "
        "Subset selection, cryoSPARC's Remove Duplicate Particles), or pass "
        "--ignore-random-subset to draw the halves here, each pair in one half (they are then "
        "not independent of the poses)"
    ]


def patch_findings(
    micrographs: np.ndarray | None,
    centres: np.ndarray | None,
    tubes: np.ndarray | None,
    random_subset: np.ndarray | None,
    columns: tuple[str, str],
    image_keys: np.ndarray | None = None,
) -> tuple[np.ndarray | None, list[str], list[str]]:
    """What a reader records of the rows that share a patch: their :func:`patch_groups`, notes
    (close picks, helical segments) and warnings (given half sets that split close picks or a
    tube). ``columns``: the file's names of the tube id and of the half-set label.

    ``image_keys`` (N,): rows with one key read one image (a symmetry-expanded set lists each
    image once per operator, at one place on its micrograph). Close picks are then looked for
    among distinct images only: the copies are not picks, and an expanded set of ``G`` copies
    would otherwise hold ``G(G−1)/2`` pairs an image (the half sets keep an image's rows
    together anyway, :func:`~cryosplat.particles.halves.split_halves`)."""
    tube_column, split_column = columns
    radius = CLOSE_PICK_ANGSTROM
    pairs, n_particles = None, None if centres is None else len(centres)
    if micrographs is not None and centres is not None and len(centres) > 1:
        firsts = np.arange(len(centres))
        if image_keys is not None:
            firsts = np.sort(np.unique(image_keys, return_index=True)[1])
        i, j = close_pairs(micrographs[firsts], centres[firsts], radius)
        pairs, n_particles = (firsts[i], firsts[j]), len(firsts)
    notes = close_pick_notes(micrographs, centres, random_subset, radius, pairs)
    helical_notes, warnings = helical_findings(tubes, random_subset, tube_column, split_column)
    straddling = straddling_picks_warning(
        micrographs, centres, random_subset, split_column, radius, pairs, n_particles
    )
    groups = patch_groups(micrographs, centres, tubes, radius, pairs)
    return groups, notes + helical_notes, straddling + warnings
