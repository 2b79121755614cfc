"""The Fourier-statistics engine of ``cryosplat reconstruct`` (the default).

One streamed pass over each half set gathers its sufficient statistics
(:mod:`cryosplat.reconstruct.grid.half_statistics`, :mod:`cryosplat.reconstruct.grid.statistics`);
the half models are then fitted to them coarse to fine (:mod:`cryosplat.reconstruct.grid.fit`), stage by stage,
both halves at each stage, so the (cross-validated) resolution is known as the fit goes.

Gold standard: each half model is fitted to its own half set alone (and where a held-out part is
asked for, ``heldout_fraction``, its stopping rule uses a part of *the same half*, never the other
half), so the two half maps stay independent. With ``members`` above one, each half model is
the mean of that many fits of the same half set (each fitted alone, from a shared fit of the
first stages, ``member_stages``). Resume: the statistics and the model (every member) after
every finished stage are checkpointed atomically; an interrupted run restarts at the first
unfinished stage.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cryosplat.core.device import synchronize
from cryosplat.core.progress import Progress
from cryosplat.core.symmetry import asymmetric_unit_gaussians
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.engine_job import EngineJob
from cryosplat.reconstruct.engine_result import EngineResult
from cryosplat.reconstruct.grid.capacity import (
    BITS_PER_GAUSSIAN,
    MIN_SHELL_SSNR,
    gaussians_for_data,
)
from cryosplat.reconstruct.grid.engine_config import GridEngineConfig
from cryosplat.reconstruct.grid.fit import GridFitConfig, fit_gaussians, stage_boxes
from cryosplat.reconstruct.grid.half_statistics import gather_half_statistics, half_data_fsc
from cryosplat.reconstruct.grid.prior import fsc_weight_ratio, prior_ratios
from cryosplat.reconstruct.grid.side_by_side import check_stop, map_halves
from cryosplat.reconstruct.grid.statistics import FourierStatistics
from cryosplat.reconstruct.half_map_report import format_resolution
from cryosplat.validation.resolution_monitor import ResolutionMonitor

if TYPE_CHECKING:
    import threading


__all__ = ["GridEngineConfig", "run_grid_engine", "stage_checkpoint"]

log = logging.getLogger("cryosplat")

# Member m of a half fits with the seed of member 0 plus m times this.
MEMBER_SEED_STRIDE = 1_000_003


def run_grid_engine(job: EngineJob) -> EngineResult:
    """Fit both half models with the Fourier-statistics engine.

    Parameters
    ----------
    job : EngineJob
        Its ``config`` gives ``grid`` (GridEngineConfig), ``n_gaussians``, ``seed``,
        ``invert_contrast``, ``symmetry``: with a point group the statistics are gathered with
        every image inserted once per operator and each half model holds one asymmetric unit's
        Gaussians (``n_gaussians / |G|``), voxelised with all copies. Under ``torchrun``
        (``job.dist``) the statistics are gathered in shards and summed, half A is fitted on rank
        0 and half B on rank 1 (``dist.owner_of_half``); rank 0 alone draws progress and
        computes the resolution.

    Returns
    -------
    EngineResult (its ``data_maps`` and ``blend_maps`` are None on ranks other than 0)
    """
    job.config.grid.validate()
    return _run(job)


def _log_prior(
    curve: np.ndarray, fit: GridFitConfig, extent_angstrom: float, stats: FourierStatistics | None
) -> None:
    if fit.prior_strength == 0:
        log.info("prior on the map: none (--prior-strength 0)")
        return
    ratios = prior_ratios(curve, len(curve), fit, stats)
    capped = np.flatnonzero(ratios[1:].numpy() >= fit.prior_cap) + 1
    where = f"from {extent_angstrom / capped[0]:.1f} Å" if capped.size else "nowhere"
    seen = ""
    if stats is not None:
        ratio = float(fsc_weight_ratio(stats)[1:].median())
        seen = f"; the FSC sees {ratio:.2f} of the shells' mean CTF² (median; 1: even views)"
    log.info(
        "prior on the map: strength %g, from the FSC of the halves' direct inversions (as "
        "RELION's tau2)%s; at its cap (%g × the shell's mean CTF²) %s",
        fit.prior_strength,
        seen,
        fit.prior_cap,
        where,
    )


def stage_checkpoint(folder: Path, stage: int, half: int, member: int = 0) -> Path:
    """Checkpoint of one member of a half model after a stage (member 0: the one-member name)."""
    suffix = "" if member == 0 else f"_member{member + 1}"
    return folder / f"grid_stage{stage}_{'AB'[half]}{suffix}.npz"


def _fork_stage(n_stages: int, n_members: int, member_stages: int) -> int:
    """First stage the members fit on their own (before it, member 0 alone: the shared fit)."""
    return 0 if n_members == 1 else max(0, n_stages - member_stages)


def _gaussians_per_half(config, half_fsc) -> tuple[int, int]:
    """``(last stage, earlier stages)`` Gaussians of a half model (one asymmetric unit's): the
    box's default, raised in the last stage where the data hold more
    (:func:`~cryosplat.reconstruct.grid.capacity.gaussians_for_data`)."""
    n_total = config.n_gaussians
    if config.grid.gaussians_from_data:
        n_total, bits = gaussians_for_data(config.n_gaussians, half_fsc)
        if n_total > config.n_gaussians:
            log.info(
                "Gaussians per half: %d in the last stage, %.1f × the box's default %d of the "
                "stages before it, its heaviest split to reach them (the data's shells with "
                "SSNR ≥ %g hold %.0f bits, one Gaussian per %g)",
                n_total,
                n_total / config.n_gaussians,
                config.n_gaussians,
                MIN_SHELL_SSNR,
                bits,
                BITS_PER_GAUSSIAN,
            )
    n_gauss = asymmetric_unit_gaussians(n_total, config.symmetry)
    return n_gauss, min(n_gauss, asymmetric_unit_gaussians(config.n_gaussians, config.symmetry))


def _log_members(n_members: int, n_gauss: int, fork: int, boxes: list[int]) -> None:
    if n_members > 1:
        log.info(
            "members: each half model is the mean of %d fits of its half set (%d Gaussians "
            "each), %s",
            n_members,
            n_gauss,
            f"on their own from stage {fork + 1} (box {boxes[fork]}), before it one fit shared"
            if fork
            else "each from its own random start",
        )


class _HalfFits:
    """The fits of the half models one process owns, stage by stage, every member of each.

    ``members[i][m]`` is member ``m`` of half ``i`` after the last stage fitted (None before the
    first). A stage's finished fits are read back from their checkpoints (an interrupted run
    resumes at the first unfinished one); the others are fitted, both halves side by side where
    that pays (:func:`~cryosplat.reconstruct.grid.side_by_side.map_halves`), each written to its
    checkpoint and read back from it, as a resumed run would see it.
    """

    def __init__(self, statistics, config, half_fsc, n_gaussians, mine, device, bar):
        self.train, self.held = statistics.train, statistics.held
        self.config, self.gcfg, self.half_fsc = config, config.grid, half_fsc
        self.n_last, self.n_first = n_gaussians
        self.mine, self.device, self.bar = mine, device, bar
        self.members: list[list[GaussianModel | None]] = [
            [None] * self.gcfg.members for _ in range(2)
        ]
        self.steps_done = 0

    def run_stage(
        self, checkpoints: Path, stage: int, n_fitting: int, label: str, last: bool
    ) -> list[GaussianModel | None]:
        """Fit (or read back) stage ``stage``'s ``n_fitting`` members of each half owned; the
        members not yet on their own take member 0's fit as their next start. ``last``: the
        stage that holds the data's count of Gaussians."""
        steps = self.gcfg.fit.stage_steps[stage]
        missing: dict[int, list[int]] = {}
        for i in self.mine:
            for m in range(n_fitting):
                path = stage_checkpoint(checkpoints, stage, i, m)
                if path.is_file():
                    self.members[i][m] = GaussianModel.load(path).to(self.device)
                    self.steps_done += steps
                    self.bar.resumed(steps)  # fitted before this run: not in the ETA's rate
                else:
                    missing.setdefault(i, []).append(m)
        base = self.steps_done
        done = dict.fromkeys(missing, 0)

        def fit_half(i: int, stop: threading.Event) -> None:
            for j, m in enumerate(missing[i]):

                def progress(k: int, _total: int, offset: int = j * steps) -> None:
                    check_stop(stop)
                    done[i] = offset + k
                    self.bar.update(base + sum(done.values()), label)

                model = fit_gaussians(
                    self.train[i],
                    self._stage_config(stage, i, m, last),
                    model=self.members[i][m],
                    heldout=self.held[i],
                    progress=progress,
                    half_fsc=self.half_fsc,
                )
                path = stage_checkpoint(checkpoints, stage, i, m)
                model.save(path)
                self.members[i][m] = GaussianModel.load(path).to(self.device)

        map_halves(fit_half, list(missing), self.device, self.gcfg.concurrent_halves)
        self.steps_done = base + steps * sum(len(v) for v in missing.values())
        n_members = self.gcfg.members
        for i in self.mine:  # members not yet on their own share member 0's fit (the next start)
            self.members[i][n_fitting:] = [self.members[i][0]] * (n_members - n_fitting)
        return [
            GaussianModel.average(self.members[i][:n_fitting]) if i in self.mine else None
            for i in range(2)
        ]

    def _stage_config(self, stage: int, half: int, member: int, last: bool) -> GridFitConfig:
        """The fit's settings for one stage of one member of one half."""
        fit, config = self.gcfg.fit, self.config
        return replace(
            fit.stage(stage),
            n_gaussians=self.n_last if last else self.n_first,
            grow_to=self.n_last if last else 0,
            seed=config.seed * 2 + half + 1 + member * MEMBER_SEED_STRIDE,
            init_radius_fraction=config.init_radius_fraction,
            device=str(self.device),
            symmetry=config.symmetry,
        )


def _run(job: EngineJob) -> EngineResult:
    particles, config, device, dist = job.particles, job.config, job.device, job.dist
    gcfg: GridEngineConfig = config.grid
    log.info("device: grid fit on %s", device)
    statistics = gather_half_statistics(job)
    timings = {"statistics": statistics.seconds}
    started = time.perf_counter()
    data_maps, monitor, curve, sampled = None, None, None, None
    if dist.is_main:
        data_maps, sampled = statistics.data_maps(), statistics.sampled_frequencies()
        monitor = ResolutionMonitor(data_maps, particles.pixel_size_angstrom, device, sampled.share)
        curve = half_data_fsc(data_maps)
        seen = next((t for t in statistics.train if t is not None), None)
        _log_prior(curve, gcfg.fit, particles.box * particles.pixel_size_angstrom, seen)
    half_fsc = dist.broadcast_object(curve)
    fit = gcfg.fit
    n_gaussians = _gaussians_per_half(config, half_fsc)
    boxes = stage_boxes(particles.box, fit.stage_fractions)
    fork = _fork_stage(len(boxes), gcfg.members, gcfg.member_stages)
    _log_members(gcfg.members, n_gaussians[0], fork, boxes)
    mine = [i for i in range(2) if dist.owner_of_half(i) == dist.rank]
    n_fitting = [1 if stage < fork else gcfg.members for stage in range(len(boxes))]
    total_steps = len(mine) * sum(n * s for n, s in zip(n_fitting, fit.stage_steps, strict=True))
    bar = Progress(total_steps, "fit", enabled=job.show_progress and dist.is_main)
    fits = _HalfFits(statistics, config, half_fsc, n_gaussians, mine, device, bar)
    current: list[GaussianModel | None] = [None, None]
    history: list[dict] = []
    by_stage: list[list[GaussianModel | None]] = []
    res_text = ""
    for stage, box in enumerate(boxes):
        label = f"stage {stage + 1}/{len(boxes)} (box {box}){res_text}"
        last = stage == len(boxes) - 1
        current = fits.run_stage(job.folder.checkpoint_dir, stage, n_fitting[stage], label, last)
        current = dist.share_models(current, device)
        by_stage.append(current)
        if monitor is None:
            continue
        res = monitor(*current, box=box)
        res_text = f" resolution {format_resolution(res, explain=False)}"
        bar.update(fits.steps_done, f"stage {stage + 1}/{len(boxes)} (box {box}){res_text}")
        history.append({"stage": stage + 1, "box": box, "resolution_angstrom": res})
        log.info(
            "stage %d/%d (box %d): resolution %s (cross-validated)",
            stage + 1,
            len(boxes),
            box,
            format_resolution(res, explain=False),
        )
    bar.close()
    synchronize(device)
    timings["fit"] = time.perf_counter() - started
    log.info("fit and cross-validation: %.1f s on %s", timings["fit"], device)
    first = max(0, len(boxes) - gcfg.stage_mean)
    earlier = [
        (*by_stage[s], boxes[s] / 2) for s in range(first, len(boxes) - 1) if boxes[s] < boxes[-1]
    ]
    blend_maps = shrunk_maps = None
    if dist.is_main and config.blend_with_data:  # after the fit: not held while it runs
        blend_maps, shrunk_maps = statistics.blend_maps()
    models = (current[0], current[1])
    return EngineResult(
        models,
        data_maps,
        blend_maps,
        earlier,
        history,
        timings,
        sampling=sampled,
        shrunk_maps=shrunk_maps,
        left_out=statistics.left_out(),
        left_out_rows=statistics.left_out_rows(),
    )
