"""The options that say which particles a command reads: the file and how to read it (shared by
``reconstruct`` and ``score``) and which of its rows (``--class``, ``--ind``, ``--optics-group``,
also ``info``'s);
the choosing itself is :mod:`cryosplat.particles.selection`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryosplat.particles.particle_set import ParticleSet


def _class_numbers(text: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected class numbers separated by commas (e.g. 2 or 1,3), got {text!r}"
        ) from None
    if not numbers:
        raise argparse.ArgumentTypeError(f"expected at least one class number, got {text!r}")
    return numbers


def add_selection_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--class",
        dest="classes",
        type=_class_numbers,
        metavar="N[,M...]",
        help="only the particles of these 3D classes, numbered as the file numbers them "
        "(rlnClassNumber from 1, cryoSPARC's alignments3D/class from 0), as relion_reconstruct "
        "--class",
    )
    p.add_argument(
        "--ind",
        type=Path,
        metavar="FILE",
        help="only the particles at these 0-based rows of the file: cryoDRGN's ind.pkl, an .npy "
        "array, or a text list (taken before --class)",
    )
    p.add_argument(
        "--optics-group",
        dest="optics_groups",
        type=lambda text: tuple(t.strip() for t in text.split(",") if t.strip()),
        metavar="NAME[,NAME...]",
        help="only the particles of these optics groups (rlnOpticsGroupName): one source of a "
        "merged set a warning names, or the others",
    )


def apply_selection(particles: ParticleSet, args: argparse.Namespace) -> ParticleSet:
    """The particles ``--ind``, ``--class`` and ``--optics-group`` choose (all when none is
    given)."""
    from cryosplat.particles.selection import select_particles

    return select_particles(
        particles, classes=args.classes, index_file=args.ind, optics_groups=args.optics_groups
    )


def add_file_arguments(p: argparse.ArgumentParser) -> None:
    """The particle file, how to read it and which of its particles (``--class``, ``--ind``)."""
    p.add_argument("particles", help="RELION .star, cryoSPARC .cs, or .mrcs with --poses/--ctf")
    p.add_argument("--datadir", help="folder to resolve image stack names against")
    p.add_argument("--poses", help="cryoDRGN poses.pkl (with an .mrcs stack)")
    p.add_argument("--ctf", help="cryoDRGN ctf.pkl (with an .mrcs stack)")
    add_selection_arguments(p)


def add_reading_arguments(p: argparse.ArgumentParser) -> None:
    """:func:`add_file_arguments`, a pixel size over the metadata's (``--angpix``) and how much
    each particle counts (``--weights``)."""
    add_file_arguments(p)
    p.add_argument(
        "--angpix",
        type=float,
        help="pixel size (Å) of every particle, overriding a wrong one in the metadata "
        "(shifts keep their size in pixels)",
    )
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="how much each particle counts: an .npy array indexed by the file's 0-based rows, "
        "as cryosplat score's weights.npy (1 minus each image's chance of being junk); "
        "default: all alike",
    )


def read_chosen_particles(args: argparse.Namespace) -> ParticleSet:
    """The particles :func:`add_reading_arguments`'s options name, read and chosen."""
    from cryosplat.particles.read import read_particles
    from cryosplat.particles.weights import with_weights

    particles = read_particles(args.particles, datadir=args.datadir, poses=args.poses, ctf=args.ctf)
    if args.angpix is not None:
        particles = particles.with_pixel_size(args.angpix)
    return with_weights(apply_selection(particles, args), args.weights)
