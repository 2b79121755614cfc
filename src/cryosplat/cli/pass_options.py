"""The output options of the commands that make one pass over a finished run's particles and go
on where an interrupted pass stopped (``score``, ``refine-defocus``): the folder, the device, the
progress bar and ``--overwrite``."""

from __future__ import annotations

import argparse
from pathlib import Path


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
