"""The Fourier-statistics engine of ``cryosplat reconstruct`` (the default).

One streamed pass over each half set gathers its sufficient statistics (:mod:`cryosplat.statistics`);
the half models are then fitted to them coarse to fine (:mod:`cryosplat.gridfit`), stage by stage,
both halves at each stage, so the (cross-validated) resolution is known as the fit goes.

Gold standard: each half's stopping rule uses a held-out part of *the same half* (never the other
half), so the two half maps stay independent. Resume: the statistics and the model after every
finished stage are checkpointed atomically; an interrupted run restarts at the first unfinished stage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cryosplat.data import ParticleSet
from cryosplat.errors import InputError
from cryosplat.gaussians import GaussianModel
from cryosplat.gridfit import GridFitConfig, fit_gaussians, stage_boxes
from cryosplat.progress import Progress
from cryosplat.statistics import AccumulateConfig, FourierStatistics, accumulate
from cryosplat.symmetry import asymmetric_unit_gaussians, symmetry_operators
from cryosplat.validation import ResolutionMonitor, data_half_maps

__all__ = ["GridEngineConfig", "run_grid_engine", "split_heldout"]

log = logging.getLogger("cryosplat")


@dataclass
class GridEngineConfig:
    """Settings of the Fourier-statistics engine.

    Attributes
    ----------
    accumulate : how the statistics are gathered (padding, batch size, resolution limit)
    fit : the coarse-to-fine fit (stages, steps, learning rates); its ``n_gaussians``, ``seed`` and
        ``device`` are set by ``reconstruct``
    heldout_fraction : part of each half set kept out of its fit to decide when a stage stops
        (0: stop on the training loss alone)
    """

    accumulate: AccumulateConfig = field(default_factory=AccumulateConfig)
    fit: GridFitConfig = field(default_factory=GridFitConfig)
    heldout_fraction: float = 0.1

    def validate(self) -> None:
        if not 0.0 <= self.heldout_fraction < 0.5:
            raise InputError(f"heldout_fraction must be in [0, 0.5), got {self.heldout_fraction}")
        self.accumulate.validate()
        self.fit.validate()


def split_heldout(rows: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fit rows, held-out rows)``: ``fraction`` of ``rows`` held out at random (none below 20)."""
    if fraction <= 0 or len(rows) < 20:
        return rows, rows[:0]
    rng = np.random.default_rng(seed)
    n_held = max(1, int(round(fraction * len(rows))))
    held = np.zeros(len(rows), dtype=bool)
    held[rng.choice(len(rows), n_held, replace=False)] = True
    return rows[~held], rows[held]


def _statistics(
    particles: ParticleSet,
    rows: np.ndarray,
    path: Path,
    config: AccumulateConfig,
    bar: Progress,
    done: list[int],
    operators=None,
) -> FourierStatistics | None:
    if len(rows) == 0:
        return None
    if path.is_file():
        stats = FourierStatistics.load(path)
        if stats.n_particles == len(rows):
            done[0] += len(rows)
            bar.update(done[0])
            return stats.to(config.device)
    base = done[0]

    def progress(k: int, total: int) -> None:
        bar.update(base + k, f"gathering {base + k}/{bar.total:.0f} particles")

    stats = accumulate(particles, rows, config, progress=progress, operators=operators)
    stats.save(path)
    done[0] = base + len(rows)
    return stats


def run_grid_engine(particles, halves, config, folder, device, show_progress):
    """Fit both half models with the Fourier-statistics engine.

    Parameters
    ----------
    particles : ParticleSet
    halves : (rows_a, rows_b)
    config : ReconstructConfig
        Uses ``config.grid`` (GridEngineConfig), ``n_gaussians``, ``seed``, ``invert_contrast``,
        ``symmetry``: with a point group the statistics are gathered with every image inserted
        once per operator and each half model holds one asymmetric unit's Gaussians
        (``n_gaussians / |G|``), voxelised with all copies.
    folder : RunFolder
    device : torch.device
    show_progress : bool

    Returns
    -------
    (model_a, model_b), details
    """
    gcfg: GridEngineConfig = config.grid
    gcfg.validate()
    acc = replace(gcfg.accumulate, device=str(device))
    return _run(particles, halves, config, gcfg, acc, folder, device, show_progress)


def _run(particles, halves, config, gcfg, acc, folder, device, show_progress):
    ck = folder.checkpoint_dir
    total = sum(len(h) for h in halves)
    bar = Progress(total, "statistics", enabled=show_progress)
    done = [0]
    train, held = [], []
    symmetry = getattr(config, "symmetry", "C1")
    ops = None if symmetry == "C1" else symmetry_operators(symmetry)
    for i, (name, rows) in enumerate(zip("AB", halves, strict=True)):
        fit_rows, held_rows = split_heldout(
            np.asarray(rows), gcfg.heldout_fraction, config.seed * 7 + i
        )
        train.append(
            _statistics(particles, fit_rows, ck / f"stats_{name}_fit.npz", acc, bar, done, ops)
        )
        held.append(
            _statistics(particles, held_rows, ck / f"stats_{name}_heldout.npz", acc, bar, done, ops)
        )
    bar.close()
    if config.invert_contrast:
        for stats in train + held:
            if stats is not None:
                stats.data = -stats.data
    log.info(
        "statistics gathered: half A %d + %d held out, half B %d + %d held out",
        train[0].n_particles,
        0 if held[0] is None else held[0].n_particles,
        train[1].n_particles,
        0 if held[1] is None else held[1].n_particles,
    )

    totals = [t if h is None else t + h for t, h in zip(train, held, strict=True)]
    data_maps = data_half_maps(totals)  # the statistics already carry the data sign
    monitor = ResolutionMonitor(data_maps, particles.pixel_size_angstrom)
    fit = gcfg.fit
    n_gauss = asymmetric_unit_gaussians(config.n_gaussians, symmetry)
    boxes = stage_boxes(particles.box, fit.stage_fractions)
    total_steps = 2 * sum(fit.stage_steps)
    bar = Progress(total_steps, "fit", enabled=show_progress)
    current: list[GaussianModel | None] = [None, None]
    history: list[dict] = []
    steps_done = 0
    res_text = ""
    for stage, (box, steps) in enumerate(zip(boxes, fit.stage_steps, strict=True)):
        for i, name in enumerate("AB"):
            path = ck / f"grid_stage{stage}_{name}.npz"
            if path.is_file():
                current[i] = GaussianModel.load(path).to(device)
                steps_done += steps
                continue
            stage_cfg = replace(
                fit,
                stage_fractions=(fit.stage_fractions[stage],),
                stage_steps=(steps,),
                n_gaussians=n_gauss,
                seed=config.seed * 2 + i + 1,
                init_radius_fraction=config.init_radius_fraction,
                device=str(device),
                symmetry=symmetry,
            )
            base = steps_done

            label = f"stage {stage + 1}/{len(boxes)} (box {box}) half {name}{res_text}"

            def progress(k, _total, base=base, label=label):
                bar.update(base + k, label)

            current[i] = fit_gaussians(
                train[i], stage_cfg, model=current[i], heldout=held[i], progress=progress
            )
            current[i].save(path)
            current[i] = GaussianModel.load(path).to(device)  # as a resumed run would see it
            steps_done = base + steps
        res = monitor(*current)
        res_text = f" resolution {res:.2f} Å"
        history.append({"stage": stage + 1, "box": box, "resolution_angstrom": res})
        log.info(
            "stage %d/%d (box %d): resolution %.2f Å (cross-validated)",
            stage + 1,
            len(boxes),
            box,
            res,
        )
    bar.close()
    return (current[0], current[1]), {"history": history, "data_maps": data_maps}
