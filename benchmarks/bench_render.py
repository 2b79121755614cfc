"""Rendering throughput: images/s (forward + backward) and peak memory of each backend.

Each configuration runs in its own subprocess so its peak memory is its own: max RSS from
``resource.getrusage`` on CPU (torch allocations are invisible to tracemalloc), and
``torch.cuda.max_memory_allocated`` on CUDA. Gaussians are ``GaussianModel.random`` (isotropic,
scale 2 px, footprint radius 6 px at n_sigma = 3) in a box of D = 128 at 1 Å/px. A step renders the
batch and back-propagates ``Σ image²`` to every Gaussian parameter.

``rel err`` is the relative L2 difference of the backend's first 4 images from the exact splat
(``fast``, itself equal to the reference to 1e-5 in float32): 0 for the exact backends, the
interpolation error for ``fourier``.

Usage::

    python benchmarks/bench_render.py                       # full table (~10 min on 2 CPUs)
    python benchmarks/bench_render.py --gaussians 2000 10000 --batches 8 32 --repeats 1
    python benchmarks/bench_render.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from cryosplat.core.rotations import random_rotations
from cryosplat.model.gaussians import GaussianModel
from cryosplat.render import splat

REFERENCE_ERROR_VIEWS = 4


def _measure(
    n_gaussians: int, batch: int, backend: str, device: str, repeats: int, box: int, threads: int
) -> dict:
    if threads > 0:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    model = GaussianModel.random(n_gaussians, box, 1.0, seed=0).to(dev)
    rot = torch.tensor(random_rotations(batch, seed=1), dtype=torch.float32, device=dev)

    def step():
        model.zero_grad(set_to_none=True)
        images = splat(
            model.mixture(),
            rot,
            box,
            1.0,
            backend=backend,
        )
        images.square().sum().backward()

    step()  # warm-up
    error = _error_against_exact(model, rot[:REFERENCE_ERROR_VIEWS], box, backend)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    cpu_start = time.process_time()
    for _ in range(repeats):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = (time.perf_counter() - start) / repeats
    cpu = (time.process_time() - cpu_start) / repeats
    if dev.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "gaussians": n_gaussians,
        "batch": batch,
        "backend": backend,
        "device": device,
        "seconds_per_step": wall,
        "cpu_seconds_per_step": cpu,
        "images_per_second": batch / wall,
        "peak_mib": peak_mib,
        "relative_error": error,
    }


def _error_against_exact(model: GaussianModel, rot: torch.Tensor, box: int, backend: str) -> float:
    if backend in ("reference", "fast", "auto"):
        return 0.0
    with torch.no_grad():
        args = (model.mixture(), rot, box, 1.0)
        exact = splat(*args, backend="fast")
        ours = splat(*args, backend=backend)
    return float((ours - exact).norm() / exact.norm())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, nargs="+", default=[2000, 10000, 30000])
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 128, 512])
    parser.add_argument("--backends", nargs="+", default=["reference", "fast", "fourier"])
    parser.add_argument(
        "--reference-max-batch",
        type=int,
        default=8,
        help="run the (slow) reference backend only up to this batch size",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = _measure(
            args.gaussians[0],
            args.batches[0],
            args.backends[0],
            args.device,
            args.repeats,
            args.box,
            args.threads,
        )
        print(json.dumps(result))
        return 0
    print(
        f"device {args.device}, D = {args.box}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    print(
        f"{'gaussians':>9} {'batch':>5} {'backend':>9} {'img/s':>8} {'s/step':>8} "
        f"{'cpu s':>8} {'peak MiB':>9} {'rel err':>8}"
    )
    for n in args.gaussians:
        for batch in args.batches:
            for backend in args.backends:
                if backend == "reference" and batch > args.reference_max_batch:
                    continue
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    "--gaussians",
                    str(n),
                    "--batches",
                    str(batch),
                    "--backends",
                    backend,
                    "--device",
                    args.device,
                    "--box",
                    str(args.box),
                    "--repeats",
                    str(args.repeats),
                    "--threads",
                    str(args.threads),
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(
                        f"{n:>9} {batch:>5} {backend:>9}  failed: "
                        f"{proc.stderr.strip().splitlines()[-1:]}"
                    )
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                print(
                    f"{n:>9} {batch:>5} {backend:>9} {r['images_per_second']:>8.1f} "
                    f"{r['seconds_per_step']:>8.3f} {r['cpu_seconds_per_step']:>8.3f} "
                    f"{r['peak_mib']:>9.0f} {r['relative_error']:>8.3f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
