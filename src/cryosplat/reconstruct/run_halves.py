"""A complete run's half sets and half maps, for the commands that read particles against them
(``cryosplat score``, ``cryosplat refine-defocus``, ``cryosplat refine-poses``).

The particles must be the run's: the same file, rows and settings (the run's
``input_fingerprint``), read at the box it worked at; they are split into the run's own half sets,
and each half set is paired with the *other* half's map, made without it (:meth:`RunHalves.crossed`,
to score), or with its own (:meth:`RunHalves.own`, to refine its parameters: the half sets stay
independent).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosplat.core.errors import InputError
from cryosplat.io.atomic import atomic_path
from cryosplat.io.mrc import read_map
from cryosplat.particles.downsample import downsample_particles
from cryosplat.particles.dust import without_dust
from cryosplat.particles.halves import split_halves
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.particle_scores import (
    RESOLUTION_MARGIN,
    SHELL_SUM_NAMES,
    score_radius,
)
from cryosplat.reconstruct.grid.row_store import PassCheckpoints, digest
from cryosplat.reconstruct.run_folder import input_fingerprint, read_complete_run
from cryosplat.reconstruct.written_grid import map_at_box

__all__ = ["RunHalves", "read_run_halves", "shells_read", "write_particle_table"]

log = logging.getLogger("cryosplat")


@dataclass(frozen=True)
class RunHalves:
    """A complete run's particles, half sets and half maps.

    Attributes
    ----------
    run : Path
        The run folder, resolved.
    particles : ParticleSet
        At the run's working box, their hot pixels replaced as the run replaced them.
    half_a, half_b : np.ndarray of int
        The rows of each half set.
    maps : tuple[np.ndarray, np.ndarray]
        ``half_map_A.mrc`` and ``half_map_B.mrc``.
    resolution_angstrom : float or None
        The run's reported resolution (None: it reported none).
    data_sign : float
        −1 where the run read the images with their contrast inverted.
    image_weights : bool
        Whether the run weighed each image by its noise level where the levels differ
        (:mod:`~cryosplat.reconstruct.grid.noise_levels`).
    """

    run: Path
    particles: ParticleSet
    half_a: np.ndarray
    half_b: np.ndarray
    maps: tuple[np.ndarray, np.ndarray]
    resolution_angstrom: float | None
    data_sign: float
    image_weights: bool = False

    def crossed(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each half set's rows with the other half's map: ``[(A, map B), (B, map A)]``."""
        return [(self.half_a, self.maps[1]), (self.half_b, self.maps[0])]

    def own(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each half set's rows with its own half map: ``[(A, map A), (B, map B)]``."""
        return [(self.half_a, self.maps[0]), (self.half_b, self.maps[1])]

    def checkpoints(self, folder: Path | None, *settings) -> PassCheckpoints:
        """Where a command's passes over these particles are kept as they go (``folder``; None:
        in memory only), keyed by the half maps, the half sets, the images' sign and
        ``settings`` (e.g. the shells read and the device)."""
        if folder is None:
            return PassCheckpoints(None)
        identity = digest(
            *self.maps, self.half_a, self.half_b, self.data_sign, SHELL_SUM_NAMES, *settings
        )
        return PassCheckpoints(folder, identity)

    def half_names(self) -> np.ndarray:
        """``"A"`` or ``"B"`` per particle, (N,)."""
        return np.where(np.isin(np.arange(len(self.particles)), self.half_a), "A", "B")


def read_run_halves(particles: ParticleSet, run: str | Path, command: str) -> RunHalves:
    """The complete run in ``run``'s half sets and half maps, ``particles`` checked to be its own.

    Raises
    ------
    InputError
        ``run`` is not a complete run (``command`` names who asks), it lacks a half map, or
        ``particles`` are not its particles.
    """
    run = Path(run)
    status, resolution = read_complete_run(run, f"{command} reads a complete reconstruct run")
    identity = status.get("identity")
    if not isinstance(identity, dict) or "input_fingerprint" not in identity:
        raise InputError(f"{run}: run.json records no identity (a run older than this cryosplat?)")
    particles = _run_particles(particles, run, identity)
    maps = []
    for name in "AB":
        path = run / f"half_map_{name}.mrc"
        if not path.is_file():
            raise InputError(f"{run}: no {path.name}; {command} reads both half maps of the run")
        volume, _ = read_map(path)
        maps.append(map_at_box(volume, particles.box, path))
    seed = int(identity.get("seed", 0))
    half_a, half_b, how = split_halves(
        particles,
        seed,
        bool(identity.get("use_random_subset")),
        keep_patches=bool(identity.get("halves_keep_patches", False)),
    )
    log.info(
        "half sets: %d + %d particles (%s), as the run split them", len(half_a), len(half_b), how
    )
    sign = -1.0 if identity.get("invert_contrast") else 1.0
    grid = identity.get("grid")
    weighs = bool(grid.get("image_weights", False)) if isinstance(grid, dict) else False
    return RunHalves(
        run.resolve(), particles, half_a, half_b, (maps[0], maps[1]), resolution, sign, weighs
    )


def _run_particles(particles: ParticleSet, run: Path, identity: dict) -> ParticleSet:
    """``particles`` at the run's working box, checked to be the ones the run read."""
    if len(particles) != identity.get("n_particles"):
        raise InputError(
            f"{run} reconstructed {identity.get('n_particles')} particles; these are "
            f"{len(particles):,} (give the same file, --ind, --class, --angpix and --weights as "
            "the run)"
        )
    # read as the run read them (runs made before the setting kept every pixel)
    particles = without_dust(particles, float(identity.get("dust_sds", 0.0)))
    particles = downsample_particles(particles, int(identity.get("work_box", particles.box)))
    if input_fingerprint(particles) != identity["input_fingerprint"]:
        raise InputError(
            f"{run} was made from other particles than these (its input "
            f"{identity.get('input')}): the metadata, the poses or the stacks differ; give the "
            "same file, --ind, --class, --angpix and --weights as the run"
        )
    return particles


def shells_read(particles: ParticleSet, resolution: float | None, what: str) -> float:
    """:func:`~cryosplat.reconstruct.grid.particle_scores.score_radius` for ``particles``
    (pixels of their box), logged; ``what`` names where ``resolution`` came from."""
    radius = score_radius(particles.box, particles.pixel_size_angstrom, resolution)
    log.info(
        "shells read to %.2f Å (%s)",
        particles.box * particles.pixel_size_angstrom / radius,
        "to the box's limit: no resolution given or reported"
        if resolution is None
        else f"{RESOLUTION_MARGIN:g} times {what}, {resolution:.2f} Å",
    )
    return radius


def write_particle_table(
    path: Path,
    rows_in_file: np.ndarray,
    halves: np.ndarray,
    columns: dict[str, Sequence[str]],
) -> None:
    """A CSV of one line per particle, in the file's row order: its row, its half, then
    ``columns`` (name -> each particle's value as text, in the particles' order); written whole
    or not at all."""
    with atomic_path(path, suffix=".csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["row", "half", *columns])
            for i in np.argsort(rows_in_file, kind="stable"):
                writer.writerow(
                    [int(rows_in_file[i]), halves[i], *(v[i] for v in columns.values())]
                )
