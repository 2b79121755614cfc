"""Where the random initial model is placed, and how large its ball is: about the half set's own
low-resolution density, no larger than the molecule.

:meth:`GaussianModel.random` fills a ball of ``init_radius_fraction`` of the box about the box's
centre. A molecule off the box's centre (a refinement centred elsewhere: a sub-complex, a
re-extraction that kept an old centre) lies partly outside that ball, and the fit reaches what it
misses late or not at all: EMD-1832 with its centre 24 voxels (0.21 of the box) from a box of 112's,
the half models' FSC with the truth 0.54 / 0.82 / 0.71 at shells 1 / 3 / 4 and the map 27.1 Å at
0.5, where relion's map has 32.5 Å; the ball put on the molecule, 0.82 / 0.95 / 0.91 and 23.9 Å
(round 2, session 42). And the fit's first scale, the least-squares factor of the random model
against the data at the lowest frequencies, whose sign tells protein-bright images from dark ones,
reads a ball that misses the molecule through the phases of a shifted one.

The ball's centre is therefore the centroid of the half's own direct inversion on the first
stage's grid, weighted by its squared density above its :data:`ENERGY_QUANTILE` quantile (the
noise, spread over the whole box, does not pull it to the centre, and either contrast finds the
molecule): each half finds it in its own data, so the halves stay independent. Measured on the
statistics of eight sets against the truth's centre of mass (voxels): EMD-1832 13 voxels off
(−10.3, 6.8, −4.8), found at (−10.7, 6.3, −4.9); EMD-5625 12 off (9.7, −5.4, 5.9), at (8.2, −5.3,
5.7); EMD-1832 24 off along x, at 19.5. Weighted above the median instead, 9.0, 4.4 and 11.7
along those largest offsets: the noise pulls them in. It is used where it lies more than
:data:`MIN_SHIFT_FRACTION` of the box from the centre (the 34 centred benchmark sets read at most
0.055, every view within 10° of one axis, and EMD-1832 at box 64 0.04: their fits stay as they
were, to the bit), no farther than keeps the ball inside the box; a symmetric model stays at the
centre, where its axes cross.

The ball's radius follows the molecule's size (:func:`initial_radius_fraction`): at most
``init_radius_fraction`` (0.3 of the box), and no more than :data:`RADIUS_PER_GYRATION` times the
radius of gyration of the same density above :data:`EXTENT_THRESHOLD` of its peak. A molecule
with solvent round it (a box 1.5-2 times the particle, as extraction leaves it) otherwise starts
Gaussians in the solvent, where the data pull them nowhere and they fit the noise; Gaussians
started inside a molecule spread to its edge as the fit goes. Measured in round 2, session 46
(``benchmarks/RESULTS.md``): EMD-1832 in a box of 112 (its radius of gyration 0.10 of the box)
24.21 → 22.84 Å at 0.5 and 19.22 → 15.56 Å at 0.143; EMD-5625 in a box of 96 20.37 → 19.96 Å;
molecules that fill their box keep the 0.3 ball (EMD-5625) or lose nothing with a smaller one.
The per-image engine reads the same ball (:func:`ball_from_statistics`; session 47: EMD-1832 5
voxels off the centre of a box of 96, 26.75 → 24.59 Å at 0.5).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from cryosplat.reconstruct.grid.statistics import FourierStatistics

__all__ = [
    "EXTENT_THRESHOLD",
    "MIN_RADIUS_FRACTION",
    "RADIUS_PER_GYRATION",
    "initial_ball",
    "initial_radius_fraction",
    "molecule_gyration_fraction",
    "CENTROID_BOX_FRACTION",
    "ENERGY_QUANTILE",
    "MIN_SHIFT_FRACTION",
    "ball_from_statistics",
    "initial_centre_angstrom",
]

log = logging.getLogger("cryosplat")

CENTROID_BOX_FRACTION = 0.25
"""The grid the per-image engine reads its ball on, as a share of the box (the grid engine
reads it on its first stage's, a quarter of the box by default)."""

MIN_SHIFT_FRACTION = 0.06
"""The data's centroid moves the ball only when it lies farther than this share of the box edge
from the box's centre."""

ENERGY_QUANTILE = 0.9
"""The centroid weighs each voxel's squared density above this quantile of them."""

EXTENT_THRESHOLD = 0.2
"""The molecule's size is read on the low-resolution density above this share of its peak."""

RADIUS_PER_GYRATION = 1.0
"""The ball's radius is at most this many times the molecule's radius of gyration (a uniform
ball's radius of gyration is 0.77 of its radius: the ball is a little more compact than the
molecule)."""

MIN_RADIUS_FRACTION = 0.08
"""The ball's radius is at least this share of the box edge (two voxels of a first stage of a
quarter of the box)."""


def molecule_gyration_fraction(density: np.ndarray) -> float | None:
    """Radius of gyration of ``density`` (D, D, D) above :data:`EXTENT_THRESHOLD` of its peak,
    about its own centroid, as a share of the box edge; the density's sign is taken where its
    largest magnitude lies (either contrast). None where nothing lies above the threshold."""
    values = np.asarray(density, dtype=np.float64)
    if values.ndim != 3 or not np.isfinite(values).all():
        return None
    if -values.min() > values.max():
        values = -values
    mass = np.clip(values - EXTENT_THRESHOLD * values.max(), 0.0, None).ravel()
    total = float(mass.sum())
    if not total > 0:
        return None
    offsets = np.indices(values.shape, dtype=np.float64).reshape(3, -1)
    centroid = offsets @ mass / total
    squared = ((offsets - centroid[:, None]) ** 2).sum(axis=0)
    return float(np.sqrt(squared @ mass / total)) / values.shape[0]


def initial_radius_fraction(stats: FourierStatistics, largest: float) -> float:
    """The random initial model's ball radius (share of the box edge): ``largest``
    (``init_radius_fraction``) or, for a molecule smaller than that ball,
    :data:`RADIUS_PER_GYRATION` times its radius of gyration in the half's own direct inversion
    on ``stats``' grid (:func:`molecule_gyration_fraction`), at least
    :data:`MIN_RADIUS_FRACTION`."""
    return _radius_from_density(_density(stats), largest)


def _density(stats: FourierStatistics) -> np.ndarray:
    """The half's direct inversion on ``stats``' grid: the ball's size and centre are read on
    it."""
    with torch.no_grad():
        return stats.reconstruct_wiener().cpu().numpy()


def _radius_from_density(density: np.ndarray, largest: float) -> float:
    """:func:`initial_radius_fraction` on the inversion ``density``."""
    _check_radius(largest)
    gyration = molecule_gyration_fraction(density)
    if gyration is None:
        return largest
    radius = min(largest, max(MIN_RADIUS_FRACTION, RADIUS_PER_GYRATION * gyration))
    if radius < largest:
        log.info(
            "random start: the molecule's radius of gyration is %.2f of the box; the initial ball "
            "has radius %.2f of it (at most %.2f)",
            gyration,
            radius,
            largest,
        )
    return radius


def initial_centre_angstrom(
    stats: FourierStatistics, radius_fraction: float, symmetry: str = "C1"
) -> np.ndarray:
    """Centre ``(x, y, z)`` (Å from voxel ``D // 2``) of the random initial model's ball.

    Parameters
    ----------
    stats : FourierStatistics
        One half set's statistics cropped to the first stage's box (its pixel size; the centroid
        is as coarse as that grid, which is all a ball of radius 0.3 of the box needs), on the
        padded grid: the inversion of their unpadded restatement, whose CTF² kernel is cut at
        half a box, put a centred molecule's centroid 6 voxels off in a box of 32.
    radius_fraction : float
        The ball's radius as a share of the box edge (``init_radius_fraction``).
    symmetry : str
        Point group of the model: anything but ``C1`` keeps the centre.

    Returns
    -------
    np.ndarray (3,), float64: zeros where the ball stays at the box's centre.
    """
    return _centre_from_density(
        _density(stats), stats.pixel_size_angstrom, radius_fraction, symmetry
    )


def initial_ball(
    stats: FourierStatistics, largest: float, symmetry: str = "C1", from_data: bool = True
) -> tuple[np.ndarray, float]:
    """The random initial model's ball: its centre (:func:`initial_centre_angstrom`) and radius
    (:func:`initial_radius_fraction` where ``from_data``, else ``largest``), both read on one
    inversion of ``stats``."""
    density = _density(stats)
    radius = _radius_from_density(density, largest) if from_data else largest
    return _centre_from_density(density, stats.pixel_size_angstrom, radius, symmetry), radius


def _check_radius(radius_fraction: float) -> None:
    if not 0 < radius_fraction <= 0.5:
        raise ValueError(f"radius_fraction must be in (0, 0.5], got {radius_fraction}")


def _centre_from_density(
    density: np.ndarray, pixel_size_angstrom: float, radius_fraction: float, symmetry: str
) -> np.ndarray:
    """:func:`initial_centre_angstrom` on the inversion ``density``."""
    _check_radius(radius_fraction)
    centre = np.zeros(3)
    if symmetry.upper() != "C1":
        return centre
    box = density.shape[0]
    energy = density**2
    energy = np.clip(energy - np.quantile(energy, ENERGY_QUANTILE), 0.0, None)
    total = float(energy.sum())
    if not total > 0 or not np.isfinite(total):
        return centre
    offsets = np.indices(energy.shape, dtype=np.float64).reshape(3, -1) - box // 2
    voxels = (offsets @ energy.ravel() / total)[::-1]  # z, y, x -> x, y, z
    distance = float(np.linalg.norm(voxels))
    if distance <= MIN_SHIFT_FRACTION * box:
        return centre
    reach = (0.5 - radius_fraction) * box
    if distance > reach:
        voxels *= reach / distance
    centre = voxels * pixel_size_angstrom
    log.info(
        "random start: the molecule lies off the box's centre; the initial ball is put on this "
        "half's low-resolution density, (%.1f, %.1f, %.1f) Å from it (x, y, z)",
        *centre,
    )
    return centre


def ball_from_statistics(
    stats: FourierStatistics, largest: float, symmetry: str = "C1", from_data: bool = True
) -> tuple[np.ndarray, float]:
    """:func:`initial_ball` read on ``stats`` (one half's, on the padded grid) cropped to
    :data:`CENTROID_BOX_FRACTION` of the box (at least 8 voxels, even): the grid engine's first
    stage's grid, for the per-image engine, which has no stages."""
    box = min(stats.box, max(8, 2 * round(CENTROID_BOX_FRACTION * stats.box / 2)))
    return initial_ball(stats.crop(box), largest, symmetry, from_data)
