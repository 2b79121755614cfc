"""Neighbouring particles in the box, as picks from a crowded micrograph hold them.

A particle picked from a dense micrograph has parts of its neighbours in its box: density that
belongs to no view of the molecule at the box's centre, off-centre, mostly in the corners, with the
same CTF as the particle (one micrograph's defocus). The corners are where cryosplat reads each
image's background and noise level (``reconstruct/grid/background.py``, ``noise_levels.py``), so a
set with neighbours tests those readings against density that is not noise.

:func:`add_neighbours` projects the truth a second time with ``relion_project`` along the same rows
(each row's CTF), its views a permutation of the set's own (the same view distribution), no shift,
and adds to a chosen share of the clean images one such projection moved by a random vector of
length :data:`NEIGHBOUR_DISTANCE` (a fraction of the box), its part outside the box cut off;
which images hold one is saved as ``neighbours.npy``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from cryosplat.io.mrc import MRCStack
from cryosplat.io.stack_writer import StreamingStackWriter
from cryosplat.io.star import write_relion31_particles

__all__ = ["NEIGHBOUR_DISTANCE", "add_neighbours", "shifted_without_wrap"]

NEIGHBOUR_DISTANCE = (0.55, 0.8)
"""Range of the neighbour's distance from the box centre, as a fraction of the box edge."""

BATCH = 1000


def shifted_without_wrap(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` moved by ``(dy, dx)`` pixels; what leaves the box is lost, what enters is 0."""
    out = np.zeros_like(image)
    d = image.shape[0]
    ys, yd = slice(max(0, -dy), min(d, d - dy)), slice(max(0, dy), min(d, d + dy))
    xs, xd = slice(max(0, -dx), min(d, d - dx)), slice(max(0, dx), min(d, d + dx))
    out[yd, xd] = image[ys, xs]
    return out


def add_neighbours(folder: Path, columns: dict, share: float, seed: int) -> np.ndarray:
    """Add neighbours to ``share`` of the clean images ``folder/proj.mrcs`` in place.

    Parameters
    ----------
    folder : Path
        The set's folder, holding ``truth.mrc`` and the clean projections ``proj.mrcs``.
    columns : dict
        The set's metadata as ``write_relion31_particles`` takes it (rotations, CTF, box, ...).
    share : float
        Fraction of the images given a neighbour, in (0, 1].
    seed : int

    Returns
    -------
    np.ndarray of bool, shape (N,): which images have a neighbour.
    """
    if not 0 < share <= 1:
        raise ValueError(f"neighbour share must be in (0, 1], got {share}")
    rng = np.random.default_rng([seed, 13])
    n = len(columns["rotations"])
    others = dict(columns, rotations=columns["rotations"][rng.permutation(n)])
    others["shifts_angstrom"] = np.zeros((n, 2))
    write_relion31_particles(folder / "in_neighbours.star", image_names=None, **others)
    with open(folder / "relion_project_neighbours.log", "w") as log:
        subprocess.run(
            ["relion_project", "--i", "truth.mrc", "--ang", "in_neighbours.star"]
            + ["--o", "neighbours", "--ctf"],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    chosen = rng.random(n) < share
    angle = rng.uniform(0, 2 * np.pi, n)
    box = columns["box"]
    radius = rng.uniform(*NEIGHBOUR_DISTANCE, n) * box
    dy = np.round(radius * np.sin(angle)).astype(int)
    dx = np.round(radius * np.cos(angle)).astype(int)
    clean, neighbours = MRCStack(folder / "proj.mrcs"), MRCStack(folder / "neighbours.mrcs")
    writer = StreamingStackWriter(folder / "proj_nb.mrcs", n, box, columns["pixel_size_angstrom"])
    for start in range(0, n, BATCH):
        rows = np.arange(start, min(n, start + BATCH))
        images, extra = clean.read(rows), neighbours.read(rows)
        for j, i in enumerate(rows):
            if chosen[i]:
                images[j] += shifted_without_wrap(extra[j], int(dy[i]), int(dx[i]))
        writer.write(images)
    writer.close()
    (folder / "neighbours.mrcs").unlink()
    (folder / "proj_nb.mrcs").replace(folder / "proj.mrcs")
    np.save(folder / "neighbours.npy", chosen)  # which images hold one, for the record
    return chosen
