"""The options that choose which particles a command reads (``--class``, ``--ind``), shared by
``info`` and ``reconstruct``; the choosing itself is :mod:`cryosplat.particles.selection`."""

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


def apply_selection(particles: ParticleSet, args: argparse.Namespace) -> ParticleSet:
    """The particles ``--ind`` and ``--class`` choose (all when neither is given)."""
    from cryosplat.particles.selection import select_particles

    return select_particles(particles, classes=args.classes, index_file=args.ind)
