"""Wall time of the statistics pass and of the two half fits on 1 process against 2 (torchrun, gloo).

Makes a simulated set (a random Gaussian model, ``--n`` particles of box ``--box`` in stack files of
``--per-stack`` images), then times, each ``--repeats`` times (the minimum is reported; the machine
is shared, so timings are noisy):

- ``stats``: :func:`cryosplat.reconstruct.distributed.gather_statistics` of both half sets (each rank
  its shard, summed with an all-reduce), from a barrier to a barrier;
- ``fit``: :func:`cryosplat.reconstruct.grid.fit.fit_gaussians` of both halves, coarse to fine with
  the default stages: one process fits A then B, two processes fit A on rank 0 and B on rank 1.

Each is run as one process with all the cores' threads, one process with one thread, and
``torchrun --nproc_per_node=2`` with one thread per process (``OMP_NUM_THREADS=1``), and the
table is printed. Example::

    python benchmarks/bench_distributed.py --out bench_out/dist --n 4000 --box 64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.halves import split_halves
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct import distributed
from cryosplat.reconstruct.grid.fit import GridFitConfig, fit_gaussians
from cryosplat.reconstruct.grid.gather import AccumulateConfig
from cryosplat.reconstruct.grid.statistics import FourierStatistics
from cryosplat.reconstruct.run import default_n_gaussians
from cryosplat.simulate.simulation import SimulationConfig, simulate


def _make_data(out: Path, n: int, box: int, per_stack: int) -> Path:
    star = out / "sim" / "particles.star"
    if star.is_file():
        return star
    out.mkdir(parents=True, exist_ok=True)
    pixel = 2.0
    truth = GaussianModel.random(400, box, pixel, seed=5, radius_fraction=0.25, scale_angstrom=4.0)
    truth.save(out / "truth.npz")
    config = SimulationConfig(
        n_particles=n,
        box=box,
        pixel_size_angstrom=pixel,
        snr=0.05,
        seed=1,
        images_per_stack=per_stack,
    )
    return simulate(out / "truth.npz", out / "sim", config).star_path


def _worker(task: str, star: Path, folder: Path) -> None:
    """One rank's part of ``task``; rank 0 prints ``{"task": ..., "seconds": ...}``."""
    dist = distributed.start(torch.device("cpu"))
    particles = read_particles(star)
    halves = split_halves(particles, 0)[:2]
    dist.barrier()
    start, cpu_start = time.perf_counter(), time.process_time()
    if task == "stats":
        for name, rows in zip("AB", halves, strict=True):
            stats = distributed.gather_statistics(particles, rows, AccumulateConfig(), dist)
            if dist.is_main:
                stats.save(folder / f"stats_{name}.npz")
    else:
        config = replace(GridFitConfig(), n_gaussians=default_n_gaussians(particles.box))
        for i, name in enumerate("AB"):
            if dist.owner_of_half(i) == dist.rank:
                stats = FourierStatistics.load(folder / f"stats_{name}.npz")
                fit_gaussians(stats, replace(config, seed=i + 1))
    cpu = [time.process_time() - cpu_start]
    dist.barrier()
    seconds = time.perf_counter() - start
    if dist.active:
        cpu = [None] * dist.world_size
        torch.distributed.all_gather_object(cpu, time.process_time() - cpu_start)
    dist.stop()
    if dist.is_main:
        print(json.dumps({"task": task, "seconds": seconds, "cpu": cpu}), flush=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _time(task: str, star: Path, folder: Path, nproc: int, threads: int | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARIABLES}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    script = [str(Path(__file__).resolve()), "--worker", task, "--particles", str(star)]
    script += ["--out", str(folder)]
    if nproc == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1"]
        cmd += [f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1"]
        cmd += [f"--master_port={_free_port()}", *script]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_out/dist"))
    parser.add_argument("--n", type=int, default=4000, help="particles")
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--per-stack", type=int, default=250, help="images per stack file")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--tasks", default="stats,fit", help="comma-separated among stats, fit (fit needs stats)"
    )
    parser.add_argument(
        "--no-all-threads",
        action="store_true",
        help="skip the one-process run with a thread per core (pathologically slow on a machine "
        "already loaded by others)",
    )
    parser.add_argument("--worker", choices=("stats", "fit"), help=argparse.SUPPRESS)
    parser.add_argument("--particles", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.particles, args.out)
        return
    star = _make_data(args.out, args.n, args.box, args.per_stack)
    cores = os.cpu_count() or 1
    setups = [
        (f"1 process, {cores} threads", 1, None),
        ("1 process, 1 thread", 1, 1),
        ("torchrun, 2 processes × 1 thread", 2, 1),
    ][1 if args.no_all_threads else 0 :]
    tasks = [t for t in ("stats", "fit") if t in args.tasks.split(",")]
    times: dict[tuple[str, str], list[dict]] = {}
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for task in tasks:  # the fit reads the statistics gathered last
            for label, nproc, threads in setups:
                times.setdefault((task, label), []).append(
                    _time(task, star, args.out, nproc, threads)
                )
    print(
        f"\n{args.n} particles, box {args.box}, {-(-args.n // args.per_stack)} stack files, "
        f"{cores} CPU cores; min of {args.repeats}; load average "
        f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after (1 min)\n"
    )
    print(
        "| phase | measure | "
        + " | ".join(label for label, _, _ in setups)
        + " | 2 processes vs best 1 |"
    )
    print("|---|---|" + "---|" * (len(setups) + 1))
    names = {"stats": "statistics pass (both halves)", "fit": "fit (both halves)"}
    measures = {
        "wall s": lambda run: run["seconds"],
        "CPU s, busiest rank": lambda run: max(run["cpu"]),
        "CPU s, all ranks": lambda run: sum(run["cpu"]),
    }
    for task in tasks:
        for measure, get in measures.items():
            best = [min(get(run) for run in times[(task, label)]) for label, _, _ in setups]
            ratio = min(best[:-1]) / best[-1]
            cells = " | ".join(f"{t:.2f}" for t in best)
            print(f"| {names[task]} | {measure} | {cells} | {ratio:.2f}× |")
    print("\nall runs:", json.dumps({f"{t}/{lab}": v for (t, lab), v in times.items()}))


if __name__ == "__main__":
    main()
