"""``cryosplat reconstruct PARTICLES -o OUT``: half maps, map, FSC and Gaussian models."""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from cryosplat.data import ParticleSet
from cryosplat.errors import InputError
from cryosplat.grid_engine import GridEngineConfig
from cryosplat.reconstruct import ENGINES, ReconstructConfig, reconstruct
from cryosplat.render import BACKENDS
from cryosplat.splat_engine import SplatEngineConfig

HELP = "reconstruct a map from particles with known poses and CTF (two half-set Gaussian models)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("particles", help="RELION .star, cryoSPARC .cs, or .mrcs with --poses/--ctf")
    p.add_argument(
        "-o", "--out", required=True, help="output folder (new, or this run's with --resume)"
    )
    p.add_argument("--datadir", help="folder to resolve image stack names against")
    p.add_argument("--poses", help="cryoDRGN poses.pkl (with an .mrcs stack)")
    p.add_argument("--ctf", help="cryoDRGN ctf.pkl (with an .mrcs stack)")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="grid",
        help="grid: Fourier sufficient statistics, one pass over the particles (default); "
        "splat: the paper's per-image splatting loop",
    )
    p.add_argument(
        "--n-gaussians", type=int, help="Gaussians per half model (default: from the box)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="random seed (halves, initialisation, order)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument(
        "--invert-contrast",
        action="store_true",
        help="images hold protein dark; RELION-extracted particles hold it bright "
        "(the default assumption)",
    )
    p.add_argument(
        "--ignore-random-subset",
        action="store_true",
        help="split halves at random even when rlnRandomSubset is present",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    p.add_argument(
        "--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's, one per core)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("Fourier-statistics engine (--engine grid)")
    gd = GridEngineConfig()
    g.add_argument(
        "--pad", type=int, default=gd.accumulate.pad, help="padding factor of the 3D grid"
    )
    g.add_argument("--max-resolution", type=float, help="gather frequencies up to this (Å)")
    g.add_argument(
        "--stage-fractions",
        type=_floats,
        help=f"coarse-to-fine stage boxes as fractions of the box "
        f"(default {','.join(map(str, gd.fit.stage_fractions))})",
    )
    g.add_argument(
        "--stage-steps",
        type=_ints,
        help=f"largest number of steps of each stage "
        f"(default {','.join(map(str, gd.fit.stage_steps))})",
    )
    g.add_argument(
        "--negative-fraction",
        type=float,
        default=gd.fit.negative_fraction,
        help="part of the Gaussians holding negative density (halos, density below the solvent "
        f"level; default {gd.fit.negative_fraction})",
    )
    g.add_argument(
        "--signed-amplitudes",
        action="store_true",
        help="let every amplitude take either sign (instead of a negative population)",
    )
    g.add_argument(
        "--exclude-zero-frequency",
        action="store_true",
        help="leave the images' means (zero frequency) out of the loss",
    )
    g.add_argument(
        "--noise-weighting",
        choices=("on", "off"),
        default="on" if gd.fit.noise_weighting else "off",
        help="weight the loss by the inverse noise power per frequency shell, estimated from the "
        f"data (default {'on' if gd.fit.noise_weighting else 'off'})",
    )
    g.add_argument(
        "--heldout-fraction",
        type=float,
        default=gd.heldout_fraction,
        help="part of each half set held out (within the half) to stop each stage",
    )
    s = p.add_argument_group("per-image engine (--engine splat)")
    d = SplatEngineConfig()
    s.add_argument("--epochs", type=int, default=d.epochs)
    s.add_argument("--batch-size", type=int, default=d.batch_size)
    s.add_argument("--lr-means", type=float, default=d.lr_means_angstrom, help="Å per step")
    s.add_argument("--lr-scales", type=float, default=d.lr_scales)
    s.add_argument("--lr-rotations", type=float, default=d.lr_rotations)
    s.add_argument("--lr-amplitudes", type=float, default=d.lr_amplitudes)
    s.add_argument(
        "--backend",
        default=d.backend,
        choices=BACKENDS,
        help="splatting implementation (fourier: approximate, fastest for large batches)",
    )
    s.add_argument(
        "--checkpoint-interval",
        type=float,
        default=d.checkpoint_interval_s,
        help="seconds between mid-epoch checkpoints",
    )


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
    splat = SplatEngineConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr_means_angstrom=args.lr_means,
        lr_scales=args.lr_scales,
        lr_rotations=args.lr_rotations,
        lr_amplitudes=args.lr_amplitudes,
        backend=args.backend,
        checkpoint_interval_s=args.checkpoint_interval,
    )
    gdef = GridEngineConfig()
    grid = GridEngineConfig(
        accumulate=replace(
            gdef.accumulate, pad=args.pad, max_resolution_angstrom=args.max_resolution
        ),
        fit=replace(
            gdef.fit,
            stage_fractions=args.stage_fractions or gdef.fit.stage_fractions,
            stage_steps=args.stage_steps or gdef.fit.stage_steps,
            negative_fraction=args.negative_fraction,
            signed_amplitudes=args.signed_amplitudes,
            exclude_zero_frequency=args.exclude_zero_frequency,
            noise_weighting=args.noise_weighting == "on",
        ),
        heldout_fraction=args.heldout_fraction,
    )
    return ReconstructConfig(
        engine=args.engine,
        n_gaussians=args.n_gaussians,
        seed=args.seed,
        device=args.device,
        invert_contrast=args.invert_contrast,
        use_random_subset=not args.ignore_random_subset,
        splat=splat,
        grid=grid,
    )


def run(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    config = build_config(args)
    particles = ParticleSet.from_file(
        args.particles, datadir=args.datadir, poses=args.poses, ctf=args.ctf
    )
    result = reconstruct(
        particles, args.out, config, resume=args.resume, show_progress=not args.no_progress
    )
    print(
        f"resolution: {result.resolution_angstrom:.2f} Å ({result.summary['resolution_definition']})"
    )
    print(f"outputs: {result.out_dir}")
    return 0
