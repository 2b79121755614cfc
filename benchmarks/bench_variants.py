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

from cryosplat.core.conventions import matrix_to_euler_relion
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


def relion31_tables(
    particles,
    names: list[str],
    rotations: np.ndarray,
    shifts_angstrom: np.ndarray,
    groups: dict | None = None,
) -> dict:
    """The optics and particles tables of a RELION 3.1 STAR file for ``particles`` (their CTF
    and half sets) read from images ``names`` at ``rotations`` and ``shifts_angstrom``.
    ``groups``: ``{"of": each particle's optics group from 1, "names", "pixels", "sizes"}``
    (default: one group at the set's pixel and box)."""
    ctf = particles.ctf
    if groups is None:
        groups = {
            "of": np.ones(len(names), dtype=np.int64),
            "names": ["opticsGroup1"],
            "pixels": [particles.pixel_size_angstrom],
            "sizes": [particles.box],
        }
    angles = matrix_to_euler_relion(rotations)
    columns = {
        "rlnImageName": list(names),
        "rlnOpticsGroup": list(groups["of"]),
        "rlnAngleRot": angles[:, 0],
        "rlnAngleTilt": angles[:, 1],
        "rlnAnglePsi": angles[:, 2],
        "rlnOriginXAngst": shifts_angstrom[:, 0],
        "rlnOriginYAngst": shifts_angstrom[:, 1],
        "rlnDefocusU": ctf.defocus_u_angstrom,
        "rlnDefocusV": ctf.defocus_v_angstrom,
        "rlnDefocusAngle": ctf.defocus_angle_degrees,
        "rlnRandomSubset": particles.random_subset,
    }
    n_groups = len(groups["names"])
    optics = {
        "rlnOpticsGroup": list(range(1, n_groups + 1)),
        "rlnOpticsGroupName": list(groups["names"]),
        "rlnImagePixelSize": list(groups["pixels"]),
        "rlnImageSize": list(groups["sizes"]),
        "rlnImageDimensionality": [2] * n_groups,
        "rlnVoltage": [float(ctf.voltage_kv[0])] * n_groups,
        "rlnSphericalAberration": [float(ctf.cs_mm[0])] * n_groups,
        "rlnAmplitudeContrast": [float(ctf.amplitude_contrast[0])] * n_groups,
    }
    return {"optics": optics, "particles": columns}


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
