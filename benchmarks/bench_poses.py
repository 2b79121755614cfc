"""Per-particle poses read again: ``cryosplat refine-poses``, judged by the truth and by RELION.

For each catalogue set whose STAR records the poses with errors (made by :mod:`bench_datasets`
with ``relion_project`` from the true poses, ``in.star``; the STAR's views turned and shifts moved
by ``pose_error_degrees`` and ``shift_error_angstrom``, :mod:`bench_pose_errors`):

* ``cryosplat reconstruct`` of the set as recorded, ``cryosplat refine-poses`` of its run (timed,
  its peak memory), and ``cryosplat reconstruct`` of ``refined.star``;
* ``relion_reconstruct --ctf`` of the set as recorded and of ``refined.star``: a direct inversion
  owes nothing to cryosplat's model, so its map tells whether the poses themselves came nearer;
* both programs once more with the true poses (``in.star``'s angles and origins in the set's STAR),
  the bound any refinement works toward.

The tables give the poses' rms errors against the truth (the angle of ``A_refined A_trueᵀ``, the
length of the shift's error) before and after, the command's time and memory beside
``relion_reconstruct``'s in the same run, and each map's FSC with the truth.

Example::

    python benchmarks/bench_poses.py --out bench_out/poses
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from bench_datasets import make_dataset
from bench_defocus import link_stacks
from bench_methods import _cryosplat_script, measure, run_cryosplat, run_relion
from bench_report import plot_curves
from bench_variants import parse_args, print_table, table_row
from run_benchmarks import selected_specs

from cryosplat.core.conventions import euler_relion_to_matrix, matrix_to_rotvec
from cryosplat.io.star import read_star, write_star

DEFAULT_SETS = "unseen58"
ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
ORIGINS = ("rlnOriginXAngst", "rlnOriginYAngst")


def _poses(block) -> tuple[np.ndarray, np.ndarray]:
    rotations = euler_relion_to_matrix(*(block.get_float(c) for c in ANGLES))
    return rotations, np.stack([block.get_float(c) for c in ORIGINS], 1)


def pose_errors(star: Path, truth_star: Path) -> tuple[float, float]:
    """The rms angle (degrees) and shift error (Å) of ``star``'s poses against ``truth_star``'s
    (``relion_project``'s input: the same rows, in the same order)."""
    rotations, shifts = _poses(read_star(star)["particles"])
    true_rotations, true_shifts = _poses(read_star(truth_star)["particles"])
    if len(rotations) != len(true_rotations):
        raise ValueError(f"{star} holds {len(rotations)} rows, {truth_star} {len(true_rotations)}")
    turn = matrix_to_rotvec(rotations @ np.swapaxes(true_rotations, 1, 2))
    angle = np.degrees(np.linalg.norm(turn, axis=1))
    shift = np.linalg.norm(shifts - true_shifts, axis=1)
    return float(np.sqrt(np.mean(angle**2))), float(np.sqrt(np.mean(shift**2)))


def with_true_poses(star: Path, truth_star: Path, out: Path) -> Path:
    """``star`` written to ``out`` with ``truth_star``'s angles and origins (row by row)."""
    blocks = {name: dict(block.columns) for name, block in read_star(star).items()}
    truth = read_star(truth_star)["particles"]
    for column in ANGLES + ORIGINS:
        blocks["particles"][column] = list(truth.columns[column])
    write_star(out, blocks)
    return out


def plot_set(work: Path, name: str, pixel: float, path: Path) -> None:
    """The six maps' FSC with the truth (both programs, recorded, refined and true poses), from
    the curves :func:`bench_set` saved in ``work``, as a PNG."""
    curves = {
        f"{method}, {poses} poses": np.load(work / f"{method}_{poses}" / f"{method}_fsc_truth.npy")
        for method in ("cryosplat", "relion")
        for poses in ("recorded", "refined", "true")
    }
    plot_curves(path, f"{name}: FSC with the truth", curves, pixel)


def bench_set(spec, cache: Path, out_root: Path) -> tuple[list[str], list[str]]:
    """One set's map rows and pose-error rows."""
    data = make_dataset(spec, cache)
    pixel = spec.pixel_size_angstrom
    work = out_root / "runs" / spec.name
    truth_star = data.star.parent / "in.star"
    rows: list[str] = []

    def row(label: str, made, out: Path) -> None:
        rows.append(table_row((spec.name, label), made, data.truth, pixel, out))

    recorded = work / "cryosplat_recorded"
    row("recorded", run_cryosplat(data.star, recorded), recorded)
    refine = work / "refine"
    command = [_cryosplat_script(), "refine-poses", str(data.star), "--run", str(recorded / "run")]
    cost = measure(
        [*command, "-o", str(refine), "--no-progress", "--overwrite"],
        data.star.parent,
        work / "refine.log",
    )
    print(f"{spec.name}: refine-poses {cost.wall_s:.1f} s, {cost.peak_mib:.0f} MiB", flush=True)
    link_stacks(data.star, work)  # a STAR copied into ``work`` reads the stacks there
    refined = work / "refined.star"
    subprocess.run(["cp", str(refine / "refined.star"), str(refined)], check=True)
    true = with_true_poses(data.star, truth_star, work / "true.star")
    out = work / "relion_recorded"
    relion = run_relion(data.star, out, pixel)
    row("recorded", relion, out)
    for label, star, name in (("refined", refined, "refined"), ("true", true, "true")):
        out = work / f"cryosplat_{name}"
        row(label, run_cryosplat(star, out), out)
        out = work / f"relion_{name}"
        row(label, run_relion(star, out, pixel), out)
    plot_set(work, spec.name, pixel, out_root / f"fsc_poses_{spec.name}.png")
    before, after = pose_errors(data.star, truth_star), pose_errors(refined, truth_star)
    errors = [
        f"| {spec.name} | {before[0]:.2f} | {after[0]:.2f} | {before[1]:.2f} | {after[1]:.2f} | "
        f"{cost.wall_s:.1f} | {cost.peak_mib:.0f} | {relion.measured.wall_s:.1f} | "
        f"{relion.measured.peak_mib:.0f} |"
    ]
    return rows, errors


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, DEFAULT_SETS, argv)
    rows, errors = [], []
    specs = [
        spec
        for spec in selected_specs(args.datasets.split(","), quick=False)
        if spec.pose_error_degrees or spec.shift_error_angstrom
    ]
    for spec in specs:
        made, error = bench_set(spec, args.cache, args.out)
        rows += made
        errors += error
    print(
        "\n| set | angle error rms, recorded (°) | after (°) | shift error rms, recorded (Å) | "
        "after (Å) | refine-poses (s) | its peak (MiB) | relion_reconstruct, map and halves (s) | its peak "
        "(MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(errors))
    print_table("set | poses", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
