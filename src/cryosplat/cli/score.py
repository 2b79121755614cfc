"""``cryosplat score PARTICLES --run RUN -o OUT``: each particle against the half map made
without it; ``--map MAP``: every particle against that map
(:mod:`cryosplat.reconstruct.score_run`)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from cryosplat.cli.names import DUST_SDS, PASS_CHECKPOINTS
from cryosplat.cli.particle_choice import add_reading_arguments, read_chosen_particles
from cryosplat.cli.pass_options import add_pass_output_arguments, check_pass_output

HELP = (
    "score each particle of a finished run against the half map made without it (or every "
    "particle against a given map); name the images that hold nothing the map predicts (empty "
    "ice, junk, wrong poses) and write the rows of the others for --ind"
)


def _positive_angstrom(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a resolution in Å, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"the resolution must be a positive number of Å, got {text}"
        )
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_reading_arguments(p)
    against = p.add_mutually_exclusive_group(required=True)
    against.add_argument(
        "--run",
        type=Path,
        help="the complete reconstruct run folder these particles made: each half set against "
        "the half map made without it",
    )
    against.add_argument(
        "--map",
        type=Path,
        help="or a map (.mrc) at the particles' box and pixel size (or a smaller box of the same "
        "extent) to score every particle against: best one made without them (another class's, "
        "another data set's); those that made it score high",
    )
    p.add_argument(
        "--resolution",
        type=_positive_angstrom,
        help="with --map: its resolution (Å); the shells are read to 1.25 times it (default: "
        "every shell)",
    )
    p.add_argument(
        "--invert-contrast",
        action="store_true",
        help="with --map: the images hold protein dark (as reconstruct --invert-contrast; a "
        "run records its own)",
    )
    p.add_argument(
        "--dust-sds",
        type=float,
        metavar="K",
        help=f"with --map: hot pixels replaced as reconstruct --dust-sds replaces them (default "
        f"{DUST_SDS:g}; 0 keeps every pixel; a run records its own)",
    )
    add_pass_output_arguments(
        p,
        "particle_scores.csv, kept.npy, kept.pkl (cryoDRGN's --ind), named.npy, "
        "weights.npy (reconstruct --weights), scores.svg, score.json and the kept particles' "
        "metadata (kept.star for a STAR file, kept.cs for a cryoSPARC .cs)",
    )


def run(args: argparse.Namespace) -> int:
    from cryosplat.core.device import resolve_device
    from cryosplat.core.errors import InputError
    from cryosplat.reconstruct.score_run import score_against_map, score_run, write_scores

    out = check_pass_output(args, "particle_scores.csv", "scores")
    if args.run is not None and (
        args.resolution is not None or args.invert_contrast or args.dust_sds is not None
    ):
        raise InputError(
            "--resolution, --invert-contrast and --dust-sds go with --map: a run records its own"
        )
    particles = read_chosen_particles(args)
    options = {
        "device": resolve_device(args.device),
        "show_progress": not args.no_progress,
        "checkpoints": args.output / PASS_CHECKPOINTS,
    }
    if args.run is not None:
        scored = score_run(particles, args.run, **options)
    else:
        scored = score_against_map(
            particles,
            args.map,
            resolution_angstrom=args.resolution,
            invert_contrast=args.invert_contrast,
            dust_sds=DUST_SDS if args.dust_sds is None else args.dust_sds,
            **options,
        )
    summary = write_scores(args.output, scored)
    shutil.rmtree(args.output / PASS_CHECKPOINTS, ignore_errors=True)
    print(scored.describe())
    print(
        f"kept: {summary['kept']:,} rows in {args.output / 'kept.npy'} (reconstruct again with "
        f"--ind {args.output / 'kept.npy'}, or weigh every particle by its chance of holding "
        f"the molecule with --weights {args.output / 'weights.npy'}); named: "
        f"{args.output / 'named.npy'}; per particle: {out}; histogram: "
        f"{args.output / 'scores.svg'}"
    )
    if summary["kept_metadata"]:
        print(
            f"kept particles' metadata: {summary['kept_metadata']} (their image names as in "
            f"{args.particles}: give cryosplat --datadir, or run RELION or cryoSPARC's tools "
            "from the project folder)"
        )
    return 0
