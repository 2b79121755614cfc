"""The options of the commands that make one pass over a finished run's particles and go on where
an interrupted pass stopped (``score``, ``refine-defocus``, ``refine-poses``): the folder, the
device, the progress bar and ``--overwrite``; the ranges the two refinements search; where they
write the new metadata and how to reconstruct from it."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cryosplat.core.errors import InputError

RUN_HELP = (
    "the complete reconstruct run folder these particles made (same file, --ind, --class, "
    "--angpix and --weights)"
)


def add_pass_output_arguments(p: argparse.ArgumentParser, outputs: str) -> None:
    """``-o/--output`` (required; ``outputs``: what the folder receives, for its help),
    ``--device``, ``--no-progress`` and ``--overwrite``."""
    p.add_argument("-o", "--output", type=Path, required=True, help=f"folder for {outputs}")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs if they exist (an interrupted command run again with the same "
        "output folder goes on from where it stopped, with or without it)",
    )


def check_pass_output(args: argparse.Namespace, table: str, what: str) -> Path:
    """``args.output / table`` (the command's last output), checked: it may be replaced only with
    ``--overwrite``, and the folder is not the run's (``args.run``, where given); ``what`` names
    what the command writes, for the message."""
    out = args.output / table
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} exists; --overwrite replaces it")
    run = getattr(args, "run", None)
    if run is not None and args.output.resolve() == Path(run).resolve():
        raise InputError(f"{args.output} is the run's folder; write the {what} elsewhere")
    return out


def range_type(what: str, zero_keeps: bool):
    """An ``argparse`` type for a search range of ``what`` (e.g. "a number of Å"): a finite
    number, positive, or also 0 where ``zero_keeps`` (0 then searches nothing)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        least = "0 or more" if zero_keeps else "more than 0"
        if not (math.isfinite(value) and (value > 0 or (zero_keeps and value == 0))):
            raise argparse.ArgumentTypeError(f"the range must be {what}, {least}, got {text}")
        return value

    return parse


def check_metadata_written(args: argparse.Namespace, replaced: str, what: str) -> None:
    """The new values can be written: the particles come from a STAR or a cryoSPARC ``.cs``
    file, or the cryoDRGN pickle they replace was given (``--poses`` or ``--ctf``: ``replaced``
    is "poses" or "ctf"); ``what`` names the new values, for the message."""
    from cryosplat.particles.metadata_out import holds_metadata

    if holds_metadata(args.particles):
        return
    if getattr(args, replaced) is None:
        raise InputError(
            f"{args.particles}: the new {what} are written into a STAR file, a .cs file or "
            f"cryoDRGN's {replaced}.pkl (--{replaced})"
        )


def reconstruct_again(args: argparse.Namespace, metadata: Path, replaced: str) -> str:
    """The ``cryosplat reconstruct`` command that reads the new ``metadata``: the particles'
    metadata written again, or, where cryoDRGN's pickle of ``replaced`` ("poses" or "ctf") was
    given, the new pickle beside the other as given."""
    if getattr(args, replaced) is not None:
        poses = metadata if replaced == "poses" else args.poses
        ctf = metadata if replaced == "ctf" else args.ctf
        return f"cryosplat reconstruct {args.particles} --poses {poses} --ctf {ctf}"
    source = Path(args.datadir or Path(args.particles).resolve().parent)
    return f"cryosplat reconstruct {metadata} --datadir {source}"
