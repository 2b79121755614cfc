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

Conventions are those of :mod:`cryosplat.conventions`: images hold protein bright (RELION's sign, a
CTF positive at low frequency) and ``image(p) = projection(p + o)`` with ``o`` the RELION origin.
The SNR is the variance of the clean CTF-modulated images over the whole box divided by the variance
of the noise, the signal variance being estimated from the first batch of clean images.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mrcfile
import numpy as np
import torch

from cryosplat.ctf import CTFParams, ctf_from_params
from cryosplat.data import ParticleSet
from cryosplat.errors import InputError
from cryosplat.fourier import ifft2_centered, phase_shift_2d
from cryosplat.fourier_slice import extract_slices, volume_to_padded_ft
from cryosplat.gaussians import GaussianModel
from cryosplat.io.cryodrgn import read_cryodrgn_ctf
from cryosplat.io.mrc import read_map, write_map
from cryosplat.io.star import write_relion31_particles
from cryosplat.rotations import random_rotations

__all__ = [
    "SimulationConfig",
    "SimulationResult",
    "SimulatedMetadata",
    "StreamingStackWriter",
    "draw_metadata",
    "simulate",
]

log = logging.getLogger(__name__)

ATOM_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")
MAP_SUFFIXES = (".mrc", ".map")
FOURIER_PAD = 2


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
        For atoms and Gaussian models: ``"splat"`` (each Gaussian splatted, ``cryosplat.imaging``)
        or ``"fourier"`` (Fourier slices of the voxelised model: faster for large models, but
        Gaussians narrower than a voxel are point-sampled). Maps always use Fourier slices.
    backend : str
        Splatting backend (``cryosplat.imaging``).
    """

    n_particles: int
    box: int | None = None
    pixel_size_angstrom: float | None = None
    snr: float = 0.01
    seed: int = 0
    views: Path | None = None
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
        checks = [
            (self.n_particles >= 1, f"number of particles must be at least 1, got {self.n_particles}"),
            (self.box is None or self.box >= 8, f"box must be at least 8 pixels, got {self.box}"),
            (self.pixel_size_angstrom is None or self.pixel_size_angstrom > 0,
             f"pixel size must be positive, got {self.pixel_size_angstrom} Å"),
            (self.snr > 0, f"SNR must be positive (inf for no noise), got {self.snr}"),
            (self.shift_sd_angstrom >= 0,
             f"shift spread must be non-negative, got {self.shift_sd_angstrom} Å"),
            (0 < self.defocus_min_um <= self.defocus_max_um,
             f"defocus range must satisfy 0 < min <= max, got {self.defocus_min_um} to "
             f"{self.defocus_max_um} µm"),
            (self.astigmatism_max_angstrom >= 0,
             f"astigmatism must be non-negative, got {self.astigmatism_max_angstrom} Å"),
            (self.voltage_kv > 0, f"voltage must be positive, got {self.voltage_kv} kV"),
            (self.cs_mm >= 0, f"Cs must be non-negative, got {self.cs_mm} mm"),
            (0 <= self.amplitude_contrast < 1,
             f"amplitude contrast must be in [0, 1), got {self.amplitude_contrast}"),
            (self.bfactor_angstrom2 >= 0,
             f"B-factor must be non-negative, got {self.bfactor_angstrom2} Å²"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (self.images_per_stack >= 1,
             f"images per stack must be at least 1, got {self.images_per_stack}"),
            (self.projection in ("splat", "fourier"),
             f"projection must be 'splat' or 'fourier', got '{self.projection}'"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)
        if self.astigmatism_max_angstrom > 2e4 * self.defocus_min_um:
            raise InputError(f"astigmatism {self.astigmatism_max_angstrom} Å exceeds twice the "
                             f"smallest defocus ({self.defocus_min_um} µm): V would be negative")


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


def _sample_views(config: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    n = config.n_particles
    if config.views is None:
        return random_rotations(n, rng)
    source = ParticleSet.from_file(config.views, require_images=False)
    if source.rotations is None:
        raise InputError(f"{config.views}: no angles/poses to take views from")
    rows = rng.choice(len(source), size=n, replace=n > len(source))
    return np.asarray(source.rotations, dtype=np.float64)[rows]


def draw_metadata(config: SimulationConfig, rng: np.random.Generator) -> SimulatedMetadata:
    """Draw views, shifts, CTF parameters and half-set labels for ``config.n_particles``.

    Parameters
    ----------
    config : SimulationConfig
    rng : np.random.Generator
        Drawn from in a fixed order, so a seed gives the same metadata.
    """
    n = config.n_particles
    rotations = _sample_views(config, rng)
    shifts = rng.normal(scale=config.shift_sd_angstrom, size=(n, 2)) if config.shift_sd_angstrom \
        else np.zeros((n, 2))
    if config.ctf_table is not None:
        table = read_cryodrgn_ctf(config.ctf_table)[0]
        rows = rng.integers(0, len(table), size=n)
        du, dv, angle = (getattr(table, f)[rows] for f in (
            "defocus_u_angstrom", "defocus_v_angstrom", "defocus_angle_degrees"))
    else:
        mean = rng.uniform(config.defocus_min_um, config.defocus_max_um, size=n) * 1e4
        astig = rng.uniform(0.0, config.astigmatism_max_angstrom, size=n)
        du, dv = mean + astig / 2, mean - astig / 2
        angle = rng.uniform(0.0, 180.0, size=n) if config.astigmatism_max_angstrom else np.zeros(n)
    ctf = CTFParams.create(n, defocus_u_angstrom=du, defocus_v_angstrom=dv,
                           defocus_angle_degrees=angle, voltage_kv=config.voltage_kv,
                           cs_mm=config.cs_mm, amplitude_contrast=config.amplitude_contrast,
                           bfactor_angstrom2=config.bfactor_angstrom2)
    subset = np.where(rng.permutation(n) % 2 == 0, 1, 2).astype(np.int64)
    return SimulatedMetadata(rotations, shifts, ctf, subset)


class StreamingStackWriter:
    """Writes one float32 MRC stack of a known number of images, batch by batch.

    The file is created at full size (sparse) with its header, each batch is written at its offset
    and dropped, and the header statistics are filled from running sums on :meth:`close`. The file
    appears under its final name only when complete.

    Parameters
    ----------
    path : Path
    n_images, box : int
    pixel_size_angstrom : float
    """

    def __init__(self, path: Path, n_images: int, box: int, pixel_size_angstrom: float) -> None:
        self.path = Path(path)
        self.n_images, self.box = int(n_images), int(box)
        self._tmp = self.path.with_name(f".{self.path.name}.part")
        with mrcfile.new_mmap(self._tmp, shape=(self.n_images, box, box), mrc_mode=2,
                              overwrite=True) as m:
            m.set_image_stack()
            m.voxel_size = float(pixel_size_angstrom)
            self._offset = int(m.header.nbytes) + int(m.header.nsymbt)
        self._fh = open(self._tmp, "r+b")  # noqa: SIM115 - closed in close()
        self.written = 0
        self._min, self._max, self._sum, self._sumsq = math.inf, -math.inf, 0.0, 0.0

    def write(self, images: np.ndarray) -> None:
        """Append images (B, D, D) after those already written."""
        data = np.ascontiguousarray(images, dtype="<f4")
        if data.ndim != 3 or data.shape[1:] != (self.box, self.box):
            raise ValueError(f"images must have shape (B, {self.box}, {self.box}), got {data.shape}")
        if self.written + len(data) > self.n_images:
            raise ValueError(f"{self.path}: more than {self.n_images} images written")
        self._fh.seek(self._offset + self.written * self.box * self.box * 4)
        self._fh.write(data.tobytes())
        self.written += len(data)
        if data.size:
            self._min = min(self._min, float(data.min()))
            self._max = max(self._max, float(data.max()))
            self._sum += float(data.sum(dtype=np.float64))
            self._sumsq += float(np.square(data, dtype=np.float64).sum())

    def close(self) -> None:
        """Check the count, write the header statistics and move the file into place."""
        self._fh.close()
        if self.written != self.n_images:
            os.unlink(self._tmp)
            raise ValueError(f"{self.path}: {self.written} of {self.n_images} images written")
        count = self.n_images * self.box * self.box
        mean = self._sum / count
        with mrcfile.mmap(self._tmp, mode="r+") as m:
            m.header.dmin, m.header.dmax, m.header.dmean = self._min, self._max, mean
            m.header.rms = math.sqrt(max(self._sumsq / count - mean * mean, 0.0))
        os.replace(self._tmp, self.path)


class _SplatProjector:
    """Projects a Gaussian model (from atoms or a saved model) by splatting (``cryosplat.imaging``)."""

    def __init__(self, model: GaussianModel, backend: str, device: str) -> None:
        self.model = model.to(device)
        self.box, self.pixel_size_angstrom = model.box, model.pixel_size_angstrom
        self.backend, self.device = backend, torch.device(device)
        self.method = f"Gaussian splatting ({len(model)} Gaussians, backend {backend})"

    def truth(self) -> np.ndarray:
        with torch.no_grad():
            return self.model.voxelize().cpu().numpy()

    def images(self, rotations: np.ndarray, shifts_angstrom: np.ndarray,
               ctf: torch.Tensor | None) -> np.ndarray:
        from cryosplat.imaging import predict_images

        with torch.no_grad():
            rot = torch.as_tensor(rotations, dtype=torch.float32, device=self.device)
            sh = torch.as_tensor(shifts_angstrom, dtype=torch.float32, device=self.device)
            out = predict_images(self.model, rot, sh, ctf, backend=self.backend)
        return out.cpu().numpy()


class _MapProjector:
    """Projects a map by Fourier slices of its zero-padded transform (``cryosplat.fourier_slice``)."""

    def __init__(self, volume: np.ndarray, pixel_size_angstrom: float, device: str) -> None:
        self.volume = volume
        self.box, self.pixel_size_angstrom = volume.shape[0], pixel_size_angstrom
        self.device = torch.device(device)
        vol = torch.as_tensor(volume, dtype=torch.float32, device=self.device)
        self.volume_ft = volume_to_padded_ft(vol, FOURIER_PAD, pixel_size_angstrom,
                                             gridding_correction=True, half=True)
        self.method = (f"Fourier slices (trilinear with gridding correction, padding "
                       f"{FOURIER_PAD})")

    def truth(self) -> np.ndarray:
        return self.volume

    def images(self, rotations: np.ndarray, shifts_angstrom: np.ndarray,
               ctf: torch.Tensor | None) -> np.ndarray:
        rot = torch.as_tensor(rotations, dtype=torch.float32, device=self.device)
        spectra = extract_slices(self.volume_ft, rot, self.box, FOURIER_PAD)
        spectra = phase_shift_2d(spectra, torch.as_tensor(shifts_angstrom, device=self.device),
                                 self.pixel_size_angstrom)
        if ctf is not None:
            spectra = spectra * ctf
        return ifft2_centered(spectra).real.cpu().numpy()


def _model_projector(model: GaussianModel, config: SimulationConfig):
    if config.projection == "splat":
        return _SplatProjector(model, config.backend, config.device)
    with torch.no_grad():
        volume = model.voxelize().cpu().numpy()
    return _MapProjector(volume, model.pixel_size_angstrom, config.device)


def _load_projector(model_path: Path, config: SimulationConfig):
    suffix = model_path.suffix.lower()
    if not model_path.is_file():
        raise InputError(f"{model_path}: model file not found")
    if suffix in ATOM_SUFFIXES:
        if config.box is None or config.pixel_size_angstrom is None:
            raise InputError(f"{model_path}: an atomic model needs --box and --pixel-size")
        from cryosplat.atoms import model_from_atoms

        model = model_from_atoms(model_path, config.box, config.pixel_size_angstrom,
                                 bfactor_extra=config.bfactor_extra_angstrom2)
        return _model_projector(model, config)
    if suffix == ".npz":
        model = GaussianModel.load(model_path)
        model.box = config.box or model.box
        model.pixel_size_angstrom = config.pixel_size_angstrom or model.pixel_size_angstrom
        return _model_projector(model, config)
    if suffix in MAP_SUFFIXES:
        volume, voxel = read_map(model_path)
        if config.box is not None and config.box != volume.shape[0]:
            raise InputError(f"{model_path}: the map's box is {volume.shape[0]}, not {config.box}; "
                             "resample the map or leave out --box")
        pixel = config.pixel_size_angstrom or voxel
        if not pixel > 0:
            raise InputError(f"{model_path}: the map header has no voxel size; give --pixel-size")
        if not math.isclose(pixel, voxel, rel_tol=1e-3):
            log.warning("%s: using pixel size %.4f Å instead of the header's %.4f Å", model_path,
                        pixel, voxel)
        return _MapProjector(volume, pixel, config.device)
    raise InputError(f"{model_path}: unknown model type '{suffix}' (expected .pdb/.cif atoms, a "
                     ".npz Gaussian model or an .mrc/.map map)")


def _batches(n_particles: int, images_per_stack: int, batch_size: int):
    """Yield ``(stack, start, stop)`` so that no batch straddles two stacks."""
    for stack, first in enumerate(range(0, n_particles, images_per_stack)):
        last = min(n_particles, first + images_per_stack)
        for start in range(first, last, batch_size):
            yield stack, start, min(last, start + batch_size)


def simulate(
    model_path: str | Path,
    output_dir: str | Path,
    config: SimulationConfig,
    progress: Callable[[int, int], None] | None = None,
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

    Returns
    -------
    SimulationResult
    """
    config.validate()
    model_path, out = Path(model_path), Path(output_dir)
    projector = _load_projector(model_path, config)
    box, pixel = projector.box, projector.pixel_size_angstrom
    rng = np.random.default_rng(config.seed)
    meta = draw_metadata(config, rng)
    noise_rng = np.random.default_rng(rng.integers(2**63))
    out.mkdir(parents=True, exist_ok=True)
    truth_path = out / "truth.mrc"
    write_map(truth_path, projector.truth(), pixel)

    n = config.n_particles
    n_stacks = -(-n // config.images_per_stack)
    stack_paths = [out / f"particles_{k:03d}.mrcs" for k in range(n_stacks)]
    signal_variance, noise_sd, estimate_count = None, 0.0, 0
    writer: StreamingStackWriter | None = None
    for stack, start, stop in _batches(n, config.images_per_stack, config.batch_size):
        if writer is None or writer.path != stack_paths[stack]:
            if writer is not None:
                writer.close()
            count = min(n, (stack + 1) * config.images_per_stack) - stack * config.images_per_stack
            writer = StreamingStackWriter(stack_paths[stack], count, box, pixel)
        ctf = None
        if config.apply_ctf:
            ctf = ctf_from_params(meta.ctf.subset(slice(start, stop)), box, pixel,
                                  device=projector.device)
        clean = projector.images(meta.rotations[start:stop], meta.shifts_angstrom[start:stop], ctf)
        if signal_variance is None:
            signal_variance = float(clean.var(axis=(1, 2), dtype=np.float64).mean())
            estimate_count = len(clean)
            if not signal_variance > 0:
                raise InputError(f"{model_path}: the model projects to blank images in a "
                                 f"{box}-pixel box of {pixel} Å")
            noise_sd = math.sqrt(signal_variance / config.snr) if math.isfinite(config.snr) else 0.0
            log.info("signal variance %.4g (from %d clean images), SNR %g: noise s.d. %.4g",
                     signal_variance, estimate_count, config.snr, noise_sd)
        if noise_sd:
            clean += noise_sd * noise_rng.standard_normal(clean.shape, dtype=np.float32)
        writer.write(clean)
        if progress is not None:
            progress(stop, n)
    writer.close()

    in_stack = np.arange(n) % config.images_per_stack + 1
    names = [f"{i:06d}@{stack_paths[s].name}"
             for i, s in zip(in_stack, np.arange(n) // config.images_per_stack, strict=True)]
    star_path = out / "particles.star"
    write_relion31_particles(star_path, image_names=names, rotations=meta.rotations,
                             shifts_angstrom=meta.shifts_angstrom, ctf=meta.ctf,
                             pixel_size_angstrom=pixel, box=box, random_subset=meta.random_subset)
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    record.update(model=str(model_path), box=box, pixel_size_angstrom=pixel,
                  projection=projector.method, signal_variance=signal_variance,
                  signal_variance_images=estimate_count, noise_sd=noise_sd,
                  snr_definition="variance of the clean CTF-modulated images over the box / noise "
                                 "variance")
    (out / "simulation.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    return SimulationResult(out, star_path, stack_paths, truth_path, n, box, pixel,
                            signal_variance, noise_sd, meta)
