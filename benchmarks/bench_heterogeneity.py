"""A part of the molecule present in only some particles (compositional heterogeneity).

Real particle sets are rarely one state: a subunit or a ligand bound in part of them, a domain
lost in the grid's air-water interface. A consensus reconstruction of such a set converges to the
occupancy-weighted mean of the states, which is the truth a benchmark set of this kind is scored
against. ``DatasetSpec.missing_part`` makes one: the truth's map with a soft ball of density
removed (:func:`without_part`) is projected for the particles that lack the part, the whole map
for the others (:func:`holds_part`, drawn from the set's own stream), both by ``relion_project``
with the same views, shifts and CTFs as a set without it would have; ``truth.mrc`` is their mean
weighted by the share that holds the part (:func:`mean_state`). No set before round 2, session 59
mixed two states.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from cryosplat.io.mrc import MRCStack, read_map, write_map, write_stack
from cryosplat.io.star import write_relion31_particles
from cryosplat.validation.masks import soft_edge


@dataclass(frozen=True)
class MissingPart:
    """A ball of the truth's density that only ``present_fraction`` of the particles hold.

    Attributes
    ----------
    centre_voxel : (x, y, z)
        The ball's centre, in voxels of the truth's map (0-based, x the fastest axis).
    radius_angstrom : float
    present_fraction : float
        Share of the particles that hold it, in (0, 1).
    edge_angstrom : float
        Width of the ball's soft edge (a raised cosine).
    """

    centre_voxel: tuple[float, float, float]
    radius_angstrom: float
    present_fraction: float
    edge_angstrom: float = 6.0

    def __post_init__(self) -> None:
        if not self.radius_angstrom > 0 or not self.edge_angstrom > 0:
            raise ValueError(
                f"the missing part's radius and edge must be positive, got "
                f"{self.radius_angstrom} Å and {self.edge_angstrom} Å"
            )
        if not 0 < self.present_fraction < 1:
            raise ValueError(
                f"the missing part's present_fraction must lie in (0, 1), got "
                f"{self.present_fraction}"
            )


class SoftBall(Protocol):
    """A soft ball of a map's voxels: :class:`MissingPart`, ``bench_flexibility.MovingPart``."""

    centre_voxel: tuple[float, float, float]
    radius_angstrom: float
    edge_angstrom: float


def part_weight(box: int, pixel_size_angstrom: float, part: SoftBall) -> np.ndarray:
    """The ball (D, D, D) ``[z, y, x]``: 1 inside ``radius − edge/2``, 0 outside ``radius + edge/2``,
    a raised cosine between."""
    axis = np.arange(box, dtype=np.float64)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    cx, cy, cz = part.centre_voxel
    distance = pixel_size_angstrom * np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)
    inner = part.radius_angstrom - part.edge_angstrom / 2
    return soft_edge(torch.from_numpy(distance - inner), part.edge_angstrom).numpy()


def without_part(volume: np.ndarray, pixel_size_angstrom: float, part: MissingPart) -> np.ndarray:
    """The map with the part's density taken out (``volume · (1 − ball)``), float32."""
    volume = np.asarray(volume, dtype=np.float64)
    weight = part_weight(volume.shape[0], pixel_size_angstrom, part)
    return (volume * (1.0 - weight)).astype(np.float32)


def mean_state(volume: np.ndarray, pixel_size_angstrom: float, part: MissingPart) -> np.ndarray:
    """The occupancy-weighted mean of the two states, the truth a consensus map converges to."""
    volume = np.asarray(volume, dtype=np.float64)
    weight = part_weight(volume.shape[0], pixel_size_angstrom, part)
    return (volume * (1.0 - (1.0 - part.present_fraction) * weight)).astype(np.float32)


def holds_part(n: int, part: MissingPart, seed: int) -> np.ndarray:
    """Which of ``n`` particles hold the part (bool (n,)): exactly ``round(f · n)`` of them, drawn
    from the set's own stream for it (the rest of the set is drawn apart from it)."""
    rng = np.random.default_rng([seed, 61])
    holding = np.zeros(n, dtype=bool)
    holding[rng.permutation(n)[: round(part.present_fraction * n)]] = True
    return holding


def project_two_states(folder: Path, columns: dict, part: MissingPart, seed: int, run) -> None:
    """``relion_project`` of a set whose particles hold ``part`` or not, into ``proj.mrcs``.

    ``folder/truth.mrc`` holds the whole map on entry; on return it holds the mean state
    (:func:`mean_state`), with ``state_present.mrc`` and ``state_absent.mrc`` beside it and the
    stack's images in the order of ``columns`` (the keyword arguments of
    ``write_relion31_particles`` for ``in.star``). ``run(cmd, cwd, log_name)`` runs a command.
    """
    volume, pixel = read_map(folder / "truth.mrc")
    write_map(folder / "truth.mrc", mean_state(volume, pixel, part), pixel)
    holding = holds_part(len(columns["rotations"]), part, seed)
    states = {"present": volume, "absent": without_part(volume, pixel, part)}
    project_states(folder, columns, states, np.where(holding, 0, 1), run)


def project_states(
    folder: Path, columns: dict, states: dict[str, np.ndarray], which: np.ndarray, run
) -> None:
    """``relion_project`` of each particle in its own state, into ``folder/proj.mrcs``.

    Parameters
    ----------
    folder : Path
        Where ``state_<name>.mrc`` (each state's map, at the pixel of ``columns``) is written
        and projected.
    columns : dict
        The keyword arguments of ``write_relion31_particles`` for the whole set, in the stack's
        order.
    states : {name: (D, D, D) map}
        The states, in the order ``which`` counts them.
    which : int array (N,)
        Each particle's state (an index into ``states``).
    run : callable
        ``run(cmd, cwd, log_name)`` runs a command.
    """
    pixel = float(columns["pixel_size_angstrom"])
    which = np.asarray(which)
    box = int(columns["box"])
    images = np.zeros((len(which), box, box), dtype=np.float32)
    for index, (state, volume) in enumerate(states.items()):
        write_map(folder / f"state_{state}.mrc", np.asarray(volume, dtype=np.float32), pixel)
        rows = np.flatnonzero(which == index)
        if not len(rows):
            continue
        subset = dict(
            columns,
            rotations=np.asarray(columns["rotations"])[rows],
            shifts_angstrom=np.asarray(columns["shifts_angstrom"])[rows],
            ctf=columns["ctf"].subset(rows),
            random_subset=np.asarray(columns["random_subset"])[rows],
        )
        write_relion31_particles(folder / f"in_{state}.star", image_names=None, **subset)
        run(
            [
                "relion_project",
                "--i",
                f"state_{state}.mrc",
                "--ang",
                f"in_{state}.star",
                "--o",
                f"proj_{state}",
                "--ctf",
            ],
            folder,
            f"relion_project_{state}.log",
        )
        stack = MRCStack(folder / f"proj_{state}.mrcs")
        if stack.n_images != len(rows):
            raise RuntimeError(f"relion_project wrote {stack.n_images} of {len(rows)} images")
        images[rows] = stack.read(np.arange(len(rows)))
        del stack
        (folder / f"proj_{state}.mrcs").unlink()
    write_stack(folder / "proj.mrcs", images, pixel)
