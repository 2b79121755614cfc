"""``cryosplat reconstruct PARTICLES -o OUT``: half maps, map, FSC and Gaussian models."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from cryosplat.cli.helical_options import add_helical_arguments, helical_from_args
from cryosplat.cli.names import BACKENDS, DUST_SDS, ENGINES, SYMMETRY_HELP
from cryosplat.cli.particle_choice import add_reading_arguments, read_chosen_particles
from cryosplat.core.errors import InputError

if TYPE_CHECKING:
    from cryosplat.reconstruct.config import ReconstructConfig

HELP = "reconstruct a map from particles with known poses and CTF (two half-set Gaussian models)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    _add_input_and_run_arguments(p)
    add_helical_arguments(p)
    _add_grid_arguments(p)
    _add_splat_arguments(p)


def _add_input_and_run_arguments(p: argparse.ArgumentParser) -> None:
    add_reading_arguments(p)
    p.add_argument(
        "-o", "--output", required=True, help="output folder (new, or this run's with --resume)"
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="grid",
        help="grid: Fourier sufficient statistics, one pass over the particles (default); "
        "splat: the paper's per-image splatting loop",
    )
    p.add_argument(
        "--n-gaussians",
        type=int,
        help="Gaussians per half model (default: from the box, raised by the grid engine up to "
        "4.5× where the data hold more information; the log says so)",
    )
    p.add_argument(
        "--sym",
        default="C1",
        help=f"{SYMMETRY_HELP}; the half models hold one asymmetric unit (--n-gaussians / |G| "
        "Gaussians) and every particle counts once per operator (default C1)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="random seed (halves, initialisation, order)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="on a GPU, deterministic scatter sums: the same run twice gives the same map "
        "(without it, two GPU runs differ as much as rounding makes a fit differ; the CPU path "
        "is always deterministic)",
    )
    p.add_argument(
        "--invert-contrast",
        action="store_true",
        help="images hold protein dark; RELION-extracted particles hold it bright "
        "(the default assumption)",
    )
    p.add_argument(
        "--dust-sds",
        type=float,
        default=DUST_SDS,
        metavar="K",
        help="replace single pixels more than K standard deviations of their image from both "
        "its mean and their neighbours' median (hot pixels, dust; as RELION's extraction does "
        f"with --white_dust/--black_dust K) by that median (default {DUST_SDS:g}; 0 keeps every "
        "pixel)",
    )
    p.add_argument(
        "--ignore-random-subset",
        action="store_true",
        help="split halves at random even when rlnRandomSubset is present",
    )
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    again.add_argument(
        "--restart",
        action="store_true",
        help="discard an unfinished, failed or different run in OUT and start again "
        "(never a complete one)",
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="discard any run in OUT, a complete one too, and start again",
    )
    p.add_argument(
        "--accept-warnings",
        action="store_true",
        help="run despite suspicious metadata (duplicated images, one random subset, large "
        "shifts, all defocus 0) or a failed data check (poses that fit a converter's slip "
        "better, a point group the data do not hold) that otherwise stops the run",
    )
    p.add_argument(
        "--pose-check",
        choices=("auto", "on", "off"),
        default="auto",
        help="check the poses against a converter's slips (shifts negated, x and y swapped, "
        "rotations inverted, Euler angles rot and psi swapped, images mirrored in x or y, shifts "
        "twice too large), and whether the images are raw, phase-flipped or CTF-premultiplied as "
        "the metadata say, on 3,000 images before the run; a clear slip stops it (auto: where it "
        "costs a tenth of the statistics pass or less: particles × box² ≥ 9.0e8, e.g. 90,000 of "
        "box 100 or 13,700 of box 256)",
    )
    p.add_argument(
        "--drop-bad-images",
        action="store_true",
        help="leave out particles whose image holds NaN, infinite or absurd pixels (logged) "
        "instead of stopping",
    )
    p.add_argument(
        "--image-weights",
        choices=("on", "off"),
        help="weigh each image by the inverse of its noise variance, read in its corners, where "
        "the images' noise levels differ, and leave out images whose background holds structure "
        "far beyond their noise (a support film's edge); default on (normalised particles are "
        "weighed alike)",
    )
    p.add_argument(
        "--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's, one per core)"
    )
    p.add_argument(
        "--local-weight-sigma",
        type=float,
        metavar="PX",
        help="map.mrc is the mean of the half maps times their local Wiener weight (what the "
        "halves share against where they differ, averaged over a Gaussian of PX voxels; "
        "local_weight.mrc); 0: the plain mean (default: a third of the fit's cross-validated "
        "resolution in voxels, at least 1.5)",
    )
    p.add_argument(
        "--mask",
        metavar="MRC",
        help="a soft mask (0 outside the molecule, 1 inside; e.g. the refinement's) the "
        "resolution is read within, as relion_postprocess reads it: on the map's grid or the "
        "particles' box and pixel size (default: the soft sphere, or the automatic mask where "
        "the data stop early in it; fsc.json keeps the sphere's reading beside)",
    )
    p.add_argument(
        "--no-data-blend",
        action="store_true",
        help="map.mrc from the half models alone; by default each half map is corrected, "
        "frequency shell by shell, by its own half set's direct inversion where that holds more "
        "(fsc.json: the model's weight per shell)",
    )
    p.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep checkpoints/ once the run is complete (by default removed then; kept, "
        "--resume makes the outputs again from them in seconds, e.g. with --mask; the Fourier "
        "statistics take 1.6 GB at box 256)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_grid_arguments(p: argparse.ArgumentParser) -> None:
    # Engine options default to None: the engine's own default is filled in by build_config, and
    # an option given to the other engine is refused there (the parser imports no torch).
    g = p.add_argument_group("Fourier-statistics engine (--engine grid)")
    g.add_argument("--pad", type=int, help="padding factor of the 3D grid (default 2)")
    g.add_argument(
        "--max-resolution",
        type=float,
        help="gather frequencies up to this (Å); the images are Fourier-cropped to the box it "
        "needs (maps written at that box, with its voxel size) unless --keep-box",
    )
    m = p.add_argument_group("memory")
    m.add_argument(
        "--max-memory",
        type=float,
        help="bound on the predicted peak memory, GB (10^9 bytes); default 80%% of the "
        "available memory. A run that cannot fit is refused before any work",
    )
    m.add_argument(
        "--downsample",
        type=int,
        metavar="BOX",
        help="Fourier-crop the images to this even box (pixel size × D/BOX)",
    )
    m.add_argument(
        "--keep-box",
        action="store_true",
        help="with --max-resolution, keep the images' box (no Fourier crop; more memory)",
    )
    g.add_argument(
        "--stage-fractions",
        type=_floats,
        help="coarse-to-fine stage boxes as fractions of the box, comma-separated",
    )
    g.add_argument(
        "--stage-steps", type=_ints, help="largest number of steps of each stage, comma-separated"
    )
    g.add_argument(
        "--negative-fraction",
        type=float,
        help="part of the Gaussians holding negative density (halos, density below the solvent "
        "level; default 0.10)",
    )
    g.add_argument(
        "--signed-amplitudes",
        action="store_const",
        const=True,
        help="let every amplitude take either sign (instead of a negative population)",
    )
    g.add_argument(
        "--exclude-zero-frequency",
        action="store_const",
        const=True,
        help="leave the images' means (zero frequency) out of the loss",
    )
    g.add_argument(
        "--low-shell-weighting",
        choices=("on", "off"),
        help="lift the shells below the CTF's first maximum to its weight, so the map's envelope "
        "and negative halo are fitted early (default on)",
    )
    g.add_argument(
        "--noise-weighting",
        choices=("on", "off"),
        help="weight the loss by the inverse noise power per frequency shell, estimated from the "
        "data (default off)",
    )
    g.add_argument(
        "--prior-strength",
        type=float,
        help="strength of the per-shell prior on the map, set from the FSC of the half sets' "
        "direct inversions as RELION sets its tau2 (0: none; default 0.5)",
    )
    g.add_argument(
        "--density-control",
        type=float,
        metavar="FRACTION",
        help="before each stage after the first and every 20 steps within a stage, split this "
        "part of the positive Gaussians that hold the most mass and prune as many that hold the "
        "least (0: off; default 0.1)",
    )
    g.add_argument(
        "--members",
        type=int,
        metavar="K",
        help="fit each half set K times and take the mean as the half model (its Gaussians: K "
        "times as many): a finer map where the data are weak (default 1)",
    )
    g.add_argument(
        "--member-stages",
        type=int,
        metavar="N",
        help="with --members: the last N stages each member fits on its own, from one shared "
        "fit of the stages before them; as many as the stages: each member from its own random "
        "start (default 2)",
    )
    g.add_argument(
        "--stage-mean",
        type=int,
        metavar="N",
        help="each half map, at each frequency, the mean of the last N stages' fits whose grids "
        "hold it (default 3; 1: the last fit alone)",
    )
    g.add_argument(
        "--heldout-fraction",
        type=float,
        help="part of each half set held out (within the half) to stop each stage and keep its "
        "best step (default 0: every particle is fitted)",
    )


def _add_splat_arguments(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("per-image engine (--engine splat)")
    s.add_argument("--epochs", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr-means", type=float, help="Å per step")
    s.add_argument("--lr-scales", type=float)
    s.add_argument("--lr-rotations", type=float)
    s.add_argument("--lr-amplitudes", type=float)
    s.add_argument(
        "--backend",
        choices=BACKENDS,
        help="splatting implementation (fourier: approximate, fastest for large batches)",
    )
    s.add_argument(
        "--checkpoint-interval", type=float, help="seconds between mid-epoch checkpoints"
    )


GRID_OPTIONS = {
    "pad": "--pad",
    "max_resolution": "--max-resolution",
    "stage_fractions": "--stage-fractions",
    "stage_steps": "--stage-steps",
    "heldout_fraction": "--heldout-fraction",
    "members": "--members",
    "member_stages": "--member-stages",
    "stage_mean": "--stage-mean",
    "negative_fraction": "--negative-fraction",
    "signed_amplitudes": "--signed-amplitudes",
    "exclude_zero_frequency": "--exclude-zero-frequency",
    "noise_weighting": "--noise-weighting",
    "low_shell_weighting": "--low-shell-weighting",
    "prior_strength": "--prior-strength",
    "density_control": "--density-control",
}
SPLAT_OPTIONS = {
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr_means": "--lr-means",
    "lr_scales": "--lr-scales",
    "lr_rotations": "--lr-rotations",
    "lr_amplitudes": "--lr-amplitudes",
    "backend": "--backend",
    "checkpoint_interval": "--checkpoint-interval",
}


def check_engine_options(args: argparse.Namespace) -> None:
    """Raise :class:`InputError` for an option of the engine that was not chosen."""
    other = SPLAT_OPTIONS if args.engine == "grid" else GRID_OPTIONS
    owner = "splat" if args.engine == "grid" else "grid"
    given = [flag for name, flag in other.items() if getattr(args, name) is not None]
    if given:
        raise InputError(
            f"{', '.join(given)}: option(s) of --engine {owner}, which the chosen engine "
            f"({args.engine}) does not use; leave them out or pass --engine {owner}"
        )
    if args.member_stages is not None and (args.members or 1) < 2:
        raise InputError(
            f"--member-stages {args.member_stages} without --members 2 or more: with one member "
            "there is nothing to share; pass --members K or leave it out"
        )


def _given(value, default):
    return default if value is None else value


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got '{text}'"
        ) from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got '{text}'"
        ) from None


def build_config(args: argparse.Namespace) -> ReconstructConfig:
    """The :class:`~cryosplat.reconstruct.config.ReconstructConfig` of parsed arguments."""
    from cryosplat.reconstruct.config import ReconstructConfig
    from cryosplat.reconstruct.grid.engine_config import GridEngineConfig
    from cryosplat.reconstruct.grid.memory_plan import MemoryConfig
    from cryosplat.reconstruct.splat.engine import SplatEngineConfig

    check_engine_options(args)
    d = SplatEngineConfig()
    splat = SplatEngineConfig(
        epochs=_given(args.epochs, d.epochs),
        batch_size=_given(args.batch_size, d.batch_size),
        lr_means_angstrom=_given(args.lr_means, d.lr_means_angstrom),
        lr_scales=_given(args.lr_scales, d.lr_scales),
        lr_rotations=_given(args.lr_rotations, d.lr_rotations),
        lr_amplitudes=_given(args.lr_amplitudes, d.lr_amplitudes),
        backend=_given(args.backend, d.backend),
        checkpoint_interval_s=_given(args.checkpoint_interval, d.checkpoint_interval_s),
    )
    gdef = GridEngineConfig()
    grid = GridEngineConfig(
        accumulate=replace(
            gdef.accumulate,
            pad=_given(args.pad, gdef.accumulate.pad),
            max_resolution_angstrom=args.max_resolution,
            drop_bad_images=args.drop_bad_images,
        ),
        fit=replace(
            gdef.fit,
            stage_fractions=args.stage_fractions or gdef.fit.stage_fractions,
            stage_steps=args.stage_steps or gdef.fit.stage_steps,
            negative_fraction=_given(args.negative_fraction, gdef.fit.negative_fraction),
            signed_amplitudes=_given(args.signed_amplitudes, gdef.fit.signed_amplitudes),
            exclude_zero_frequency=_given(
                args.exclude_zero_frequency, gdef.fit.exclude_zero_frequency
            ),
            noise_weighting=gdef.fit.noise_weighting
            if args.noise_weighting is None
            else args.noise_weighting == "on",
            low_shell_weighting=gdef.fit.low_shell_weighting
            if args.low_shell_weighting is None
            else args.low_shell_weighting == "on",
            prior_strength=_given(args.prior_strength, gdef.fit.prior_strength),
            density_control_fraction=_given(
                args.density_control, gdef.fit.density_control_fraction
            ),
        ),
        heldout_fraction=_given(args.heldout_fraction, gdef.heldout_fraction),
        members=_given(args.members, gdef.members),
        member_stages=_given(args.member_stages, gdef.member_stages),
        stage_mean=_given(args.stage_mean, gdef.stage_mean),
        image_weights=gdef.image_weights
        if args.image_weights is None
        else args.image_weights == "on",
    )
    return ReconstructConfig(
        engine=args.engine,
        n_gaussians=args.n_gaussians,
        symmetry=args.sym,
        helical=helical_from_args(args),
        seed=args.seed,
        device=args.device,
        invert_contrast=args.invert_contrast,
        dust_sds=args.dust_sds,
        use_random_subset=not args.ignore_random_subset,
        local_weight_sigma_px=_given(
            args.local_weight_sigma, ReconstructConfig.local_weight_sigma_px
        ),
        blend_with_data=not args.no_data_blend,
        fsc_mask=None if args.mask is None else str(Path(args.mask).resolve()),
        pose_check=args.pose_check,
        keep_checkpoints=args.keep_checkpoints,
        deterministic=args.deterministic,
        splat=splat,
        grid=grid,
        memory=MemoryConfig(
            max_memory_bytes=None if args.max_memory is None else int(args.max_memory * 1e9),
            downsample_box=args.downsample,
            crop_to_resolution=not args.keep_box,
        ),
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from cryosplat.core.device import resolve_device
    from cryosplat.reconstruct import distributed
    from cryosplat.reconstruct.report import format_resolution
    from cryosplat.reconstruct.run import reconstruct

    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    config = build_config(args)
    particles = read_chosen_particles(args)
    dist = distributed.start(resolve_device(config.device))
    if not dist.is_main:  # under torchrun, rank 0 alone logs and reports
        logging.getLogger("cryosplat").setLevel(logging.WARNING)
    try:
        result = reconstruct(
            particles,
            args.output,
            config,
            resume=args.resume,
            show_progress=not args.no_progress,
            dist=dist,
            folder_mode="restart" if args.restart else "overwrite" if args.overwrite else None,
            accept_warnings=args.accept_warnings,
        )
    except BaseException:
        dist.stop(wait=False)
        raise
    dist.stop()
    if result is None:
        return 0
    resolution = format_resolution(result.resolution_angstrom)
    print(f"resolution: {resolution} ({result.summary['resolution_definition']})")
    print(f"outputs: {result.out_dir}")
    return 0
