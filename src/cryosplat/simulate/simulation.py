"""Simulated single-particle data sets with known ground truth.

A model (PDB/mmCIF atoms, a saved Gaussian model ``.npz``, or an MRC map) is projected along random
or given views, shifted, multiplied by a CTF and buried in white noise at a requested signal-to-noise
ratio. The output folder holds what a RELION user would get from an extraction job, plus the truth:

* ``particles.star``: RELION 3.1 STAR (optics table; angles; Å origins; CTF; ``rlnRandomSubset``;
  image names ``000001@particles_000.mrcs``);
* ``particles_000.mrcs``, ``particles_001.mrcs``, ...: MRC stacks of at most
  ``images_per_stack`` images each, written batch by batch as they are produced, so the memory used
  does not grow with the number of particles (only the metadata, ~100 bytes a particle, does);
* ``truth.mrc``: the ground-truth map (the voxelised model, or the input map) with its voxel size;
* ``simulation.json``: the configuration, the measured signal variance and the noise level.

Conventions are those of :mod:`cryosplat.core.conventions`: images hold protein bright (RELION's sign, a
CTF positive at low frequency) and ``image(p) = projection(p + o)`` with ``o`` the RELION origin.
The SNR is the variance of the clean CTF-modulated images over the whole box divided by the variance
of the noise, the signal variance being estimated from the first batch of clean images.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cryosplat.core.ctf import CTFParams, ctf_from_params
from cryosplat.core.device import resolve_device
from cryosplat.core.errors import InputError
from cryosplat.io.atomic import atomic_path
from cryosplat.io.mrc import write_map
from cryosplat.io.stack_writer import StreamingStackWriter
from cryosplat.io.star import write_relion31_particles
from cryosplat.particles.cryodrgn import read_cryodrgn_ctf
from cryosplat.particles.validate import MICRON_LIKE_DEFOCUS_ANGSTROM
from cryosplat.simulate.outputs import guard_simulation_folder
from cryosplat.simulate.projection import ProjectorConfig, load_projector
from cryosplat.simulate.views import PreferredViews, as_cones, check_view_source, sample_views

__all__ = ["SimulationConfig", "SimulationResult", "SimulatedMetadata", "draw_metadata", "simulate"]

log = logging.getLogger(__name__)


@dataclass
class SimulationConfig:
    """How to simulate a particle data set.

    Attributes
    ----------
    n_particles : int
    box : int or None
        Image size D (pixels). Required for atoms and Gaussian models; for a map, its box is used and
        a different value is an error.
    pixel_size_angstrom : float or None
        Required for atoms; a Gaussian model or a map default to their own.
    snr : float
        Signal variance over noise variance over the box, after the CTF; ``inf`` for no noise.
    seed : int
        Seeds every random draw (views, shifts, defoci, subsets, noise).
    views : Path or None
        A STAR/.cs particle file whose rotations are sampled (without replacement when it has at
        least ``n_particles`` rows, else with replacement); None for uniform random views.
    preferred_views : PreferredViews, a tuple of them, or None
        Instead of ``views``: a share of the views within a cone about one view (by default the
        map's z axis), or several such cones, the rest uniform (:mod:`cryosplat.simulate.views`).
    shift_sd_angstrom : float
        Standard deviation (Å) of the Gaussian RELION origins on each axis.
    defocus_min_um, defocus_max_um : float
        Range of the uniform mean defocus (µm, positive underfocus).
    astigmatism_max_angstrom : float
        ``|U - V|`` uniform in ``[0, this]`` Å, with a uniform random astigmatism angle.
    ctf_table : Path or None
        A cryoDRGN ``ctf.pkl`` (N×9); its ``(dfU, dfV, dfang)`` rows are sampled with replacement
        instead of the defocus range. Voltage, Cs and Q still come from this config.
    voltage_kv, cs_mm, amplitude_contrast, bfactor_angstrom2 : float
        CTF optics and envelope B-factor (Å²) for every particle.
    apply_ctf : bool
        False: images are the shifted projections, and the STAR still holds the CTF values drawn.
    bfactor_extra_angstrom2 : float
        Extra B-factor added to every atom of an atomic model.
    batch_size : int
        Images produced (and held in memory) at once.
    images_per_stack : int
        Largest number of images in one ``.mrcs`` file.
    device : str
        torch device for projection.
    projection : str
        For atoms and Gaussian models: ``"splat"`` (each Gaussian splatted, ``cryosplat.render.imaging``)
        or ``"fourier"`` (Fourier slices of the voxelised model: faster for large models, but
        Gaussians narrower than a voxel are point-sampled). Maps always use Fourier slices.
    backend : str
        Splatting backend (``cryosplat.render.imaging``).
    """

    n_particles: int
    box: int | None = None
    pixel_size_angstrom: float | None = None
    snr: float = 0.01
    seed: int = 0
    views: Path | None = None
    preferred_views: PreferredViews | tuple[PreferredViews, ...] | None = None
    shift_sd_angstrom: float = 0.0
    defocus_min_um: float = 1.0
    defocus_max_um: float = 2.5
    astigmatism_max_angstrom: float = 0.0
    ctf_table: Path | None = None
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    bfactor_angstrom2: float = 0.0
    apply_ctf: bool = True
    bfactor_extra_angstrom2: float = 0.0
    batch_size: int = 128
    images_per_stack: int = 10_000
    device: str = "cpu"
    projection: str = "splat"
    backend: str = "auto"

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first bad option."""
        rules = [  # (name, value, unit, bound, kind)
            ("number of particles", self.n_particles, "", 1, "at least"),
            ("batch size", self.batch_size, "", 1, "at least"),
            ("images per stack", self.images_per_stack, "", 1, "at least"),
            ("box", 8 if self.box is None else self.box, " pixels", 8, "at least"),
            (
                "pixel size",
                1.0 if self.pixel_size_angstrom is None else self.pixel_size_angstrom,
                " Å",
                0,
                "positive",
            ),
            ("voltage", self.voltage_kv, " kV", 0, "positive"),
            ("shift spread", self.shift_sd_angstrom, " Å", 0, "non-negative"),
            ("astigmatism", self.astigmatism_max_angstrom, " Å", 0, "non-negative"),
            ("Cs", self.cs_mm, " mm", 0, "non-negative"),
            ("B-factor", self.bfactor_angstrom2, " Å²", 0, "non-negative"),
        ]
        for name, value, unit, bound, kind in rules:
            ok = value > bound if kind == "positive" else value >= bound
            if not ok:
                rule = f"at least {bound}" if kind == "at least" else kind
                raise InputError(f"{name} must be {rule}, got {value}{unit}")
        if self.seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {self.seed}")
        if not self.snr > 0:
            raise InputError(f"SNR must be positive (inf for no noise), got {self.snr}")
        if not 0 < self.defocus_min_um <= self.defocus_max_um:
            raise InputError(
                "defocus range must satisfy 0 < min <= max, got "
                f"{self.defocus_min_um:g} to {self.defocus_max_um:g} µm "
                f"({self.defocus_min_um * 1e4:g} to {self.defocus_max_um * 1e4:g} Å)"
            )
        if self.defocus_max_um * 1e4 < MICRON_LIKE_DEFOCUS_ANGSTROM:
            raise InputError(
                f"a defocus of {self.defocus_min_um * 1e4:g} to {self.defocus_max_um * 1e4:g} Å "
                "is µm written as Å, not a real defocus (the CTF would be flat): the command "
                "line's --defocus-min and --defocus-max take Å, as RELION and cryoSPARC write "
                f"them (e.g. {self.defocus_max_um * 1e4:g} µm is "
                f"{self.defocus_max_um * 1e8:g} Å)"
            )
        if not 0 <= self.amplitude_contrast < 1:
            raise InputError(f"amplitude contrast must be in [0, 1), got {self.amplitude_contrast}")
        check_view_source(self.views, self.preferred_views)
        if self.preferred_views is not None:
            try:
                as_cones(self.preferred_views)
            except ValueError as exc:
                raise InputError(str(exc)) from None
        if self.projection not in ("splat", "fourier"):
            raise InputError(f"projection must be 'splat' or 'fourier', got '{self.projection}'")
        if self.astigmatism_max_angstrom > 2e4 * self.defocus_min_um:
            raise InputError(
                f"astigmatism {self.astigmatism_max_angstrom} Å exceeds twice the "
                f"smallest defocus ({self.defocus_min_um} µm): V would be negative"
            )


@dataclass
class SimulatedMetadata:
    """Per-particle ground truth of a simulation.

    Attributes
    ----------
    rotations : np.ndarray, shape (N, 3, 3)
        Map→image matrices ``A``.
    shifts_angstrom : np.ndarray, shape (N, 2)
        RELION origins ``(x, y)`` in Å.
    ctf : CTFParams
    random_subset : np.ndarray, shape (N,), int
        Half-set labels 1 and 2, balanced and randomly assigned.
    """

    rotations: np.ndarray
    shifts_angstrom: np.ndarray
    ctf: CTFParams
    random_subset: np.ndarray


@dataclass
class SimulationResult:
    """What :func:`simulate` wrote and measured."""

    output_dir: Path
    star_path: Path
    stack_paths: list[Path]
    truth_path: Path
    n_particles: int
    box: int
    pixel_size_angstrom: float
    signal_variance: float
    noise_sd: float
    metadata: SimulatedMetadata = field(repr=False)


def draw_metadata(config: SimulationConfig, rng: np.random.Generator) -> SimulatedMetadata:
    """Draw views, shifts, CTF parameters and half-set labels for ``config.n_particles``.

    Parameters
    ----------
    config : SimulationConfig
    rng : np.random.Generator
        Drawn from in a fixed order, so a seed gives the same metadata.
    """
    n = config.n_particles
    rotations = sample_views(config.n_particles, rng, config.views, config.preferred_views)
    shifts = (
        rng.normal(scale=config.shift_sd_angstrom, size=(n, 2))
        if config.shift_sd_angstrom
        else np.zeros((n, 2))
    )
    if config.ctf_table is not None:
        table = read_cryodrgn_ctf(config.ctf_table)[0]
        rows = rng.integers(0, len(table), size=n)
        du, dv, angle = (
            getattr(table, f)[rows]
            for f in ("defocus_u_angstrom", "defocus_v_angstrom", "defocus_angle_degrees")
        )
    else:
        mean = rng.uniform(config.defocus_min_um, config.defocus_max_um, size=n) * 1e4
        astig = rng.uniform(0.0, config.astigmatism_max_angstrom, size=n)
        du, dv = mean + astig / 2, mean - astig / 2
        angle = rng.uniform(0.0, 180.0, size=n) if config.astigmatism_max_angstrom else np.zeros(n)
    ctf = CTFParams.create(
        n,
        defocus_u_angstrom=du,
        defocus_v_angstrom=dv,
        defocus_angle_degrees=angle,
        voltage_kv=config.voltage_kv,
        cs_mm=config.cs_mm,
        amplitude_contrast=config.amplitude_contrast,
        bfactor_angstrom2=config.bfactor_angstrom2,
    )
    subset = np.where(rng.permutation(n) % 2 == 0, 1, 2).astype(np.int64)
    return SimulatedMetadata(rotations, shifts, ctf, subset)


def _batches(n_particles: int, images_per_stack: int, batch_size: int):
    """Yield ``(stack, start, stop)`` so that no batch straddles two stacks."""
    for stack, first in enumerate(range(0, n_particles, images_per_stack)):
        last = min(n_particles, first + images_per_stack)
        for start in range(first, last, batch_size):
            yield stack, start, min(last, start + batch_size)


def _write_stacks(
    projector,
    meta: SimulatedMetadata,
    config: SimulationConfig,
    stack_paths: list[Path],
    noise_rng: np.random.Generator,
    progress: Callable[[int, int], None] | None,
) -> tuple[float, float, int]:
    """Make, noise and write the images batch by batch.

    Returns ``(signal variance, noise s.d., images the variance was estimated from)``; unfinished
    stacks are deleted if anything fails.
    """
    n, per_stack = config.n_particles, config.images_per_stack
    box, pixel = projector.box, projector.pixel_size_angstrom
    signal_variance, noise_sd, estimate_count = None, 0.0, 0
    writer: StreamingStackWriter | None = None
    if progress is not None:
        progress(0, n)  # the inputs read: the images begin
    try:
        for stack, start, stop in _batches(n, per_stack, config.batch_size):
            if writer is None or writer.path != stack_paths[stack]:
                if writer is not None:
                    writer.close()
                count = min(n, (stack + 1) * per_stack) - stack * per_stack
                writer = StreamingStackWriter(stack_paths[stack], count, box, pixel)
            ctf = None
            if config.apply_ctf:
                ctf = ctf_from_params(
                    meta.ctf.subset(slice(start, stop)), box, pixel, device=projector.device
                )
            clean = projector.images(
                meta.rotations[start:stop], meta.shifts_angstrom[start:stop], ctf
            )
            if signal_variance is None:
                signal_variance = float(clean.var(axis=(1, 2), dtype=np.float64).mean())
                estimate_count = len(clean)
                if not signal_variance > 0:
                    raise InputError(
                        f"{projector.source}: the model projects to blank images in "
                        f"a {box}-pixel box of {pixel} Å"
                    )
                if math.isfinite(config.snr):
                    noise_sd = math.sqrt(signal_variance / config.snr)
                log.info(
                    "signal variance %.4g (%d images): noise s.d. %.4g for SNR %g",
                    signal_variance,
                    estimate_count,
                    noise_sd,
                    config.snr,
                )
            if noise_sd:
                clean += noise_sd * noise_rng.standard_normal(clean.shape, dtype=np.float32)
            writer.write(clean)
            if progress is not None:
                progress(stop, n)
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return signal_variance, noise_sd, estimate_count


def simulate(
    model_path: str | Path,
    output_dir: str | Path,
    config: SimulationConfig,
    progress: Callable[[int, int], None] | None = None,
    *,
    overwrite: bool = False,
) -> SimulationResult:
    """Simulate a particle data set from a model and write it to ``output_dir``.

    Parameters
    ----------
    model_path : str or Path
        ``.pdb``/``.cif`` atoms, ``.npz`` Gaussian model or ``.mrc``/``.map`` map.
    output_dir : str or Path
        Created if needed; the files are listed in the module docstring.
    config : SimulationConfig
    progress : callable, optional
        ``progress(done, total)`` after each batch.
    overwrite : bool
        Replace an earlier simulation in ``output_dir`` (its STAR, truth, record and stacks are
        removed first); without it a non-empty folder is refused.

    Returns
    -------
    SimulationResult
    """
    config.validate()
    resolve_device(config.device)
    model_path, out = Path(model_path), Path(output_dir)
    earlier = guard_simulation_folder(out, [model_path, config.views, config.ctf_table], overwrite)
    projector = load_projector(
        model_path,
        ProjectorConfig(
            box=config.box,
            pixel_size_angstrom=config.pixel_size_angstrom,
            projection=config.projection,
            backend=config.backend,
            device=config.device,
            bfactor_extra_angstrom2=config.bfactor_extra_angstrom2,
        ),
    )
    box, pixel = projector.box, projector.pixel_size_angstrom
    rng = np.random.default_rng(config.seed)
    meta = draw_metadata(config, rng)
    noise_rng = np.random.default_rng(rng.integers(2**63))
    out.mkdir(parents=True, exist_ok=True)
    for old in earlier:  # the STAR first: never a STAR over a mix of old and new stacks
        old.unlink(missing_ok=True)
    n = config.n_particles
    stack_paths = [out / f"particles_{k:03d}.mrcs" for k in range(-(-n // config.images_per_stack))]
    truth_path, star_path = out / "truth.mrc", out / "particles.star"
    try:
        noise = _write_simulation(
            projector, meta, config, model_path, stack_paths, noise_rng, progress
        )
    except BaseException:  # a failure or an interrupt (Ctrl-C, SIGTERM): no half-written set
        for path in (truth_path, *stack_paths, star_path, out / "simulation.json"):
            path.unlink(missing_ok=True)
        raise
    signal_variance, noise_sd = noise
    return SimulationResult(
        out, star_path, stack_paths, truth_path, n, box, pixel, signal_variance, noise_sd, meta
    )


def _write_simulation(
    projector, meta, config, model_path: Path, stack_paths: list[Path], noise_rng, progress
) -> tuple[float, float]:
    """Write the truth, the stacks, the STAR and the record of :func:`simulate` into the
    stacks' folder; returns the signal variance and the noise s.d."""
    out, box, pixel = stack_paths[0].parent, projector.box, projector.pixel_size_angstrom
    n = config.n_particles
    write_map(out / "truth.mrc", projector.truth(), pixel)
    noise = _write_stacks(projector, meta, config, stack_paths, noise_rng, progress)
    signal_variance, noise_sd, estimate_count = noise

    in_stack = np.arange(n) % config.images_per_stack + 1
    names = [
        f"{i:06d}@{stack_paths[s].name}"
        for i, s in zip(in_stack, np.arange(n) // config.images_per_stack, strict=True)
    ]
    write_relion31_particles(
        out / "particles.star",
        image_names=names,
        rotations=meta.rotations,
        shifts_angstrom=meta.shifts_angstrom,
        ctf=meta.ctf,
        pixel_size_angstrom=pixel,
        box=box,
        random_subset=meta.random_subset,
    )
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    record["snr"] = config.snr if math.isfinite(config.snr) else str(config.snr)
    record.update(
        model=str(model_path),
        box=box,
        pixel_size_angstrom=pixel,
        projection_method=projector.method,
        signal_variance=signal_variance,
        signal_variance_images=estimate_count,
        noise_sd=noise_sd,
        snr_definition="variance of the clean CTF-modulated images over the box / noise variance",
    )
    with atomic_path(out / "simulation.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=float) + "\n")
    return signal_variance, noise_sd
