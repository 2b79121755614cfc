"""Benchmark of the Fourier-statistics engine against relion_reconstruct on simulated 8ZPM particles.

``make-data`` makes an 8ZPM data set exactly as ``run_benchmarks.py`` does
(:func:`bench_datasets.make_dataset`: the atoms' Gaussian map as truth, projected by
``relion_project --ctf``, white noise for the requested SNR); ``OUT``'s last folder is its name.

``run`` times ``relion_reconstruct --ctf`` on the same particles, then the cryosplat path:
:func:`cryosplat.reconstruct.grid.gather.accumulate` per half set and :func:`cryosplat.reconstruct.grid.fit.fit_gaussians`
per half (stopped by 10 % of the half held out, split by :func:`cryosplat.reconstruct.grid.half_statistics.split_heldout` as
``cryosplat reconstruct`` does), and reports the
FSC with the truth (0.5 crossing) of each half map and of their average, and the peak memory.

Example::

    python benchmarks/bench_gridfit.py make-data bench_out/8zpm_5k --n 5000 --snr 0.005
    python benchmarks/bench_gridfit.py run bench_out/8zpm_5k
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_datasets import DatasetSpec, make_dataset
from bench_methods import measure

from cryosplat.io.mrc import read_map
from cryosplat.particles.halves import split_halves
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.fit import GridFitConfig, fit_gaussians
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.grid.half_statistics import split_heldout
from cryosplat.validation.fsc import fsc, resolution_at


def make_data(args) -> None:
    out = Path(args.out).resolve()
    spec = DatasetSpec(
        out.name,
        "models/8zpm.cif",
        args.box,
        args.pixel,
        args.n,
        args.snr,
        shift_sd_angstrom=args.shift_sd,
        seed=args.seed,
    )
    data = make_dataset(spec, out.parent)
    print(json.dumps({"folder": str(data.folder), "noise_sd": data.noise_sd}))


def fsc05(volume: np.ndarray, truth: np.ndarray, pixel: float) -> float:
    return resolution_at(fsc(volume, truth), 0.5, truth.shape[0], pixel)


def run_relion(folder: Path, pixel: float, truth: np.ndarray) -> dict:
    if shutil.which("relion_reconstruct") is None:
        return {}
    command = ["relion_reconstruct", "--i", "particles.star", "--o", "relion.mrc", "--ctf"]
    cost = measure([*command, "--angpix", str(pixel)], folder, folder / "relion.log")
    vol, _ = read_map(folder / "relion.mrc")
    return dict(
        relion_s=round(cost.wall_s, 2), relion_fsc05_angstrom=round(fsc05(vol, truth, pixel), 3)
    )


def run_cryosplat(folder: Path, truth: np.ndarray, args) -> dict:
    t0 = time.time()
    particles = read_particles(folder / "particles.star")
    if args.limit:
        particles = particles.subset(np.arange(min(args.limit, len(particles))))
    half_a, half_b, _ = split_halves(particles)
    acc = AccumulateConfig(batch_size=args.batch_size)
    fits, held = [], []
    for i, rows in enumerate((half_a, half_b)):
        # As cryosplat reconstruct: 10 % of each half decides when its fit stops (gold standard).
        fit_rows, held_rows = split_heldout(np.asarray(rows), 0.1, args.seed * 7 + i)
        fits.append(accumulate(particles, fit_rows, acc))
        held.append(accumulate(particles, held_rows, acc))
    t_acc = time.time() - t0
    maps, steps = [], []
    for i in range(2):
        cfg = GridFitConfig(n_gaussians=args.n_gaussians, seed=args.seed * 2 + i + 1)
        model = fit_gaussians(fits[i], cfg, heldout=held[i], progress=lambda k, _n: steps.append(k))
        with torch.no_grad():
            maps.append(model.voxelize().double().numpy())
    seconds = time.time() - t0
    pixel = particles.pixel_size_angstrom
    wiener = (fits[0] + fits[1] + held[0] + held[1]).reconstruct_wiener().numpy()
    return dict(
        n=len(particles),
        cryosplat_s=round(seconds, 2),
        accumulate_s=round(t_acc, 2),
        fsc05_half_a=round(fsc05(maps[0], truth, pixel), 3),
        fsc05_half_b=round(fsc05(maps[1], truth, pixel), 3),
        fsc05_full=round(fsc05((maps[0] + maps[1]) / 2, truth, pixel), 3),
        wiener_fsc05=round(fsc05(wiener, truth, pixel), 3),
        fit_steps=len(steps),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-data")
    m.add_argument("out")
    m.add_argument("--n", type=int, default=5000)
    m.add_argument("--box", type=int, default=96)
    m.add_argument("--pixel", type=float, default=1.5)
    m.add_argument("--snr", type=float, default=0.005)
    m.add_argument("--shift-sd", type=float, default=3.0)
    m.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run")
    r.add_argument("folder")
    r.add_argument("--n-gaussians", type=int, default=3000)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--batch-size", type=int, default=128)
    r.add_argument("--limit", type=int, default=0, help="use only the first N particles")
    r.add_argument("--skip-relion", action="store_true")
    r.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 is fastest on a shared 2-core machine)",
    )
    args = parser.parse_args(argv)
    if args.cmd == "make-data":
        make_data(args)
        return 0
    torch.set_num_threads(args.threads)
    folder = Path(args.folder).resolve()
    truth, pixel = read_map(folder / "truth.mrc")
    result = {} if args.skip_relion else run_relion(folder, pixel, truth)
    result.update(run_cryosplat(folder, truth, args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
