"""The statistics of the two half sets: one streamed pass over the particles, checkpointed.

The one route to the data half maps of both engines (:mod:`cryosplat.reconstruct.grid.engine`
fits them; :mod:`cryosplat.reconstruct.splat.runner` reads its data maps from them). Each half
set's rows are split into the rows its model is fitted to and, where asked, rows held out for
the fit's stopping rule (a part of *the same half*, never the other half). The halves are
gathered side by side on a CPU (a thread each); under ``torchrun`` every rank gathers its shard
of both and the sums are all-reduced. The statistics (:mod:`cryosplat.reconstruct.grid.statistics`)
are checkpointed atomically, so a resumed run reads them instead of the images.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from cryosplat.core.device import synchronize
from cryosplat.core.progress import Progress
from cryosplat.particles.dust import restore_dust_counts, save_dust_counts
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.distributed import Distributed, cached_statistics, shard_rows
from cryosplat.reconstruct.engine_job import EngineJob
from cryosplat.reconstruct.grid.gather import AccumulateConfig
from cryosplat.reconstruct.grid.helical_statistics import helically_symmetrized
from cryosplat.reconstruct.grid.noise_levels import NoiseLevels, measure_noise_levels
from cryosplat.reconstruct.grid.side_by_side import check_stop, map_halves
from cryosplat.reconstruct.grid.statistics import (
    DEFAULT_WIENER_REGULARIZATION,
    FourierStatistics,
    joined_rows,
    wiener_inversion,
)
from cryosplat.validation.data_blend import BLEND_REGULARIZATION
from cryosplat.validation.fsc import fsc
from cryosplat.validation.masks import spherical_mask
from cryosplat.validation.sampling import SampledFrequencies, sampled_frequencies
from cryosplat.validation.shrunk_blend import SHRUNK_REGULARIZATION

__all__ = [
    "HalfStatistics",
    "gather_half_statistics",
    "half_data_fsc",
    "split_heldout",
    "statistics_batch_size",
    "statistics_checkpoint",
]

log = logging.getLogger("cryosplat")

CUDA_STATISTICS_BATCH = 512
DUST_COUNTS_FILE = "dust_counts.npz"  # in the checkpoint folder (particles.dust.save_dust_counts)


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
    report: Callable[[int, bool], None],
    dist: Distributed,
    label: str,
) -> FourierStatistics | None:
    """The statistics of ``rows`` (checkpointed at ``path``); ``report(k, resumed)``: k of them
    done (``resumed``: read back from a checkpoint, not gathered in this run); ``label``: which
    images these are, in the log (``"half A"``)."""
    if len(rows) == 0:
        return None
    n_local = len(shard_rows(particles, rows, dist.rank, dist.world_size))

    def progress(k: int, _n: int, resumed: bool = False) -> None:
        report(k, resumed)

    stats, reused = cached_statistics(particles, rows, config, path, dist, progress, label)
    report(n_local, reused)
    return stats


def statistics_checkpoint(folder: Path, half: int, part: str = "fit") -> Path:
    """The checkpoint of half ``half``'s statistics (``part``: ``fit`` or ``heldout``)."""
    return folder / f"stats_{'AB'[half]}_{part}.npz"


def statistics_batch_size(batch_size: int, device: torch.device | str) -> int:
    """Images per batch of the statistics pass: the configured number, raised to
    :data:`CUDA_STATISTICS_BATCH` on a CUDA device when left at its default (small batches leave
    a GPU idle between kernel launches; 512 images of box 256 take about 1 GB there)."""
    if torch.device(device).type == "cuda" and batch_size == AccumulateConfig.batch_size:
        return CUDA_STATISTICS_BATCH
    return batch_size


@dataclass
class HalfStatistics:
    """The statistics of the two half sets, each split into its fit and held-out parts.

    Attributes
    ----------
    train : [A, B] statistics of the rows each half model is fitted to
    held : [A, B] statistics of each half's held-out rows, or None where none are held out
    noise_levels : how each image was weighed by its noise level, or None: alike
        (:mod:`cryosplat.reconstruct.grid.noise_levels`); the per-image engine weighs its
        images' losses so too
    """

    train: list[FourierStatistics]
    held: list[FourierStatistics | None]
    seconds: float = 0.0  # wall time of the pass (0 for statistics read from checkpoints)
    noise_levels: NoiseLevels | None = None

    @property
    def totals(self) -> list[FourierStatistics]:
        """[A, B] statistics of every particle of each half (fit + held out)."""
        return [t if h is None else t + h for t, h in zip(self.train, self.held, strict=True)]

    def data_maps(
        self, regularization: float = DEFAULT_WIENER_REGULARIZATION
    ) -> tuple[np.ndarray, np.ndarray]:
        """Direct Fourier inversions ``D_A, D_B`` of the two whole halves (for validation, or
        with another Wiener constant for :mod:`cryosplat.validation.data_blend`).

        One half's total at a time, dropped once inverted: at large boxes every grid is ~12 bytes
        per half-grid voxel (see :mod:`cryosplat.reconstruct.grid.memory_plan`). The statistics
        already carry the data sign.
        """
        return tuple(
            wiener_inversion([t] if h is None else [t, h], regularization).cpu().numpy()
            for t, h in zip(self.train, self.held, strict=True)
        )

    def blend_maps(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The inversions the map's blend reads (:mod:`cryosplat.validation.data_blend`): the
        nearly unbiased ``D_A, D_B`` and the shrunk ``S_A, S_B``
        (:mod:`cryosplat.validation.shrunk_blend`)."""
        return self.data_maps(BLEND_REGULARIZATION), self.data_maps(SHRUNK_REGULARIZATION)

    def sampled_frequencies(self) -> SampledFrequencies:
        """The map's frequencies that some particle of either half samples, and their share per
        shell (:func:`~cryosplat.validation.sampling.sampled_frequencies`: a frequency one half
        misses the other's data may still check in the map, the halves' mean)."""
        grids = [s.weights for s in self.train + self.held if s is not None]
        first = self.train[0]
        return sampled_frequencies(grids, first.box, first.pad, first.max_radius)

    def left_out_rows(self) -> np.ndarray | None:
        """The rows (of the particle set) weighed 0 for their background's structure, sorted;
        None where no limit was set (or the statistics were read from files that hold none)."""
        return joined_rows([s.left_out_rows for s in self.train + self.held if s is not None])

    def left_out(self) -> dict | None:
        """The images the pass left out for their background's structure, as ``run.json``
        keeps them (:meth:`NoiseLevels.structure_summary`, and the pass's own count of every
        image, ``images_left_out`` of ``images``); None: none."""
        summary = None if self.noise_levels is None else self.noise_levels.structure_summary()
        rows = self.left_out_rows()
        if summary is None or rows is None:
            return summary
        images = sum(s.n_particles for s in self.train + self.held if s is not None)
        return {**summary, "images_left_out": int(rows.size), "images": int(images)}


def half_data_fsc(data_maps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """FSC of the two halves' direct inversions in the soft spherical mask, by shell.

    The signal-to-noise estimate of the fit's prior (``GridFitConfig.prior_strength``), as RELION
    sets its ``τ²`` from the FSC of its half maps: one number per shell, the only thing the two
    half fits share.
    """
    mask = spherical_mask(data_maps[0].shape[0])
    return fsc(data_maps[0] * mask, data_maps[1] * mask)


def gather_half_statistics(job: EngineJob) -> HalfStatistics:
    """One streamed pass over the particles: the statistics of each half's fit and held-out rows.

    The one route to the data half maps of both engines. Checkpointed (``stats_{A,B}_fit.npz``,
    ``stats_{A,B}_heldout.npz``): a resumed run reads them instead of the images. With
    ``config.invert_contrast`` the data are negated here, so the statistics carry the data sign.
    Under ``torchrun`` (``job.dist``) each rank gathers its shard and the sums are all-reduced.
    """
    particles, halves, config, device, dist = (
        job.particles,
        job.halves,
        job.config,
        job.device,
        job.dist,
    )
    gcfg = config.grid  # GridEngineConfig
    # Device and batch as reconstruct resolved them (statistics_batch_size), as config.json says.
    acc = replace(gcfg.accumulate, symmetry=config.symmetry)
    if gcfg.image_weights:  # the halves hold every row (particles.halves.split_halves)
        acc = replace(acc, noise_levels=measure_noise_levels(particles))
    log.info(
        "device: Fourier statistics on %s (%d images per batch%s)",
        device,
        acc.batch_size,
        ", read ahead into pinned memory" if torch.device(device).type == "cuda" else "",
    )
    ck = job.folder.checkpoint_dir
    total = sum(len(h) for h in halves) // dist.world_size
    bar = Progress(total, "statistics", enabled=job.show_progress and dist.is_main)
    counts: dict[str, int] = {}
    started = time.perf_counter()

    def half(i: int, stop: threading.Event) -> tuple[FourierStatistics | None, ...]:
        name = "AB"[i]
        fit_rows, held_rows = split_heldout(
            np.asarray(halves[i]), gcfg.heldout_fraction, config.seed * 7 + i
        )
        out = []
        for part, rows in (("fit", fit_rows), ("heldout", held_rows)):

            def report(k: int, resumed: bool, key: str = f"{name}_{part}") -> None:
                check_stop(stop)
                if resumed:  # done before this run: in the bar, not in its rate
                    bar.resumed(k - counts.get(key, 0))
                counts[key] = k
                done = sum(counts.values())
                bar.update(
                    done, f"gathering {done}/{total} particles, {bar.rate_per_second():.0f}/s"
                )

            path = statistics_checkpoint(ck, i, part)
            label = f"half {name}" + (", held out" if part == "heldout" else "")
            out.append(_statistics(particles, rows, path, acc, report, dist, label))
        return out[0], out[1]

    # One process on a CPU: the halves side by side, a thread each (side_by_side.concurrent_halves);
    # under torchrun every rank gathers its shard of both, one after the other (collectives).
    parallel = dist.world_size == 1
    # The hot pixels counted before an interruption: a resumed pass reads no image its
    # checkpoints hold (this rank's images; rank 0's counts are the ones logged).
    dust_path = ck / DUST_COUNTS_FILE
    restore_dust_counts(particles, dust_path)
    try:
        pairs = map_halves(half, [0, 1], device, gcfg.concurrent_halves and parallel)
    finally:
        if dist.is_main:
            save_dust_counts(particles, dust_path)
    train = [pairs[0][0], pairs[1][0]]
    held = [pairs[0][1], pairs[1][1]]
    del pairs  # the lists hold the only references (a helical sum replaces them one by one)
    bar.close()
    synchronize(device)
    seconds = time.perf_counter() - started
    log.info("statistics: %d particles in %.1f s on %s", total, seconds, device)
    if config.invert_contrast:
        for stats in train + held:
            if stats is not None:
                stats.data = -stats.data
    if config.helical is not None:  # the checkpoints hold each half's own sums
        for part in (train, held):
            for i, stats in enumerate(part):
                if stats is not None:  # one grid more at a time, not two halves' worth
                    part[i] = helically_symmetrized(stats, config.helical)
                    del stats
        log.info("helical symmetry: %s", config.helical.describe())
    if held[0] is None and held[1] is None:
        log.info(
            "statistics gathered: half A %d, half B %d particles (all fitted, none held out)",
            train[0].n_particles,
            train[1].n_particles,
        )
    else:
        log.info(
            "statistics gathered: half A %d + %d held out, half B %d + %d held out",
            train[0].n_particles,
            0 if held[0] is None else held[0].n_particles,
            train[1].n_particles,
            0 if held[1] is None else held[1].n_particles,
        )
    return HalfStatistics(train, held, seconds, acc.noise_levels)
