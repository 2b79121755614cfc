"""One symmetric data set, chosen methods and groups: a quicker path than ``run_benchmarks.py``.

``python benchmarks/bench_symmetry.py 6vxx_c3 cryosplat:C3 relion:C3 relion:C1`` makes (or reuses)
the set, runs each ``method:group`` and prints one table row each (FSC to the truth at 0.5 and
0.143, wall and CPU time, the map's self-correlation under the set's group).
"""

from __future__ import annotations

import sys

from bench_catalogue import DATASETS
from bench_datasets import make_dataset
from bench_report import format_table, score_maps
from run_benchmarks import REPO, run_method, self_correlation, warm_cache


def main(argv: list[str]) -> int:
    spec = DATASETS[argv[0]][0]
    out = REPO / "bench_out"
    data = make_dataset(spec, out / "datasets")
    for item in argv[1:]:
        method, sym = item.split(":")
        warm_cache(data.folder)
        run = run_method(method, data, out / "runs" / spec.name, None, [], sym)
        score = score_maps(data.truth, run.full_map, run.half_maps, spec.pixel_size_angstrom)
        row = {
            "method": f"{method} --sym {sym}",
            "dataset": spec.name,
            "particles": spec.n_particles,
            "FSC-truth 0.5 (Å)": score.truth_05,
            "FSC-truth 0.143 (Å)": score.truth_0143,
            "half-map 0.143 (Å)": score.half_0143,
            "wall time (s)": run.measured.wall_s,
            "peak memory (MiB)": run.measured.peak_mib,
            "notes": f"CPU {run.measured.cpu_s:.0f} s; self-correlation under {spec.symmetry} "
            f"{self_correlation(run.full_map, spec.symmetry):.4f}; hand {score.hand}",
        }
        print(format_table([row]).splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
