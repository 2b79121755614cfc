"""``cryosplat refine-defocus PARTICLES --run RUN -o OUT``: each particle's defocus read from its
image against its own half set's map, its own share in it taken out; the metadata written again
with the new values (:mod:`cryosplat.reconstruct.defocus_run`)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from cryosplat.cli.names import PASS_CHECKPOINTS
from cryosplat.cli.particle_choice import add_reading_arguments, read_chosen_particles
from cryosplat.cli.pass_options import (
    RUN_HELP,
    add_pass_output_arguments,
    check_metadata_written,
    check_pass_output,
    range_type,
    reconstruct_again,
)

HELP = (
    "read each particle's defocus from its image against its own half set's map of a finished "
    "run, its own share in it taken out (the recorded defocus misses the particle's height in "
    "the ice; where the micrographs are named, their particles read a micrograph's error "
    "together, and its astigmatism); write the metadata again with the new values, to "
    "reconstruct again"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_reading_arguments(p)
    p.add_argument("--run", type=Path, required=True, help=RUN_HELP)
    p.add_argument(
        "--range",
        type=range_type("a number of Å", zero_keeps=False),
        default=2000.0,
        help="offsets searched to ± this many Å (default 2000)",
    )
    p.add_argument(
        "--no-astigmatism",
        action="store_true",
        help="leave the astigmatism as recorded (by default, where the particles' micrographs "
        "are named, each micrograph's astigmatism is read from its particles)",
    )
    p.add_argument(
        "--astigmatism-range",
        type=range_type("a number of Å", zero_keeps=False),
        default=1000.0,
        help="moves of each micrograph's astigmatism searched to ± this many Å along each of its "
        "components (default 1000)",
    )
    add_pass_output_arguments(
        p,
        "defocus.csv, defocus.svg, defocus.json and the metadata with the new "
        "values (refined.star for a STAR file, refined.cs for a cryoSPARC .cs, ctf.pkl for "
        "cryoDRGN's)",
    )


def run(args: argparse.Namespace) -> int:
    from cryosplat.core.device import resolve_device
    from cryosplat.reconstruct.defocus_run import refine_defocus_run, write_refined_defocus

    out = check_pass_output(args, "defocus.csv", "offsets")
    check_metadata_written(args, "ctf", "defocus values")
    particles = read_chosen_particles(args)
    refined = refine_defocus_run(
        particles,
        args.run,
        range_angstrom=args.range,
        astigmatism=not args.no_astigmatism,
        astigmatism_range_angstrom=args.astigmatism_range,
        device=resolve_device(args.device),
        show_progress=not args.no_progress,
        checkpoints=args.output / PASS_CHECKPOINTS,
    )
    summary = write_refined_defocus(args.output, refined, ctf_pickle=args.ctf)
    shutil.rmtree(args.output / PASS_CHECKPOINTS, ignore_errors=True)
    print(refined.fit.describe())
    if refined.astigmatism is not None:
        print(refined.astigmatism.describe())
    elif not args.no_astigmatism:
        print(
            "astigmatism not read: the particles' micrographs are not recorded (RELION's "
            "rlnMicrographName, cryoSPARC's location/micrograph_uid), and one image says too "
            "little of it alone"
        )
    metadata = Path(summary["refined_metadata"])
    again = reconstruct_again(args, metadata, "ctf")
    plots = [args.output / name for name in ("defocus.svg", "astigmatism.svg")]
    shown = " and ".join(str(path) for path in plots if path.exists())
    print(
        f"new defocus values: {metadata} (its image names as in {args.particles}); per "
        f"particle: {out}; histograms: {shown}; reconstruct again: {again} -o NEW_RUN"
    )
    return 0
