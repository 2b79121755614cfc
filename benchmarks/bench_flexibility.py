"""A domain that moves from particle to particle (continuous flexibility).

Most real molecules are not rigid: a domain swings about a hinge by a few degrees, differently in
every particle. A consensus reconstruction of such a set converges to the mean over the motion —
the rigid core sharp, the moving domain smeared along its arc — which is the truth a benchmark
set of this kind is scored against. ``DatasetSpec.moving_part`` makes one: a soft ball of the
truth's density (:func:`bench_heterogeneity.part_weight`) is turned about an axis through a hinge point by an angle that differs between particles; the angles are
``states`` equal shares at the quantiles of a normal of s.d. ``sd_degrees``
(:func:`state_angles`), each particle is given one of them (:func:`particle_states`, drawn from
the set's own stream), and every state is projected by ``relion_project`` with the views, shifts
and CTFs the set would have without the motion (:func:`bench_heterogeneity.project_states`);
``truth.mrc`` is the states' mean (:func:`mean_of_states`). No set before round 2, session 73 had
a part that moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import torch
from bench_heterogeneity import part_weight, project_states

from cryosplat.io.mrc import read_map, write_map


@dataclass(frozen=True)
class MovingPart:
    """A ball of the truth's density turned about a hinge by an angle that differs by particle.

    Attributes
    ----------
    centre_voxel : (x, y, z)
        The ball's centre, in voxels of the truth's map (0-based, x the fastest axis).
    radius_angstrom : float
    hinge_voxel : (x, y, z)
        A point of the axis the ball turns about (voxels, as ``centre_voxel``).
    axis : (x, y, z)
        The axis' direction (any length but zero).
    sd_degrees : float
        The s.d. of the normal the turns are drawn from.
    states : int
        How many equal shares of the particles, each turned by one angle (at least 2).
    edge_angstrom : float
        Width of the ball's soft edge (a raised cosine).
    """

    centre_voxel: tuple[float, float, float]
    radius_angstrom: float
    hinge_voxel: tuple[float, float, float]
    axis: tuple[float, float, float]
    sd_degrees: float
    states: int = 7
    edge_angstrom: float = 6.0

    def __post_init__(self) -> None:
        if not self.radius_angstrom > 0 or not self.edge_angstrom > 0:
            raise ValueError(
                f"the moving part's radius and edge must be positive, got "
                f"{self.radius_angstrom} Å and {self.edge_angstrom} Å"
            )
        if not self.sd_degrees > 0:
            raise ValueError(
                f"the moving part's sd_degrees must be positive, got {self.sd_degrees}"
            )
        if self.states < 2:
            raise ValueError(f"the moving part needs at least 2 states, got {self.states}")
        if not np.linalg.norm(self.axis) > 0:
            raise ValueError(f"the moving part's axis must not be zero, got {self.axis}")


def state_angles(part: MovingPart) -> np.ndarray:
    """The turn of each state (degrees, ``(states,)``): the normal's quantiles at ``(j + ½) / K``,
    so that equal shares of the particles stand for the normal (their s.d. a little under
    ``sd_degrees``: 0.90 of it for 7 states)."""
    normal = NormalDist(0.0, part.sd_degrees)
    return np.array([normal.inv_cdf((j + 0.5) / part.states) for j in range(part.states)])


def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation matrix (3, 3), acting on (x, y, z), by ``degrees`` about ``axis`` (Rodrigues)."""
    u = axis / np.linalg.norm(axis)
    angle = np.deg2rad(degrees)
    cross = np.array([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


def turned_state(volume: np.ndarray, pixel_size_angstrom: float, part: MovingPart, degrees: float):
    """The map with the ball's density turned by ``degrees`` about the hinge (float32, (D, D, D)
    ``[z, y, x]``): ``V (1 − w) + T[V w]``, ``T`` the turn, trilinear; density turned out of the
    box is lost."""
    volume = np.asarray(volume, dtype=np.float64)
    box = volume.shape[0]
    weight = part_weight(box, pixel_size_angstrom, part)
    axis_points = np.arange(box, dtype=np.float64)
    z, y, x = np.meshgrid(axis_points, axis_points, axis_points, indexing="ij")
    points = np.stack([x, y, z], axis=-1) - np.asarray(part.hinge_voxel)
    # each output voxel takes the moved density from where the inverse turn puts it
    source = points @ _rotation(np.asarray(part.axis, dtype=np.float64), degrees) + np.asarray(
        part.hinge_voxel
    )
    grid = torch.from_numpy(2.0 * source / (box - 1) - 1.0)[None]  # (1, D, D, D, 3), (x, y, z)
    moved = torch.nn.functional.grid_sample(
        torch.from_numpy(volume * weight)[None, None],
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )[0, 0].numpy()
    return (volume * (1.0 - weight) + moved).astype(np.float32)


def turned_states(
    volume: np.ndarray, pixel_size_angstrom: float, part: MovingPart
) -> dict[str, np.ndarray]:
    """Every state's map (:func:`turned_state` at :func:`state_angles`), named ``"0"``, ``"1"``..."""
    angles = state_angles(part)
    return {
        f"{j}": turned_state(volume, pixel_size_angstrom, part, a) for j, a in enumerate(angles)
    }


def mean_of_states(states: dict[str, np.ndarray]) -> np.ndarray:
    """The mean of the states (float32): each holds an equal share of the particles."""
    return np.mean(list(states.values()), axis=0, dtype=np.float64).astype(np.float32)


def particle_states(n: int, part: MovingPart, seed: int) -> np.ndarray:
    """Each of ``n`` particles' state (int (n,)): equal shares (within one), in an order drawn from
    the set's own stream for it."""
    rng = np.random.default_rng([seed, 62])
    return rng.permutation(n) % part.states


def project_moving_part(folder: Path, columns: dict, part: MovingPart, seed: int, run) -> None:
    """``relion_project`` of a set whose particles each hold ``part`` turned by their own state's
    angle, into ``proj.mrcs``.

    ``folder/truth.mrc`` holds the unmoved map on entry; on return it holds the states' mean
    (:func:`mean_of_states`), with ``state_<j>.mrc`` beside it; ``columns`` and ``run`` as
    :func:`bench_heterogeneity.project_states` takes them.
    """
    volume, pixel = read_map(folder / "truth.mrc")
    states = turned_states(volume, pixel, part)
    write_map(folder / "truth.mrc", mean_of_states(states), pixel)
    which = particle_states(len(columns["rotations"]), part, seed)
    project_states(folder, columns, states, which, run)
