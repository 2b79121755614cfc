"""cryosplat's wall time against relion_reconstruct's full map, alternated, as a median ratio.

``python benchmarks/bench_time.py SET_FOLDER [SET_FOLDER ...] [--repeats N]`` runs, for each made
data set (a folder with ``particles.star`` and ``dataset.json``, e.g. ``bench_out/datasets/emd5625``),
``cryosplat reconstruct`` and ``relion_reconstruct --ctf`` (the full map) one after the other, ``N``
times, and prints each pair and the median of the ratios. On a machine shared with other work one
pair can be 30 % off either way (issue 11's 3× limit has read 2.5× and 3.3× for the same set in two
runs); alternating puts both programs under the same load, and the median of several pairs is the
number to compare with the limit.

The package is byte-compiled first, as ``pip install`` leaves an installed package and as any run
leaves an editable one where Python may write its caches: with ``PYTHONDONTWRITEBYTECODE=1`` (set
on these machines) every run compiled its 150 modules again, 0.25 s of a 5 s run at box 48.
"""

from __future__ import annotations

import argparse
import compileall
import json
import statistics
import tempfile
from pathlib import Path

from bench_methods import measure, relion_command, run_cryosplat

import cryosplat


def time_pairs(folder: Path, repeats: int, scratch: Path) -> list[tuple[float, float]]:
    """``[(cryosplat s, relion full map s), ...]`` for ``repeats`` alternated runs on ``folder``."""
    star = folder / "particles.star"
    spec = json.loads((folder / "dataset.json").read_text())["spec"]
    symmetry = spec.get("symmetry", "C1")
    relion = relion_command(star, spec["pixel_size_angstrom"], symmetry)
    relion += ["--o", str(scratch / "relion_full.mrc")]
    ours_args = [] if symmetry == "C1" else ["--sym", symmetry]  # both impose the set's group
    pairs = []
    for _ in range(repeats):
        ours = run_cryosplat(star, scratch / "cryosplat", ours_args).measured.wall_s
        theirs = measure(relion, folder, scratch / "relion.log").wall_s
        pairs.append((ours, theirs))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be at least 1, got {args.repeats}")
    compileall.compile_dir(Path(cryosplat.__file__).parent, quiet=1)
    print("| set | cryosplat (s) | relion full map (s) | ratios | median ratio |")
    print("|---|---|---|---|---|")
    for folder in args.folders:
        with tempfile.TemporaryDirectory(prefix="bench_time_") as scratch:
            pairs = time_pairs(folder, args.repeats, Path(scratch))
        ours, theirs = zip(*pairs, strict=True)
        ratios = [a / b for a, b in pairs]
        print(
            f"| {folder.name} | {statistics.median(ours):.2f} ({min(ours):.2f}–{max(ours):.2f}) "
            f"| {statistics.median(theirs):.2f} ({min(theirs):.2f}–{max(theirs):.2f}) "
            f"| {' '.join(f'{r:.2f}' for r in ratios)} | **{statistics.median(ratios):.2f}×** |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
