"""The output options of the commands that make one pass over a finished run's particles and go
on where an interrupted pass stopped (``score``, ``refine-defocus``, ``refine-poses``): the folder,
the device, the progress bar and ``--overwrite``."""

from __future__ import annotations

import argparse
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
