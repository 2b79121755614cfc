"""``cryosplat reconstruct``: two half-set Gaussian models from random starts, half maps and FSC.

The orchestration is engine-independent: check the input and the output folder, split the particles
into gold-standard halves, initialise two independent random models, run an engine (the per-image
splatting engine of :mod:`cryosplat.reconstruct.splat.engine`, or the Fourier-statistics engine of
:mod:`cryosplat.reconstruct.grid.engine`), then write the outputs (:mod:`cryosplat.reconstruct.report`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from cryosplat.core.conventions import source_box_to_write
from cryosplat.core.device import (
    describe_device,
    deterministic_algorithms,
    reset_peak_memory,
    resolve_device,
)
from cryosplat.core.errors import CryosplatError, InputError, Terminated
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.astigmatism_check import check_astigmatism
from cryosplat.particles.downsample import downsample_particles
from cryosplat.particles.dust import describe_dust, dust_summary, without_dust
from cryosplat.particles.halves import split_halves, split_keeps_patches, unequal_halves_warning
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.thon_rings import check_thon_rings
from cryosplat.particles.validate import apply_findings, check_particles
from cryosplat.reconstruct.config import (
    ENGINES,
    OUTSIDE_IDENTITY,
    ReconstructConfig,
    default_n_gaussians,
)
from cryosplat.reconstruct.distributed import Distributed
from cryosplat.reconstruct.engine_job import EngineJob
from cryosplat.reconstruct.engine_result import EngineResult, MapSettings
from cryosplat.reconstruct.grid.capacity import most_gaussians_for_data
from cryosplat.reconstruct.grid.engine import run_grid_engine
from cryosplat.reconstruct.grid.gather import MIN_RADIUS
from cryosplat.reconstruct.grid.half_statistics import statistics_batch_size
from cryosplat.reconstruct.grid.helical_check import apply_helical_check
from cryosplat.reconstruct.grid.memory_plan import (
    MemoryPlan,
    PlanRequest,
    format_bytes,
    measured_peak_memory,
    plan_memory,
)
from cryosplat.reconstruct.grid.side_by_side import concurrent_halves
from cryosplat.reconstruct.grid.symmetry_check import apply_symmetry_check
from cryosplat.reconstruct.left_out import write_left_out
from cryosplat.reconstruct.pose_check import apply_pose_check
from cryosplat.reconstruct.report import write_outputs
from cryosplat.reconstruct.run_description import run_description
from cryosplat.reconstruct.run_folder import RunFolder, input_fingerprint, write_json_atomic
from cryosplat.reconstruct.splat.runner import run_splat_engine
from cryosplat.validation.user_mask import load_fsc_mask

__all__ = [
    "ReconstructConfig",
    "ReconstructResult",
    "reconstruct",
    "resolve_device",
    "default_n_gaussians",
    "ENGINES",
]

log = logging.getLogger("cryosplat")

# Each engine's run: an :class:`EngineJob` → an ``EngineResult`` (the two half models and what
# the map is made with).
_ENGINE_RUNS = {"grid": run_grid_engine, "splat": run_splat_engine}
MIN_BOX = 16  # the automatic mask and the coarsest fit stage need at least this many pixels


@dataclass
class ReconstructResult:
    """What a finished run reports (also in ``run.json``)."""

    out_dir: Path
    resolution_angstrom: float
    summary: dict


RANDOM_HALVES_WARNING = (
    "the half sets are random (no half-set labels in the input, or --ignore-random-subset): the "
    "poses then came from all particles, so the halves are not independent and the FSC and the "
    "cross-validated resolution are optimistic"
)


def check_engine_particles(particles: ParticleSet, engine: str) -> None:
    """Raise :class:`InputError` unless ``engine`` can reconstruct ``particles``.

    The grid engine rescales the Fourier samples of each optics group to the reconstruction's
    pixel size; the per-image engine renders every image at one pixel size, so it refuses optics
    groups whose pixel sizes differ (naming them) rather than give the minority the wrong CTF and
    the wrong frequencies. Images Fourier-padded from a smaller box at the map's pixel (a binned
    group read at the map's box, :mod:`cryosplat.particles.mixed_boxes`) both engines read within
    their own band.
    """
    if engine == "splat" and particles.weights is not None:
        raise InputError(
            "--weights: the per-image engine (--engine splat) weighs every image alike; the "
            "grid engine (the default) reads the weights"
        )
    if engine == "splat" and particles.mixed_pixel_sizes:
        raise InputError(
            f"{particles.source}: optics groups have different pixel sizes "
            f"({particles.pixel_size_listing()}); --engine splat renders every image at one pixel "
            "size: use --engine grid (which rescales each group), or re-extract the particles "
            "at one pixel size"
        )


def _check_particles(particles: ParticleSet, config: ReconstructConfig) -> None:
    check_engine_particles(particles, config.engine)
    particles.require_poses_and_ctf()
    if len(particles) < 2:
        raise InputError(f"{particles.source}: {len(particles)} particle(s); need at least 2")
    if particles.box < MIN_BOX:
        raise InputError(
            f"{particles.source}: box {particles.box} is too small for a reconstruction "
            f"(at least {MIN_BOX} pixels)"
        )
    limit = config.grid.accumulate.max_resolution_angstrom
    if limit is not None and particles.box * particles.pixel_size_angstrom / limit < MIN_RADIUS:
        raise InputError(
            f"--max-resolution {limit:g} Å keeps fewer than {MIN_RADIUS} Fourier shells of "
            f"the {particles.box}-pixel box at {particles.pixel_size_angstrom:g} Å: nothing to fit "
            f"(the coarsest useful limit is "
            f"{particles.box * particles.pixel_size_angstrom / MIN_RADIUS:g} Å)"
        )
    if limit is not None and limit < 2.0 * particles.pixel_size_angstrom:
        log.warning(
            "warning: --max-resolution %g Å is finer than the images' Nyquist limit (%g Å at "
            "%g Å/px): it crops nothing, the run uses every frequency the images hold",
            limit,
            2.0 * particles.pixel_size_angstrom,
            particles.pixel_size_angstrom,
        )
    if config.n_gaussians is not None and config.n_gaussians > particles.box**3:
        raise InputError(
            f"n_gaussians {config.n_gaussians} is more than the {particles.box}³ voxels of the box"
        )


def _gaussians_from_data(config: ReconstructConfig) -> bool:
    """Whether the grid engine may raise the count after its statistics pass: no count given."""
    return config.engine == "grid" and config.grid.gaussians_from_data and not config.n_gaussians


def planned_n_gaussians(config: ReconstructConfig, box: int) -> int:
    """The most Gaussians per half a run at ``box`` may fit: the given number, or the most the
    grid engine's data rule can ask for (:mod:`cryosplat.reconstruct.grid.capacity`)."""
    if config.n_gaussians:
        return config.n_gaussians
    default = default_n_gaussians(box)
    return most_gaussians_for_data(default) if _gaussians_from_data(config) else default


def plan_run(particles: ParticleSet, config: ReconstructConfig) -> MemoryPlan:
    """The memory plan of a run (box, batch, predicted peak); raises InputError when nothing fits.

    The prediction is for the grid engine; the per-image engine gathers the same statistics for
    its validation maps, so the same bound and crop apply.
    """
    acc = config.grid.accumulate
    request = PlanRequest(
        box=particles.box,
        pixel_size_angstrom=particles.pixel_size_angstrom,
        pad=int(acc.pad),
        batch_size=acc.batch_size,
        n_gaussians=lambda box: planned_n_gaussians(config, box),
        max_resolution_angstrom=acc.max_resolution_angstrom,
        unpadded_above_box=config.grid.fit.unpadded_above_box,
        held_out=config.grid.heldout_fraction > 0,
    )
    return plan_memory(request, config.memory)


def reconstruct(
    particles: ParticleSet,
    out_dir: str | Path,
    config: ReconstructConfig,
    resume: bool = False,
    show_progress: bool = True,
    dist: Distributed | None = None,
    *,
    folder_mode: str | None = None,
    accept_warnings: bool = False,
) -> ReconstructResult | None:
    """Run a gold-standard reconstruction into ``out_dir``.

    Parameters
    ----------
    particles : ParticleSet
        With poses and CTF.
    out_dir : str or Path
        Output folder: new, or holding this same run when ``resume``.
    config : ReconstructConfig
    resume : bool
        Continue an interrupted run from its checkpoints.
    show_progress : bool
        Draw a progress bar on stderr.
    dist : Distributed, optional
        This process's rank in a ``torchrun`` job (:func:`cryosplat.reconstruct.distributed.start`);
        its device replaces ``config.device``. None: one process.
    folder_mode : str, optional
        ``"restart"`` or ``"overwrite"`` to discard an earlier run in ``out_dir``
        (:class:`cryosplat.reconstruct.run_folder.RunFolder`); default ``"resume"`` or ``"new"``.
    accept_warnings : bool
        Run despite suspicious metadata (:func:`cryosplat.particles.validate.check_particles`).

    Returns
    -------
    ReconstructResult on rank 0 (or a single process); None on the other ranks, which write nothing.
    """
    dist = Distributed() if dist is None else dist
    config.validate()
    _check_particles(particles, config)
    particles = without_dust(particles, config.dust_sds)  # before anything reads an image
    apply_findings(particles, check_particles(particles, config.use_random_subset), accept_warnings)
    apply_pose_check(particles, config.pose_check, accept_warnings)  # before any work
    if config.symmetry != "C1" or config.helical is not None:  # before any work: the data's?
        half_a, half_b, how = split_halves(particles, config.seed, config.use_random_subset)
        halves = (half_a, half_b)
        if config.symmetry != "C1":  # the group, as oriented
            apply_symmetry_check(
                particles, halves, config.symmetry, config.grid.accumulate, accept_warnings
            )
        if config.helical is not None:  # the hand, twist and rise
            apply_helical_check(
                particles,
                halves,
                config.helical,
                config.grid.accumulate,
                accept_warnings,
                drawn_here=how.startswith("random"),
            )
    device = dist.device if dist.active else resolve_device(config.device)
    plan = plan_run(particles, config)
    source_box, source_pixel = particles.box, particles.pixel_size_angstrom
    particles = downsample_particles(particles, plan.box)
    box, pixel = particles.box, particles.pixel_size_angstrom  # a given mask: read before any work
    fsc_mask = load_fsc_mask(config.fsc_mask, box, pixel, source_box, source_pixel)
    if fsc_mask is not None and fsc_mask.note is not None:
        log.info(fsc_mask.note)
    asked = config  # the run's identity: the batch the plan chose may differ on resume
    n_gauss = config.n_gaussians or default_n_gaussians(particles.box)
    # The settings as run (also what config.json records): the plan's batch, raised on a GPU,
    # the device, and the Gaussians per half the fit starts from (the data may raise it).
    batch = statistics_batch_size(plan.batch_size, device)
    config = replace(
        config,
        grid=replace(
            config.grid,
            accumulate=replace(config.grid.accumulate, batch_size=batch, device=str(device)),
            fit=replace(config.grid.fit, device=str(device), n_gaussians=n_gauss),
            concurrent_halves=config.grid.concurrent_halves and plan.concurrent_halves,
            gaussians_from_data=_gaussians_from_data(config),  # a given count is the count fitted
        ),
    )
    identity = {
        "input": str(Path(particles.source).resolve()) if particles.source else None,
        "n_particles": len(particles),
        "box": source_box,
        "pixel_size_angstrom": source_pixel,
        "work_box": particles.box,
        # Not what is fitted, so not what must match to resume: where it runs, its memory plan,
        # and how the map is made from the finished halves (the blend, the local weight).
        **{k: v for k, v in asdict(asked).items() if k not in OUTSIDE_IDENTITY},
        "n_gaussians": n_gauss,
        "input_fingerprint": input_fingerprint(particles),
        # Joins the identity only where the user chose particles (older runs' keys unchanged).
        **({"selection": particles.selection} if particles.selection else {}),
        # Only where keeping patches whole draws other halves than runs made before it did.
        **(
            {"halves_keep_patches": True}
            if split_keeps_patches(particles, asked.use_random_subset)
            else {}
        ),
    }
    folder = RunFolder(out_dir, identity, mode=folder_mode or ("resume" if resume else "new"))
    resuming = dist.on_main(folder.prepare)
    run = _PreparedRun(
        folder,
        resuming,
        particles,
        config,
        n_gauss,
        device,
        plan,
        config.map_settings(
            plan.map_origin_angstrom, fsc_mask, source_box_to_write(plan.source_box, plan.box)
        ),
        show_progress and dist.is_main,
        dist,
    )
    with deterministic_algorithms(config.deterministic):
        if not dist.is_main:
            half_a, half_b, _ = split_halves(particles, config.seed, config.use_random_subset)
            _ENGINE_RUNS[config.engine](run.engine_job((half_a, half_b)))
            return None
        try:
            return _reconstruct_in(run)
        except KeyboardInterrupt as exc:
            how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
            folder.fail(f"{how}; --resume continues it", status="interrupted")
            raise
        except BaseException as exc:
            folder.fail(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            folder.release()


def _check_finite(model_a: GaussianModel, model_b: GaussianModel) -> None:
    for name, model in (("A", model_a), ("B", model_b)):
        for key, value in model.state_dict().items():
            if not bool(torch.isfinite(value).all()):
                raise CryosplatError(
                    f"the fit diverged: model {name} has NaN or infinite {key}; nothing was "
                    "written (try smaller learning rates, or check the images)"
                )


@dataclass(frozen=True)
class _PreparedRun:
    """A run ready to start: its folder prepared (and locked), its particles at the working box,
    and its settings as run.

    ``config`` is as run (the plan's batch, the device) with the Gaussians per half the fit
    starts from in ``n_gaussians`` (the data may raise it); ``settings``: how the outputs make and
    mask the map (:class:`MapSettings`).
    """

    folder: RunFolder
    resuming: bool
    particles: ParticleSet
    config: ReconstructConfig
    n_gaussians: int
    device: torch.device
    plan: MemoryPlan
    settings: MapSettings
    show_progress: bool
    dist: Distributed

    def engine_job(self, halves: tuple[np.ndarray, np.ndarray]) -> EngineJob:
        """What the engine is given for the two half sets (their rows ``halves``)."""
        config = replace(self.config, n_gaussians=self.n_gaussians)
        return EngineJob(
            self.particles, halves, config, self.folder, self.device, self.show_progress, self.dist
        )


def _reconstruct_in(run: _PreparedRun) -> ReconstructResult:
    """The run proper, in its prepared (locked) folder (rank 0 under ``torchrun``)."""
    folder, particles, config, device = run.folder, run.particles, run.config, run.device
    dist, plan, n_gauss = run.dist, run.plan, run.n_gaussians
    identity = folder.identity
    folder.attach_log(log)
    # The halves gathered and fitted side by side, a thread each: the plan's peak is then theirs.
    side_by_side = (
        config.engine == "grid"
        and not dist.active
        and concurrent_halves(device, 2, config.grid.concurrent_halves)
    )
    if folder.discarded:
        log.info("discarded the earlier run in %s (status: %s)", folder.path, folder.discarded)
    if folder.remaking:
        log.info("the run is complete: its outputs are made again from its kept checkpoints")
    write_json_atomic(
        folder.path / "config.json",
        {
            "config": asdict(config),
            "device": str(device),
            "n_gaussians": n_gauss,
            "memory_plan": {
                "box": plan.box,
                "source_box": plan.source_box,
                "pixel_size_angstrom": plan.pixel_size_angstrom,
                "batch_size": plan.batch_size,
                "predicted_peak_bytes": plan.peak_bytes(side_by_side),
                "halves_side_by_side": side_by_side,
                "max_memory_bytes": plan.max_memory_bytes,
            },
            "symmetry": config.symmetry,
            "input": identity["input"],
            **({"selection": particles.selection} if particles.selection else {}),
            "resumed": run.resuming,
            **({"world_size": dist.world_size} if dist.active else {}),
        },
    )
    try:
        log.info("%s", run_description(particles, config, n_gauss, device, dist, run.resuming))
        log.info(
            "device: %s%s",
            describe_device(device),
            "; deterministic kernels (--deterministic)" if config.deterministic else "",
        )
        reset_peak_memory(device)
        log.info("%s", plan.describe(side_by_side))
        for note in particles.notes:
            log.info("note: %s", note)
        half_a, half_b, how = split_halves(particles, config.seed, config.use_random_subset)
        log.info("half sets: %d + %d particles (%s)", len(half_a), len(half_b), how)
        warnings = list(particles.warnings)  # the metadata's and the data checks' findings
        if how.startswith("random"):
            warnings.append(RANDOM_HALVES_WARNING)
        if unequal := unequal_halves_warning(len(half_a), len(half_b), how):
            warnings.append(unequal)
        if dist.is_main and (thon := check_thon_rings(particles)) is not None:
            line = thon.describe(particles.pixel_size_angstrom)
            if thon.verdict == "mismatch":
                warnings.append(line)
            else:
                log.info("CTF check: %s", line)
        if dist.is_main and (axis := check_astigmatism(particles)) is not None:
            if axis.verdict == "mismatch":
                warnings.append(axis.describe())
            else:
                log.info("astigmatism check: %s", axis.describe())
        for warning in warnings:
            log.warning("warning: %s", warning)
        log.info(
            "data sign: %s",
            "inverted (protein dark in the images)"
            if config.invert_contrast
            else "as RELION (protein bright in the images)",
        )
        result = _ENGINE_RUNS[config.engine](run.engine_job((half_a, half_b)))
        _check_finite(*result.models)
        if (dust := dust_summary(particles)) is not None:
            log.info("%s", describe_dust(dust))
        left_out_files = _write_left_out(folder.path, particles, result)
        # The models stay on the device: the final half maps are voxelised there.
        report, summary = write_outputs(folder.path, result, run.settings, warnings)
        summary.update(
            {"engine": config.engine, "halves": how, "n_particles": [len(half_a), len(half_b)]}
        )
        if particles.selection:
            summary["selection"] = particles.selection
        if dust is not None:
            summary["hot_pixels"] = dust
        summary.update(result.summary())
        if left_out_files:
            summary["background_structure"]["files"] = [p.name for p in left_out_files]
        summary["device"] = describe_device(device)
        summary.update(measured_peak_memory(device, plan.peak_bytes(side_by_side)))
        removed = folder.complete(summary, config.keep_checkpoints or folder.remaking)
        if removed:
            log.info(
                "checkpoints removed (%s; --keep-checkpoints keeps them)", format_bytes(removed)
            )
        log.info("done: outputs in %s", folder.path)
        return ReconstructResult(folder.path, report.resolution_angstrom, summary)
    finally:
        folder.detach_log(log)


def _write_left_out(folder: Path, particles: ParticleSet, result: EngineResult) -> list[Path]:
    """The particles weighed 0 for their background's structure, written and logged
    (:mod:`cryosplat.reconstruct.left_out`)."""
    rows, summary = result.left_out_rows, result.left_out
    if rows is None or summary is None or rows.size == 0:
        return []
    files = write_left_out(folder, particles, rows)
    log.info(
        "background structure: %d of %d particles left out (weight 0; the sample held %d of "
        "%d); their rows: %s",
        rows.size,
        summary.get("images", len(particles)),
        summary["sampled_images_left_out"],
        summary["sampled_images"],
        ", ".join(p.name for p in files),
    )
    return files
