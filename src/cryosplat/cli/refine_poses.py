"""``cryosplat refine-poses PARTICLES --run RUN -o OUT``: each particle's pose read from its image
against its own half set's map; the metadata written again with the new angles and origins
(:mod:`cryosplat.reconstruct.pose_run`)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from cryosplat.cli.names import PASS_CHECKPOINTS, POSE_ANGLE_RANGE_DEGREES, POSE_SHIFT_RANGE_PX
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
    "read each particle's pose (a small turn and a shift) from its image against its own half "
    "set's map of a finished run, under a prior fitted to the set; write the metadata again "
    "with the new angles and origins, to reconstruct again"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_reading_arguments(p)
    p.add_argument("--run", type=Path, required=True, help=RUN_HELP)
    p.add_argument(
        "--angle-range",
        type=range_type("a number of degrees", zero_keeps=True),
        default=POSE_ANGLE_RANGE_DEGREES,
        help="turns searched up to this many degrees, about any axis (default "
        f"{POSE_ANGLE_RANGE_DEGREES:g}; 0 keeps the angles)",
    )
    p.add_argument(
        "--shift-range",
        type=range_type("a number of Å", zero_keeps=True),
        default=None,
        help="shift moves searched up to this many Å long (default "
        f"{POSE_SHIFT_RANGE_PX:g} pixels of the run's working box; 0 keeps the origins)",
    )
    add_pass_output_arguments(
        p,
        "poses.csv, poses.svg, poses.json and the metadata with the new poses (refined.star "
        "for a STAR file, refined.cs for a cryoSPARC .cs, poses.pkl for cryoDRGN's)",
    )


def run(args: argparse.Namespace) -> int:
    from cryosplat.core.device import resolve_device
    from cryosplat.core.errors import InputError
    from cryosplat.reconstruct.pose_run import refine_poses_run, write_refined_poses

    out = check_pass_output(args, "poses.csv", "poses")
    if args.angle_range == 0 and args.shift_range == 0:
        raise InputError("--angle-range 0 and --shift-range 0: nothing to refine")
    check_metadata_written(args, "poses", "poses")
    particles = read_chosen_particles(args)
    refined = refine_poses_run(
        particles,
        args.run,
        angle_range_degrees=args.angle_range,
        shift_range_angstrom=args.shift_range,
        device=resolve_device(args.device),
        show_progress=not args.no_progress,
        checkpoints=args.output / PASS_CHECKPOINTS,
    )
    summary = write_refined_poses(args.output, refined, poses_pickle=args.poses)
    shutil.rmtree(args.output / PASS_CHECKPOINTS, ignore_errors=True)
    print(refined.describe())
    metadata = Path(summary["refined_metadata"])
    again = reconstruct_again(args, metadata, "poses")
    print(
        f"new poses: {metadata} (its image names as in {args.particles}); per particle: {out}; "
        f"histogram: {args.output / 'poses.svg'}; reconstruct again: {again} -o NEW_RUN"
    )
    return 0
