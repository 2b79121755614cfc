"""Benchmark of the Fourier-statistics engine against relion_reconstruct on simulated 8ZPM particles.

``make-data`` builds a ground-truth map of PDB 8ZPM (gemmi's electron-scattering density), draws
uniform random views, Gaussian origins and defoci, projects the map with ``relion_project --ctf``
(an independent projector), adds white noise for the requested SNR (variance of the clean
CTF-modulated images over the box / noise variance) and writes ``particles.star`` + stacks.

``run`` times ``relion_reconstruct --ctf`` on the same particles, then the cryosplat path:
:func:`cryosplat.statistics.accumulate` per half set and :func:`cryosplat.gridfit.fit_gaussians`
per half (stopped by 10 % of the half held out, as ``cryosplat reconstruct`` does), and reports the
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
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cryosplat.ctf import CTFParams
from cryosplat.data import ParticleSet
from cryosplat.fsc import fsc, resolution_at
from cryosplat.gridfit import GridFitConfig, fit_gaussians
from cryosplat.halves import split_halves
from cryosplat.io.mrc import MRCStack, read_map, write_map, write_stack
from cryosplat.io.star import write_relion31_particles
from cryosplat.rotations import random_rotations
from cryosplat.statistics import AccumulateConfig, accumulate

CHUNK = 2000  # images held in memory at once while adding noise
MODEL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "models" / "8zpm.cif"


def atom_map(path: Path, box: int, pixel: float) -> np.ndarray:
    """gemmi electron-scattering density of the model, centred in a box, ``[z, y, x]``."""
    import gemmi

    st = gemmi.read_structure(str(path))
    st.setup_entities()
    st.remove_hydrogens()
    xyz = np.array([a.pos.tolist() for ch in st[0] for r in ch for a in r])
    centre = (xyz.min(0) + xyz.max(0)) / 2
    move = gemmi.Position(*((box // 2) * pixel - centre))
    for ch in st[0]:
        for r in ch:
            for a in r:
                a.pos = a.pos + move
    edge = box * pixel
    st.cell = gemmi.UnitCell(edge, edge, edge, 90, 90, 90)
    st.spacegroup_hm = "P 1"
    dc = gemmi.DensityCalculatorE()
    dc.d_min = 2 * pixel
    dc.set_grid_cell_and_spacegroup(st)
    dc.grid.set_size(box, box, box)
    dc.add_model_density_to_grid(st[0])
    dc.grid.symmetrize_sum()
    return np.ascontiguousarray(np.array(dc.grid, copy=True).transpose(2, 1, 0), dtype=np.float32)


def make_data(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    truth = atom_map(MODEL, args.box, args.pixel)
    write_map(out / "truth.mrc", truth, args.pixel)
    n = args.n
    rot = random_rotations(n, rng)
    shifts = rng.normal(scale=args.shift_sd, size=(n, 2))
    du = rng.uniform(10000, 25000, size=n)
    ctf = CTFParams.create(
        n,
        defocus_u_angstrom=du,
        defocus_v_angstrom=du - rng.uniform(0, 500, n),
        defocus_angle_degrees=rng.uniform(0, 180, n),
    )
    subset = np.where(rng.permutation(n) < n // 2, 1, 2)
    write_relion31_particles(
        out / "angles.star",
        image_names=None,
        rotations=rot,
        shifts_angstrom=shifts,
        ctf=ctf,
        pixel_size_angstrom=args.pixel,
        box=args.box,
        random_subset=subset,
    )
    t0 = time.time()
    subprocess.run(
        [
            "relion_project",
            "--i",
            str(out / "truth.mrc"),
            "--ang",
            str(out / "angles.star"),
            "--o",
            str(out / "clean"),
            "--ctf",
            "--angpix",
            str(args.pixel),
        ],
        check=True,
        capture_output=True,
    )
    clean = MRCStack(out / "clean.mrcs")
    names, noise_sd, signal_var = [], None, None
    for number, start in enumerate(range(0, n, CHUNK)):
        rows = np.arange(start, min(n, start + CHUNK))
        images = clean.read(rows)
        if noise_sd is None:
            signal_var = float(images.var())
            noise_sd = float(np.sqrt(signal_var / args.snr))
        images += rng.normal(scale=noise_sd, size=images.shape).astype(np.float32)
        stack = f"particles_{number:03d}.mrcs"
        write_stack(out / stack, images, args.pixel)
        names += [f"{i + 1:06d}@{stack}" for i in range(len(rows))]
    (out / "clean.mrcs").unlink()
    write_relion31_particles(
        out / "particles.star",
        image_names=names,
        rotations=rot,
        shifts_angstrom=shifts,
        ctf=ctf,
        pixel_size_angstrom=args.pixel,
        box=args.box,
        random_subset=subset,
    )
    info = dict(
        n=n,
        box=args.box,
        pixel=args.pixel,
        snr=args.snr,
        seed=args.seed,
        signal_var=signal_var,
        noise_sd=noise_sd,
        project_s=time.time() - t0,
    )
    (out / "simulation.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))


def fsc05(volume: np.ndarray, truth: np.ndarray, pixel: float) -> float:
    return resolution_at(fsc(volume, truth), 0.5, truth.shape[0], pixel)


def run_relion(folder: Path, pixel: float, truth: np.ndarray) -> dict:
    if shutil.which("relion_reconstruct") is None:
        return {}
    t0 = time.time()
    command = [
        "relion_reconstruct",
        "--i",
        str(folder / "particles.star"),
        "--o",
        str(folder / "relion.mrc"),
        "--ctf",
        "--angpix",
        str(pixel),
    ]
    subprocess.run(command, check=True, capture_output=True, cwd=folder)
    seconds = time.time() - t0
    vol, _ = read_map(folder / "relion.mrc")
    return dict(
        relion_s=round(seconds, 2), relion_fsc05_angstrom=round(fsc05(vol, truth, pixel), 3)
    )


def run_cryosplat(folder: Path, truth: np.ndarray, args) -> dict:
    t0 = time.time()
    particles = ParticleSet.from_file(folder / "particles.star")
    if args.limit:
        particles = particles.subset(np.arange(min(args.limit, len(particles))))
    half_a, half_b, _ = split_halves(particles)
    acc = AccumulateConfig(batch_size=args.batch_size)
    rng = np.random.default_rng(args.seed)
    fits, held = [], []
    for rows in (half_a, half_b):
        # As cryosplat reconstruct: 10 % of each half decides when its fit stops (gold standard).
        mask = np.zeros(len(rows), dtype=bool)
        mask[rng.permutation(len(rows))[: max(1, len(rows) // 10)]] = True
        fits.append(accumulate(particles, rows[~mask], acc))
        held.append(accumulate(particles, rows[mask], acc))
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
