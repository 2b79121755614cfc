"""The per-image engine's run: statistics for validation, the epochs, the maps the outputs need.

:mod:`cryosplat.reconstruct.run` calls it for ``--engine splat``, as it calls
:func:`cryosplat.reconstruct.grid.engine.run_grid_engine` for the grid engine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cryosplat.core.progress import Progress
from cryosplat.core.symmetry import asymmetric_unit_gaussians
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.engine_job import EngineJob
from cryosplat.reconstruct.engine_result import EngineResult
from cryosplat.reconstruct.grid.fit import image_unit
from cryosplat.reconstruct.grid.half_statistics import gather_half_statistics
from cryosplat.reconstruct.grid.init_centre import ball_from_statistics
from cryosplat.reconstruct.half_map_report import format_resolution
from cryosplat.reconstruct.splat.engine import SplatEngine
from cryosplat.validation.resolution_monitor import ResolutionMonitor

if TYPE_CHECKING:
    import torch

    from cryosplat.reconstruct.config import ReconstructConfig


__all__ = ["initial_models", "run_splat_engine"]

log = logging.getLogger("cryosplat")


def initial_models(
    particles: ParticleSet,
    config: ReconstructConfig,
    n: int,
    device: torch.device | str,
    balls: Sequence[tuple[np.ndarray, float]] | None = None,
) -> list[GaussianModel]:
    """Random starting models of the two halves (``n`` Gaussians each, one asymmetric unit's under
    ``config.symmetry``; seeds ``2·config.seed + 1`` and ``+ 2``), each in its half's ball
    ``(centre (x, y, z) Å from the box's centre, radius as a share of the box)``
    (:func:`~cryosplat.reconstruct.grid.init_centre.ball_from_statistics`; None: radius
    ``config.init_radius_fraction`` about the centre)."""
    models = []
    for half in range(2):
        centre, radius = (None, config.init_radius_fraction) if balls is None else balls[half]
        m = GaussianModel.random(
            asymmetric_unit_gaussians(n, config.symmetry),
            particles.box,
            particles.pixel_size_angstrom,
            seed=config.seed * 2 + half + 1,
            radius_fraction=radius,
            scale_angstrom=None,
            symmetry=config.symmetry,
            centre_angstrom=centre,
        )
        models.append(m.to(device))
    return models


def run_splat_engine(job: EngineJob) -> EngineResult:
    """The per-image engine's run: the statistics pass (for validation, as the grid engine's),
    the fit epoch by epoch with the cross-validated resolution after each, and the data maps the
    outputs need. Returns an :class:`~cryosplat.reconstruct.engine_result.EngineResult`, as
    :func:`cryosplat.reconstruct.grid.engine.run_grid_engine` does."""
    particles, halves, config, folder = job.particles, job.halves, job.config, job.folder
    device, show_progress, dist = job.device, job.show_progress, job.dist
    log.info("device: per-image splatting fit on %s", device)
    # The same statistics, checkpoints and data half maps as the grid engine's (one pass).
    statistics = gather_half_statistics(job)
    data_maps, monitor, sampled = None, None, None
    if dist.is_main:
        data_maps, sampled = statistics.data_maps(), statistics.sampled_frequencies()
        monitor = ResolutionMonitor(data_maps, particles.pixel_size_angstrom, device, sampled.share)
    balls = [  # the fitted rows' statistics: a sum with held-out ones would copy whole grids
        ball_from_statistics(
            s, config.init_radius_fraction, config.symmetry, config.splat.init_radius_from_data
        )
        for s in statistics.train
    ]
    models = initial_models(particles, config, config.n_gaussians, device, balls)
    engine = SplatEngine(
        particles,
        halves,
        models,
        config.splat,
        folder.checkpoint_dir / "splat_state.pt",
        device,
        seed=config.seed,
        data_sign=-1.0 if config.invert_contrast else 1.0,
        dist=dist,
        noise_levels=statistics.noise_levels,
        image_unit=image_unit(statistics.train),
    )
    resumed = engine.load()
    if resumed:
        log.info("resuming from epoch %d, step %d", engine.epoch + 1, engine.step_in_epoch)
    done = engine.epoch * engine.steps_per_epoch() + engine.step_in_epoch
    bar = Progress(
        engine.total_steps(), "reconstruct", done=done, enabled=show_progress and dist.is_main
    )
    state = {"res": None}

    def on_step(step: int, total: int, info: dict) -> None:
        res = state["res"]
        res = "" if res is None else f" resolution {format_resolution(res, explain=False)}"
        bar.update(
            step, f"epoch {info['epoch']}/{config.splat.epochs} loss {info['loss']:.4g}{res}"
        )

    def on_epoch(epoch: int) -> dict:
        res = monitor(*engine.models())
        state["res"] = res
        log.info(
            "epoch %d/%d: resolution %s (cross-validated)",
            epoch,
            config.splat.epochs,
            format_resolution(res, explain=False),
        )
        return {"resolution_angstrom": res}

    if dist.is_main:
        models = engine.run(on_step=on_step, on_epoch=on_epoch)
    else:
        models = engine.run()
    bar.close()
    blend_maps = shrunk_maps = None
    if dist.is_main and config.blend_with_data:
        blend_maps, shrunk_maps = statistics.blend_maps()
    return EngineResult(
        models,
        data_maps,
        blend_maps,
        history=engine.history,
        sampling=sampled,
        shrunk_maps=shrunk_maps,
        left_out=statistics.left_out(),
        left_out_rows=statistics.left_out_rows(),
    )
