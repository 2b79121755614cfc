"""Benchmark data sets made with RELION's own projector, cached under ``bench_out/datasets``.

Each data set is made as a RELION user with a known structure would make it, so that cryosplat's
simulator cannot hide a convention error of cryosplat's reconstructor:

1. the ground-truth map (``bench_truths``): a real map as it is, or the atomic model as
   cryosplat's Gaussian atom model (``cryosplat.model.atoms.model_from_atoms``) voxelised, as it
   is or made to look like a real map;
2. views, shifts, CTF and half-set labels drawn by ``cryosplat.simulate.simulation.draw_metadata`` and written
   as a RELION 3.1 STAR without image names (``in.star``);
3. ``relion_project --i truth.mrc --ang in.star --o proj --ctf``: clean CTF-modulated projections;
4. Gaussian noise for the requested SNR (signal variance of all clean images over the box /
   noise variance), white or coloured, with the spec's other noise models (``bench_noise``),
   written as ``particles.mrcs`` with ``particles.star`` naming its images.

The ``acceptance`` data set is instead made by ``cryosplat simulate`` itself (splatted atoms), to
check that RELION reconstructs our simulator's output.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
from bench_ctf_errors import one_defocus_per_micrograph, recorded_astigmatism, recorded_defocus
from bench_flexibility import MovingPart, project_moving_part
from bench_heterogeneity import MissingPart, project_two_states
from bench_micelle import Micelle
from bench_neighbours import add_neighbours
from bench_noise import BATCH, NOISE_SOURCE, SHARED, NoiseModel, add_noise
from bench_pose_errors import recorded_poses
from bench_truths import write_truth

from cryosplat.core.ctf import CTFParams
from cryosplat.io.mrc import MRCStack
from cryosplat.io.star import write_relion31_particles
from cryosplat.simulate.simulation import SimulationConfig, draw_metadata, simulate
from cryosplat.simulate.views import PreferredViews


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark data set.

    Attributes
    ----------
    name : str
        Folder name under the data set root.
    model : str
        Atomic model (or, for a real-map truth, an MRC map) relative to ``shared/data``.
    box, pixel_size_angstrom, n_particles, snr : the images
    shift_sd_angstrom : float
        Standard deviation of the RELION origins (Å).
    defocus_min_um, defocus_max_um : float
        Uniform defocus range, unless ``ctf_table`` is set.
    ctf_table : str or None
        cryoDRGN ctf.pkl (relative to ``shared/data``) whose defocus rows are sampled.
    voltage_kv, cs_mm, amplitude_contrast : float
    astigmatism_max_angstrom : float
        Largest ``|U - V|`` (Å), random angle.
    seed : int
    simulator : str
        ``"relion_project"`` (steps 1-4 above) or ``"cryosplat"`` (``cryosplat.simulate.simulation``).
    views : str or None
        Particle file (relative to ``shared/data``) whose poses are sampled as the views (a real
        view distribution); None: uniform on SO(3), or ``preferred_views``.
    preferred_views : (fraction, degrees), a tuple of cones, or None
        Preferred orientation instead (:class:`cryosplat.simulate.views.PreferredViews`): that
        share of the views within that many degrees of the truth's z axis, the rest uniform; or
        several cones, each ``(fraction, degrees)`` about z or ``(fraction, degrees, tilt,
        rot)`` about the view of those RELION angles (:func:`preferred_cones`).
    center_angstrom : (x, y, z) or None
        Model point (file coordinates, Å) put at the box centre; None: its centre of mass. For a
        symmetric truth, the point where its symmetry axes cross. For a map, the point of the
        map put at the centre of a larger box (``bench_truths.placed_in_box``: the molecule off
        the box's centre); None: the map as it is.
    symmetry : str
        Point group of the truth in RELION's orientation (``C1``: none); the symmetric methods
        run with it.
    noise : str
        ``"white"`` or ``"coloured"``: the radial noise power spectrum of real particle images
        (:func:`coloured_noise_profile`), same total variance.
    noise_source : str
        Particle stack (relative to ``shared/data``) whose spectrum colours the noise.
    real_looking_bfactor : float or None
        With an atomic model: the truth made to look like a real map (``bench_truths``), the
        atoms blurred by this many Å², with a negative halo and noisy solvent (seeded by
        ``seed``); None: the atoms as they are.
    real_looking_mean_zero : bool
        The real-looking truth normalised to mean zero over the box (solvent below zero).
    noise_sd_spread : float
        Images whose noise level differs, as ice of differing thickness gives: each image's
        noise s.d. is multiplied by ``exp(spread·z − spread²)`` (``z`` standard normal, one per
        image, drawn apart from the noise), which keeps the mean noise variance; 0: one level.
    neighbours : float
        Share of the images that hold part of a neighbouring particle
        (:func:`bench_neighbours.add_neighbours`: the truth in another view of the set's, with the
        image's CTF, 0.55-0.8 box edges from the centre, cut at the box); 0: none. The SNR is
        the particle's alone.
    ctf_bfactor_angstrom2 : (low, high)
        The images' envelope B-factor (Å², RELION's ``exp(-B k²/4)`` on the CTF, which
        ``relion_project`` applies from ``rlnCtfBfactor``), drawn uniformly per image, as the
        signal of real micrographs decays; (0, 0): none.
    ctf_bfactor_recorded : bool
        Whether ``particles.star`` carries the images' B-factors (True), or the methods are
        given none, as most real STAR files hold none though their images decay.
    tandem : (copies, spacing)
        With a map: an elongated truth, the map's central part ``copies`` times in a row along
        x, ``spacing`` voxels apart (``bench_truths.tandem_map``); (1, 0): the map as it is.
    pose_error_degrees, shift_error_angstrom : float
        Poses recorded with errors (:func:`bench_pose_errors.recorded_poses`): the images are
        projected with the true views and shifts, ``particles.star`` holds each view turned by
        a random rotation of this root-mean-square angle and each shift moved by a normal error
        of this s.d. per axis (Å), as a refinement leaves them; 0: the poses as projected.
    micelle : bench_micelle.Micelle or None
        With an atomic model: a detergent belt round its transmembrane part, as a membrane
        protein is imaged in (``bench_micelle``; needs ``center_angstrom``); None: none.
    missing_part : bench_heterogeneity.MissingPart or None
        A part of the truth held by only some particles (``bench_heterogeneity``: two states
        projected, the truth their occupancy-weighted mean); None: one state.
    moving_part : bench_flexibility.MovingPart or None
        A part of the truth turned about a hinge by an angle that differs by particle
        (``bench_flexibility``: its states projected, the truth their mean); None: rigid. Not
        with ``missing_part``.
    defocus_error_angstrom : float
        Defocus recorded with errors (:func:`bench_ctf_errors.recorded_defocus`): the images are
        made with the true CTF, ``particles.star`` holds each particle's defocus moved by a
        normal error of this s.d. (Å); 0: the defocus as imaged.
    particles_per_micrograph : int
        Where positive, ``particles.star`` names a micrograph (``rlnMicrographName``) per this
        many particles in order; 0: none named.
    micrograph_defocus_error_angstrom : float
        An error of this s.d. (Å) shared by each micrograph's particles, added to their own
        (``defocus_error_angstrom``), as a per-micrograph estimate errs; needs
        ``particles_per_micrograph``.
    micrograph_heights_angstrom : float
        Where positive (with ``particles_per_micrograph``): a micrograph's particles imaged at
        one defocus (its first particle's) plus each one's height in the ice, a normal of this
        s.d. (Å), and ``particles.star`` records the micrograph's defocus (plus its shared
        error), as one estimate per micrograph does
        (:func:`bench_ctf_errors.one_defocus_per_micrograph`); 0: each particle at its own.
    micrograph_astigmatism_error_angstrom : float
        Where positive (with ``particles_per_micrograph``): ``particles.star`` records each
        micrograph's astigmatism moved by a normal error of this s.d. (Å) along each of its
        components (:func:`bench_ctf_errors.recorded_astigmatism`); 0: as imaged.
    truth_bfactor_angstrom2 : float
        With a map: the truth filtered by this B-factor (Å², :func:`bench_truths.bfactor_filtered`)
        before it is projected; negative: sharpened to Nyquist, as a post-processed map is
        deposited (its own noise lifted with its detail); 0: the map as it is.
    background_ramp_sd : float
        Each image plus a linear ramp across it, as ice of varying thickness or a carbon edge
        leaves in extracted particles (:class:`bench_noise.BackgroundRamps`): its value at the
        box's edge normal with this s.d., in units of the noise's s.d.; 0: none.
    phase_shift_degrees : (low, high)
        A phase plate's shift of the CTF's phase (degrees, RELION's ``rlnPhaseShift``), drawn
        uniformly per image and recorded in the STAR, as a Volta phase plate's shift grows with
        its use; (0, 0): no phase plate.
    noise_anisotropy : float
        In [0, 1): the noise power at frequency direction ``θ`` (from the images' x axis) times
        ``1 + noise_anisotropy·cos 2θ``, the same for every image, as a detector's rows and
        columns or a residual drift leave noise fixed in the micrograph's frame
        (:class:`bench_noise.NoiseModel`); 0: the same in every direction.
    hot_pixels : (fraction, sd)
        That share of each image's pixels plus a normal value of ``sd`` noise s.d.s, as a
        detector's defects and dust leave where the extraction removed none; (0, 0): none.
    carbon_edges : (fraction, step)
        That share of the images hold a support film's edge, the film adding ``step`` noise
        s.d.s and its own texture (:class:`bench_noise.CarbonEdges`); (0, 0): none.
    ice_blobs : (fraction, step)
        That share of the images hold part of a round blob of contamination beside the
        molecule, adding up to ``step`` noise s.d.s at its thickest and its own texture
        (:class:`bench_noise.IceBlobs`); (0, 0): none.
    micrograph_edges : (fraction, depth)
        That share of the images cross a micrograph's edge by up to ``depth`` of the box, the
        pixels past it filled as ``relion_preprocess`` fills them
        (:class:`bench_noise.MicrographEdges`); (0, 0): none.
    """

    name: str
    model: str
    box: int
    pixel_size_angstrom: float
    n_particles: int
    snr: float
    shift_sd_angstrom: float = 3.0
    defocus_min_um: float = 0.8
    defocus_max_um: float = 2.5
    ctf_table: str | None = None
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    astigmatism_max_angstrom: float = 0.0
    seed: int = 0
    simulator: str = "relion_project"
    views: str | None = None
    preferred_views: tuple[float, float] | tuple[tuple[float, ...], ...] | None = None
    center_angstrom: tuple[float, float, float] | None = None
    symmetry: str = "C1"
    noise: str = "white"
    noise_source: str = NOISE_SOURCE
    real_looking_bfactor: float | None = None
    real_looking_mean_zero: bool = False
    noise_sd_spread: float = 0.0
    neighbours: float = 0.0
    ctf_bfactor_angstrom2: tuple[float, float] = (0.0, 0.0)
    ctf_bfactor_recorded: bool = True
    tandem: tuple[int, int] = (1, 0)
    pose_error_degrees: float = 0.0
    shift_error_angstrom: float = 0.0
    micelle: Micelle | None = None
    missing_part: MissingPart | None = None
    moving_part: MovingPart | None = None
    defocus_error_angstrom: float = 0.0
    particles_per_micrograph: int = 0
    micrograph_defocus_error_angstrom: float = 0.0
    micrograph_heights_angstrom: float = 0.0
    micrograph_astigmatism_error_angstrom: float = 0.0
    truth_bfactor_angstrom2: float = 0.0
    background_ramp_sd: float = 0.0
    phase_shift_degrees: tuple[float, float] = (0.0, 0.0)
    noise_anisotropy: float = 0.0
    hot_pixels: tuple[float, float] = (0.0, 0.0)
    carbon_edges: tuple[float, float] = (0.0, 0.0)
    ice_blobs: tuple[float, float] = (0.0, 0.0)
    micrograph_edges: tuple[float, float] = (0.0, 0.0)

    def noise_model(self) -> NoiseModel:
        """The noise settings as :func:`bench_noise.add_noise` takes them."""
        return NoiseModel(
            self.noise,
            self.noise_source,
            self.noise_sd_spread,
            self.background_ramp_sd,
            self.noise_anisotropy,
            self.hot_pixels,
            self.carbon_edges,
            self.ice_blobs,
            self.micrograph_edges,
        )


@dataclass
class Dataset:
    """A made data set: ``particles.star`` (images ``particles.mrcs``) and ``truth.mrc``."""

    spec: DatasetSpec
    folder: Path
    star: Path
    truth: Path
    signal_variance: float
    noise_sd: float


def _run(cmd: list[str], cwd: Path, log_name: str) -> None:
    with open(cwd / log_name, "w") as log:
        done = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}); see {cwd / log_name}")


def _signal_variance(stack: MRCStack) -> float:
    """Mean over images of the pixel variance over the box."""
    total = 0.0
    for start in range(0, stack.n_images, BATCH):
        images = stack.read(np.arange(start, min(stack.n_images, start + BATCH)))
        total += float(images.var(axis=(1, 2), dtype=np.float64).sum())
    return total / stack.n_images


def preferred_cones(spec: DatasetSpec) -> tuple[PreferredViews, ...] | None:
    """The spec's preferred views as cones: one ``(fraction, degrees)`` pair or a tuple of
    ``(fraction, degrees[, tilt, rot])`` cones."""
    pref = spec.preferred_views
    if pref is None:
        return None
    if isinstance(pref[0], (int, float)):
        return (PreferredViews(*pref),)
    return tuple(PreferredViews(*cone) for cone in pref)


def _config(spec: DatasetSpec) -> SimulationConfig:
    return SimulationConfig(
        n_particles=spec.n_particles,
        box=spec.box,
        pixel_size_angstrom=spec.pixel_size_angstrom,
        snr=spec.snr,
        seed=spec.seed,
        shift_sd_angstrom=spec.shift_sd_angstrom,
        defocus_min_um=spec.defocus_min_um,
        defocus_max_um=spec.defocus_max_um,
        astigmatism_max_angstrom=spec.astigmatism_max_angstrom,
        ctf_table=None if spec.ctf_table is None else SHARED / spec.ctf_table,
        views=None if spec.views is None else SHARED / spec.views,
        preferred_views=preferred_cones(spec),
        voltage_kv=spec.voltage_kv,
        cs_mm=spec.cs_mm,
        amplitude_contrast=spec.amplitude_contrast,
    )


def _write_truth(spec: DatasetSpec, path: Path) -> None:
    """The ground truth (:func:`bench_truths.write_truth`)."""
    write_truth(
        SHARED / spec.model,
        path,
        spec.box,
        spec.pixel_size_angstrom,
        spec.center_angstrom,
        spec.real_looking_bfactor,
        spec.seed,
        spec.real_looking_mean_zero,
        spec.tandem,
        spec.micelle,
        spec.truth_bfactor_angstrom2,
    )


def _with_bfactors(ctf: CTFParams, spec: DatasetSpec) -> CTFParams:
    """``ctf`` with the spec's envelope B-factors, one per image, drawn from their own stream
    (the rest of the metadata is the same with or without them)."""
    low, high = spec.ctf_bfactor_angstrom2
    if high <= 0:
        return ctf
    rng = np.random.default_rng([spec.seed, 47])
    return replace(ctf, bfactor_angstrom2=rng.uniform(low, high, size=len(ctf)))


def _with_phase_shifts(ctf: CTFParams, spec: DatasetSpec) -> CTFParams:
    """``ctf`` with the spec's phase-plate shifts, one per image, from their own stream."""
    low, high = spec.phase_shift_degrees
    if low == high == 0:
        return ctf
    rng = np.random.default_rng([spec.seed, 53])
    return replace(ctf, phase_shift_degrees=rng.uniform(low, high, size=len(ctf)))


def _relion_project_dataset(spec: DatasetSpec, folder: Path) -> tuple[float, float]:
    """Steps 1-4 of the module docstring; returns (signal variance, noise s.d.)."""
    _write_truth(spec, folder / "truth.mrc")
    meta = draw_metadata(_config(spec), np.random.default_rng(spec.seed))
    columns = dict(
        rotations=meta.rotations,
        shifts_angstrom=meta.shifts_angstrom,
        ctf=_with_phase_shifts(_with_bfactors(meta.ctf, spec), spec),
        pixel_size_angstrom=spec.pixel_size_angstrom,
        box=spec.box,
        random_subset=meta.random_subset,
    )
    micrographs, extra, estimated = None, None, None
    if spec.particles_per_micrograph > 0:
        micrographs = np.arange(spec.n_particles) // spec.particles_per_micrograph
        extra = {"rlnMicrographName": [f"mic{m:05d}.mrc" for m in micrographs]}
        if spec.micrograph_heights_angstrom:
            columns["ctf"], estimated = one_defocus_per_micrograph(
                columns["ctf"], micrographs, spec.micrograph_heights_angstrom, spec.seed
            )
    write_relion31_particles(folder / "in.star", image_names=None, **columns)
    if spec.missing_part is not None:
        project_two_states(folder, columns, spec.missing_part, spec.seed, _run)
    elif spec.moving_part is not None:
        project_moving_part(folder, columns, spec.moving_part, spec.seed, _run)
    else:
        _run(
            ["relion_project", "--i", "truth.mrc", "--ang", "in.star", "--o", "proj", "--ctf"],
            folder,
            "relion_project.log",
        )
    clean = MRCStack(folder / "proj.mrcs")
    if clean.n_images != spec.n_particles:
        raise RuntimeError(f"relion_project wrote {clean.n_images} of {spec.n_particles} images")
    signal_variance = _signal_variance(clean)
    noise_sd = math.sqrt(signal_variance / spec.snr)
    if spec.neighbours:
        add_neighbours(folder, columns, spec.neighbours, spec.seed)
        clean = MRCStack(folder / "proj.mrcs")
    add_noise(
        clean,
        folder / "particles.mrcs",
        noise_sd,
        spec.pixel_size_angstrom,
        spec.seed,
        spec.noise_model(),
    )
    (folder / "proj.mrcs").unlink()
    names = [f"{i + 1:06d}@particles.mrcs" for i in range(spec.n_particles)]
    if not spec.ctf_bfactor_recorded:
        columns["ctf"] = meta.ctf
    if spec.pose_error_degrees or spec.shift_error_angstrom:
        columns["rotations"], columns["shifts_angstrom"] = recorded_poses(
            columns["rotations"],
            columns["shifts_angstrom"],
            spec.pose_error_degrees,
            spec.shift_error_angstrom,
            spec.seed,
        )
    if estimated is not None:
        columns["ctf"] = estimated
    columns["ctf"] = recorded_defocus(
        columns["ctf"],
        spec.defocus_error_angstrom,
        spec.seed,
        micrographs,
        spec.micrograph_defocus_error_angstrom,
    )
    if spec.micrograph_astigmatism_error_angstrom:
        columns["ctf"] = recorded_astigmatism(
            columns["ctf"], micrographs, spec.micrograph_astigmatism_error_angstrom, spec.seed
        )
    write_relion31_particles(
        folder / "particles.star", image_names=names, extra_columns=extra, **columns
    )
    return signal_variance, noise_sd


# Settings only the ``relion_project`` simulator applies.
RELION_PROJECT_ONLY = (
    "noise_sd_spread",
    "background_ramp_sd",
    "noise_anisotropy",
    "hot_pixels",
    "carbon_edges",
    "ice_blobs",
    "micrograph_edges",
    "neighbours",
    "ctf_bfactor_angstrom2",
    "phase_shift_degrees",
    "pose_error_degrees",
    "shift_error_angstrom",
    "missing_part",
    "moving_part",
    "defocus_error_angstrom",
    "particles_per_micrograph",
)


def _field_defaults() -> dict:
    """:class:`DatasetSpec`'s fields that have defaults, with them."""
    return {f.name: f.default for f in fields(DatasetSpec) if f.default is not MISSING}


def make_dataset(spec: DatasetSpec, root: Path, log=print) -> Dataset:
    """Make ``spec`` under ``root/spec.name`` unless a finished copy with the same spec is there."""
    folder = root / spec.name
    record = folder / "dataset.json"
    if record.is_file():
        saved = json.loads(record.read_text())
        # a record written before a field existed had its default (tuples as lists in JSON)
        defaults = json.loads(json.dumps(_field_defaults()))
        saved_spec = {**defaults, **saved.get("spec", {})}
        if saved_spec == json.loads(json.dumps(asdict(spec))):
            return Dataset(
                spec,
                folder,
                folder / "particles.star",
                folder / "truth.mrc",
                saved["signal_variance"],
                saved["noise_sd"],
            )
    if spec.missing_part is not None and spec.moving_part is not None:
        raise ValueError(f"{spec.name}: missing_part and moving_part cannot be combined")
    if spec.simulator == "relion_project" and shutil.which("relion_project") is None:
        raise RuntimeError("relion_project is not on PATH: cannot make benchmark data sets")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    log(
        f"[dataset] making {spec.name} with {spec.simulator}: {spec.n_particles} particles of "
        f"{spec.model}, box {spec.box}, {spec.pixel_size_angstrom} Å/px, SNR {spec.snr}"
    )
    if spec.simulator == "cryosplat":
        defaults = _field_defaults()
        needs_relion = [
            f"{name} {getattr(spec, name)}"
            for name in RELION_PROJECT_ONLY
            if getattr(spec, name) != defaults[name]
        ]
        if needs_relion:
            raise ValueError(
                f"{spec.name}: {', '.join(needs_relion)} need the relion_project simulator"
            )
    if spec.simulator == "cryosplat":
        result = simulate(SHARED / spec.model, folder, _config(spec))
        signal_variance, noise_sd = result.signal_variance, result.noise_sd
    else:
        signal_variance, noise_sd = _relion_project_dataset(spec, folder)
    record.write_text(
        json.dumps(
            {"spec": asdict(spec), "signal_variance": signal_variance, "noise_sd": noise_sd},
            indent=2,
        )
        + "\n"
    )
    return Dataset(
        spec, folder, folder / "particles.star", folder / "truth.mrc", signal_variance, noise_sd
    )
