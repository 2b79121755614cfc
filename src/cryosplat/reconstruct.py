"""``cryosplat reconstruct``: two half-set Gaussian models from random starts, half maps and FSC.

The orchestration is engine-independent: check the input and the output folder, split the particles
into gold-standard halves, initialise two independent random models, run an engine (the per-image
splatting engine of :mod:`cryosplat.splat_engine`, or the Fourier-statistics engine of
:mod:`cryosplat.grid_engine`), then write the outputs (:mod:`cryosplat.report`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from cryosplat.data import ParticleSet
from cryosplat.errors import InputError
from cryosplat.gaussians import GaussianModel
from cryosplat.grid_engine import GridEngineConfig, run_grid_engine
from cryosplat.halves import split_halves
from cryosplat.progress import Progress
from cryosplat.report import write_outputs
from cryosplat.run_folder import RunFolder, write_json_atomic
from cryosplat.splat_engine import SplatEngine, SplatEngineConfig
from cryosplat.statistics import FourierStatistics, accumulate
from cryosplat.symmetry import asymmetric_unit_gaussians, normalize_symmetry, symmetry_operators
from cryosplat.validation import ResolutionMonitor, data_half_maps

__all__ = [
    "ReconstructConfig",
    "ReconstructResult",
    "reconstruct",
    "resolve_device",
    "default_n_gaussians",
    "ENGINES",
]

log = logging.getLogger("cryosplat")

ENGINES = ("grid", "splat")


@dataclass
class ReconstructConfig:
    """Everything that defines a reconstruction run.

    Attributes
    ----------
    engine : ``"grid"`` (Fourier sufficient statistics, default) or ``"splat"`` (per-image)
    n_gaussians : Gaussians per half model; default from the box (:func:`default_n_gaussians`)
    seed : seeds the half split, both random initialisations and the batch order
    device : ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``
    invert_contrast : the images hold protein dark (not RELION's convention); flip their sign
    use_random_subset : honour ``rlnRandomSubset`` for the halves when present
    init_radius_fraction : random means lie in a sphere of this radius (fraction of the box edge)
    mask_soft_width_px : soft edge of the FSC masks (voxels)
    symmetry : point group in RELION's conventions (:mod:`cryosplat.symmetry`; ``"C1"``: none):
        each particle counts once per operator and each half model holds one asymmetric unit's
        Gaussians (``n_gaussians / |G|``), drawn with all copies
    splat : settings of the per-image engine
    grid : settings of the Fourier-statistics engine
    """

    engine: str = "grid"
    n_gaussians: int | None = None
    seed: int = 0
    device: str = "auto"
    invert_contrast: bool = False
    use_random_subset: bool = True
    init_radius_fraction: float = 0.3
    mask_soft_width_px: float = 6.0
    symmetry: str = "C1"
    splat: SplatEngineConfig = field(default_factory=SplatEngineConfig)
    grid: GridEngineConfig = field(default_factory=GridEngineConfig)

    def validate(self) -> None:
        self.symmetry = normalize_symmetry(self.symmetry)
        if self.grid.fit.symmetry != self.symmetry:  # one record of the group in config.json
            self.grid = replace(self.grid, fit=replace(self.grid.fit, symmetry=self.symmetry))
        if self.engine not in ENGINES:
            raise InputError(f"engine must be one of {', '.join(ENGINES)}, got '{self.engine}'")
        if self.n_gaussians is not None and self.n_gaussians < 1:
            raise InputError(f"n_gaussians must be at least 1, got {self.n_gaussians}")
        if not 0 < self.init_radius_fraction <= 0.5:
            raise InputError(
                f"init_radius_fraction must be in (0, 0.5], got {self.init_radius_fraction}"
            )
        try:
            self.splat.validate()
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.grid.validate()


@dataclass
class ReconstructResult:
    """What a finished run reports (also in ``run.json``)."""

    out_dir: Path
    resolution_angstrom: float
    summary: dict


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; a CUDA device asked for where none exists raises."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(
            f"--device: unknown device '{name}' (use auto, cpu, cuda or cuda:N)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"--device {name}: no CUDA GPU is available to this PyTorch "
                f"(torch {torch.__version__}, cuda {torch.version.cuda})"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise InputError(f"--device {name}: unsupported device type '{device.type}'")
    return device


def default_n_gaussians(box: int) -> int:
    """Gaussians per half model: about one per 40 voxels of a sphere of radius 0.4·D, 1k–30k.

    Measured on the benchmark sets (FSC 0.5 with the truth): one per 80 voxels gave 3.62 / 5.25 /
    9.19 Å on 8ZPM (box 96) / 6VXX (box 128) / EMD-6824 (box 70); twice as many 3.56 / 5.02 /
    9.06 Å at the same time on 8ZPM and +17 % on 6VXX; more still helps the spike a little more
    (4.80 Å at 25k) at a further +25 % in time.
    """
    sphere_voxels = 4.0 / 3.0 * math.pi * (0.4 * box) ** 3
    return int(min(30_000, max(1_000, round(sphere_voxels / 40.0, -2))))


def _check_particles(particles: ParticleSet) -> None:
    particles.require_poses_and_ctf()
    if len(particles) < 2:
        raise InputError(f"{particles.source}: {len(particles)} particle(s); need at least 2")
    if particles.box < 8:
        raise InputError(f"{particles.source}: box {particles.box} is too small (at least 8)")
    if particles.box % 2:
        raise InputError(
            f"{particles.source}: box {particles.box} is odd; cryosplat reconstruct needs an even "
            "box (re-extract the particles with an even box, as RELION and cryoSPARC do by default)"
        )


def _initial_models(particles: ParticleSet, config: ReconstructConfig, n: int, device):
    models = []
    for half in range(2):
        m = GaussianModel.random(
            asymmetric_unit_gaussians(n, config.symmetry),
            particles.box,
            particles.pixel_size_angstrom,
            seed=config.seed * 2 + half + 1,
            radius_fraction=config.init_radius_fraction,
            scale_angstrom=None,
            symmetry=config.symmetry,
        )
        models.append(m.to(device))
    return models


def _run_splat(particles, halves, config, folder: RunFolder, device, show_progress):
    data_maps = _data_half_maps(particles, halves, config, folder, device)
    monitor = ResolutionMonitor(data_maps, particles.pixel_size_angstrom)
    models = _initial_models(particles, config, config.n_gaussians, device)
    engine = SplatEngine(
        particles,
        halves,
        models,
        config.splat,
        folder.checkpoint_dir / "splat_state.pt",
        device,
        seed=config.seed,
        data_sign=-1.0 if config.invert_contrast else 1.0,
    )
    resumed = engine.load()
    if resumed:
        log.info("resuming from epoch %d, step %d", engine.epoch + 1, engine.step_in_epoch)
    done = engine.epoch * engine.steps_per_epoch() + engine.step_in_epoch
    bar = Progress(engine.total_steps(), "reconstruct", done=done, enabled=show_progress)
    state = {"res": None}

    def on_step(step, total, info):
        res = "" if state["res"] is None else f" resolution {state['res']:.2f} Å"
        bar.update(
            step, f"epoch {info['epoch']}/{config.splat.epochs} loss {info['loss']:.4g}{res}"
        )

    def on_epoch(epoch):
        res = monitor(*(h.model for h in engine.halves))
        state["res"] = res
        log.info(
            "epoch %d/%d: resolution %.2f Å (cross-validated)", epoch, config.splat.epochs, res
        )
        return {"resolution_angstrom": res}

    result = engine.run(on_step=on_step, on_epoch=on_epoch)
    bar.close()
    return result, {"history": engine.history, "data_maps": data_maps}


def _run_grid(particles, halves, config, folder: RunFolder, device, show_progress):
    return run_grid_engine(particles, halves, config, folder, device, show_progress)


def _data_half_maps(particles, halves, config, folder: RunFolder, device):
    """Direct Fourier inversions of the two half sets, for the cross-validated resolution.

    One streamed pass over the particles; the statistics are cached in the checkpoints.
    """
    acc = replace(config.grid.accumulate, device=str(device))
    ops = None if config.symmetry == "C1" else symmetry_operators(config.symmetry)
    statistics = []
    for name, rows in zip("AB", halves, strict=True):
        path = folder.checkpoint_dir / f"stats_{name}_all.npz"
        stats = FourierStatistics.load(path) if path.is_file() else None
        if stats is None or stats.n_particles != len(rows):
            log.info("gathering the Fourier statistics of half %s for validation", name)
            stats = accumulate(particles, rows, acc, operators=ops)
            stats.save(path)
        statistics.append(stats)
    return data_half_maps(statistics, -1.0 if config.invert_contrast else 1.0)


def reconstruct(
    particles: ParticleSet,
    out_dir: str | Path,
    config: ReconstructConfig,
    resume: bool = False,
    show_progress: bool = True,
) -> ReconstructResult:
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
    """
    config.validate()
    _check_particles(particles)
    device = resolve_device(config.device)
    n_gauss = config.n_gaussians or default_n_gaussians(particles.box)
    identity = {
        "input": str(Path(particles.source).resolve()) if particles.source else None,
        "n_particles": len(particles),
        "box": particles.box,
        "pixel_size_angstrom": particles.pixel_size_angstrom,
        **{k: v for k, v in asdict(config).items() if k != "device"},
        "n_gaussians": n_gauss,
    }
    folder = RunFolder(out_dir, identity, resume=resume)
    resuming = folder.prepare()
    folder.attach_log(log)
    write_json_atomic(
        folder.path / "config.json",
        {
            "config": asdict(config),
            "device": str(device),
            "n_gaussians": n_gauss,
            "symmetry": config.symmetry,
            "input": identity["input"],
            "resumed": resuming,
        },
    )
    try:
        log.info(
            "cryosplat reconstruct: %d particles, box %d, %.4g Å/px, engine %s, symmetry %s, "
            "%d Gaussians per half%s, device %s%s",
            len(particles),
            particles.box,
            particles.pixel_size_angstrom,
            config.engine,
            config.symmetry,
            n_gauss,
            ""
            if config.symmetry == "C1"
            else f" ({asymmetric_unit_gaussians(n_gauss, config.symmetry)} per asymmetric unit × "
            f"{len(symmetry_operators(config.symmetry))} copies)",
            device,
            " (resumed)" if resuming else "",
        )
        for note in particles.notes:
            log.info("note: %s", note)
        half_a, half_b, how = split_halves(particles, config.seed, config.use_random_subset)
        log.info("half sets: %d + %d particles (%s)", len(half_a), len(half_b), how)
        log.info(
            "data sign: %s",
            "inverted (protein dark in the images)"
            if config.invert_contrast
            else "as RELION (protein bright in the images)",
        )
        run = _run_splat if config.engine == "splat" else _run_grid
        (model_a, model_b), details = run(
            particles,
            (half_a, half_b),
            replace(config, n_gaussians=n_gauss),
            folder,
            device,
            show_progress,
        )
        data_maps = details.pop("data_maps")
        report, summary = write_outputs(
            folder.path,
            model_a.cpu(),
            model_b.cpu(),
            config.mask_soft_width_px,
            data_maps,
            symmetry=config.symmetry,
        )
        summary.update(
            {"engine": config.engine, "halves": how, "n_particles": [len(half_a), len(half_b)]}
        )
        summary.update(details)
        folder.complete(summary)
        log.info("done: outputs in %s", folder.path)
        return ReconstructResult(folder.path, report.resolution_angstrom, summary)
    finally:
        folder.detach_log(log)
