"""``cryosplat amend PARTICLES -o OUT --poses-as READING --astigmatism-as SLIP --ctf-state-as
STATE``: the metadata written again the way a check found the images fit better
(:mod:`cryosplat.reconstruct.amend`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryosplat.cli.particle_choice import add_file_arguments, apply_selection

HELP = (
    "write the metadata again read the way cryosplat info's checks found the images fit better: "
    "the poses as one of the pose check's readings (e.g. shifts-negated), the astigmatism with "
    "one of its slips undone (e.g. defocus-u-and-v-swapped), the images' CTF state (e.g. "
    "phase-flipped); every other value as written"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_file_arguments(p)
    p.add_argument(
        "--poses-as",
        metavar="READING",
        help="read the poses so: a reading of the pose check, named as its warning names it "
        "(shifts-negated, shifts-x-and-y-swapped, rotations-inverted, rot-and-psi-swapped, "
        "y-axis-flipped for images mirrored in y, shifts-halved, ...; a name it does not know "
        "lists them all)",
    )
    p.add_argument(
        "--astigmatism-as",
        metavar="SLIP",
        help="undo this slip of the astigmatism, named as the astigmatism check's warning "
        "names it (astigmatism-angle-negated, defocus-u-and-v-swapped, "
        "angle-negated-and-u-and-v-swapped)",
    )
    p.add_argument(
        "--ctf-state-as",
        metavar="STATE",
        help="flag the images as holding their CTF so, as the CTF state check names it (raw, "
        "phase-flipped, ctf-premultiplied): a STAR file's rlnCtfDataArePhaseFlipped and "
        "rlnCtfDataAreCtfPremultiplied, per optics group in RELION 3.1's (choose whole groups)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="folder for amended.star (a STAR file), amended.cs (a cryoSPARC .cs) or cryoDRGN's "
        "poses.pkl and ctf.pkl",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the outputs if they exist")


def run(args: argparse.Namespace) -> int:
    from cryosplat.core.errors import InputError
    from cryosplat.particles.read import read_particles
    from cryosplat.reconstruct.amend import (
        Amendment,
        amend_metadata,
        amendment_notes,
    )

    amendment = Amendment(args.poses_as, args.astigmatism_as, args.ctf_state_as)
    amendment.validate()
    names = ("amended.star", "amended.cs", "poses.pkl", "ctf.pkl")
    there = [args.output / n for n in names if (args.output / n).exists()]
    if there and not args.overwrite:
        raise InputError(f"{there[0]} exists; --overwrite replaces it")
    particles = read_particles(args.particles, datadir=args.datadir, poses=args.poses, ctf=args.ctf)
    particles = apply_selection(particles, args)
    written = amend_metadata(particles, amendment, args.output, args.poses, args.ctf)
    print(f"amended: {amendment.describe()}, {len(particles)} particles of {args.particles}")
    for note in amendment_notes(particles, amendment):
        print(f"note: {note}")
    pickles = {p.stem: p for p in written if p.suffix == ".pkl"}
    if pickles or args.poses is not None:
        poses, ctf = pickles.get("poses", args.poses), pickles.get("ctf", args.ctf)
        again = f"cryosplat reconstruct {args.particles} --poses {poses} --ctf {ctf}"
    else:
        datadir = Path(args.datadir or Path(args.particles).resolve().parent)
        again = f"cryosplat reconstruct {written[0]} --datadir {datadir}"
    print(f"written: {', '.join(map(str, written))}; reconstruct again: {again} -o NEW_RUN")
    return 0
