"""What the benchmarks that remake a catalogue set's particles share (:mod:`bench_mixed_boxes`,
:mod:`bench_particle_scale`): the truth projected again along the set's own poses and CTF, and
the runs' table (each map's FSC with the truth, cryosplat's reported resolution, time, memory)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench_datasets import _run
from bench_methods import MethodRun
from bench_report import score_maps

from cryosplat.io.mrc import MRCStack
from cryosplat.io.star import write_relion31_particles
from cryosplat.particles.read import read_particles

COLUMNS = "method | FSC 0.5 (Å) | FSC 0.143 (Å) | reported (Å) | wall (s) | MiB"


def parse_args(
    doc: str, default_sets: str, argv: list[str] | None, options: dict | None = None
) -> argparse.Namespace:
    """``--out``, ``--datasets`` (catalogue names) and ``--cache`` (made sets; default
    ``OUT/datasets``), and ``options`` (name -> ``add_argument`` keywords) of the benchmark's
    own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--datasets", default=default_sets)
    parser.add_argument(
        "--cache", type=Path, help="folder of made data sets (default OUT/datasets)"
    )
    for name, keywords in (options or {}).items():
        parser.add_argument(name, **keywords)
    args = parser.parse_args(argv)
    args.cache = args.cache or args.out / "datasets"
    return args


def project_again(data, rows: np.ndarray, truth: Path, box: int, folder: Path) -> MRCStack:
    """The noise-free images of the set's ``rows`` made again by ``relion_project`` from
    ``truth`` (a map in ``folder`` at the set's pixel size) in a ``box``, along the poses and CTF
    the set was made with (its ``in.star``); ``folder/proj.mrcs``."""
    inputs = read_particles(data.star.parent / "in.star", require_images=False).subset(rows)
    write_relion31_particles(
        folder / "in.star",
        image_names=None,
        rotations=inputs.rotations,
        shifts_angstrom=inputs.shifts_angstrom,
        ctf=inputs.ctf,
        pixel_size_angstrom=data.spec.pixel_size_angstrom,
        box=box,
    )
    command = ["relion_project", "--i", truth.name, "--ang", "in.star", "--o", "proj", "--ctf"]
    _run(command, folder, "relion_project.log")
    return MRCStack(folder / "proj.mrcs")


def table_row(
    labels: tuple[str, ...], run: MethodRun, truth: Path, pixel: float, work: Path
) -> str:
    """One row of the table for ``run`` (its FSC with ``truth`` saved beside as
    ``work/METHOD_fsc_truth.npy``), printed as it is made."""
    score = score_maps(truth, run.full_map, run.half_maps, pixel)
    np.save(work / f"{run.method}_fsc_truth.npy", score.curve)
    reported = f"{score.half_0143:.2f}" if run.method == "cryosplat" else "—"
    row = (
        f"| {' | '.join(labels)} | {run.method} | {score.truth_05:.2f} | {score.truth_0143:.2f} | "
        f"{reported} | {run.measured.wall_s:.1f} | {run.measured.peak_mib:.0f} |"
    )
    print(row, flush=True)
    return row


def print_table(label_columns: str, rows: list[str]) -> None:
    """The table of ``rows`` with its header."""
    header = f"{label_columns} | {COLUMNS}"
    print(f"\n| {header} |")
    print("|" + "---|" * (header.count("|") + 1))
    print("\n".join(rows))
