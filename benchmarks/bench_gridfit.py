"""Benchmark of the Fourier-statistics engine against relion_reconstruct on simulated 8ZPM particles.

``make-data`` builds a ground-truth map of PDB 8ZPM (gemmi's electron-scattering density), draws
uniform random views, Gaussian origins and defoci, projects the map with ``relion_project --ctf``
(an independent projector), adds white noise for the requested SNR (variance of the clean
CTF-modulated images over the box / noise variance) and writes ``particles.star`` + stack.

``run`` times ``relion_reconstruct --ctf`` on the same particles, then the cryosplat path:
:func:`cryosplat.statistics.accumulate` per half set and :func:`cryosplat.gridfit.fit_gaussians`
per half, and reports the FSC of each map with the truth (0.5 crossing) and the peak memory.

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
    ctf = CTFParams.create(n, defocus_u_angstrom=du, defocus_v_angstrom=du - rng.uniform(0, 500, n),
                           defocus_angle_degrees=rng.uniform(0, 180, n))
    subset = np.where(rng.permutation(n) < n // 2, 1, 2)
    write_relion31_particles(out / "angles.star", image_names=None, rotations=rot,
                             shifts_angstrom=shifts, ctf=ctf, pixel_size_angstrom=args.pixel,
                             box=args.box, random_subset=subset)
    t0 = time.time()
    subprocess.run(["relion_project", "--i", str(out / "truth.mrc"), "--ang",
                    str(out / "angles.star"), "--o", str(out / "clean"), "--ctf", "--angpix",
                    str(args.pixel)], check=True, capture_output=True)
    clean = MRCStack(out / "clean.mrcs").read(np.arange(n))
    signal_var = float(clean.var())
    noise_sd = float(np.sqrt(signal_var / args.snr))
    noisy = clean + rng.normal(scale=noise_sd, size=clean.shape).astype(np.float32)
    write_stack(out / "particles.mrcs", noisy, args.pixel)
    (out / "clean.mrcs").unlink()
    names = [f"{i + 1:06d}@particles.mrcs" for i in range(n)]
    write_relion31_particles(out / "particles.star", image_names=names, rotations=rot,
                             shifts_angstrom=shifts, ctf=ctf, pixel_size_angstrom=args.pixel,
                             box=args.box, random_subset=subset)
    info = dict(n=n, box=args.box, pixel=args.pixel, snr=args.snr, seed=args.seed,
                signal_var=signal_var, noise_sd=noise_sd, project_s=time.time() - t0)
    (out / "simulation.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))


def fsc05(volume: np.ndarray, truth: np.ndarray, pixel: float) -> float:
    return resolution_at(fsc(volume, truth), 0.5, truth.shape[0], pixel)


def run_relion(folder: Path, pixel: float, truth: np.ndarray) -> dict:
    if shutil.which("relion_reconstruct") is None:
        return {}
    t0 = time.time()
    subprocess.run(["relion_reconstruct", "--i", str(folder / "particles.star"), "--o",
                    str(folder / "relion.mrc"), "--ctf", "--angpix", str(pixel)], check=True,
                   capture_output=True, cwd=folder)
    seconds = time.time() - t0
    vol, _ = read_map(folder / "relion.mrc")
    return dict(relion_s=round(seconds, 2), relion_fsc05_angstrom=round(fsc05(vol, truth, pixel), 3))


def run_cryosplat(folder: Path, truth: np.ndarray, args) -> dict:
    t0 = time.time()
    particles = ParticleSet.from_file(folder / "particles.star")
    if args.limit:
        particles = particles.subset(np.arange(min(args.limit, len(particles))))
    half_a, half_b, _ = split_halves(particles)
    acc = AccumulateConfig(batch_size=args.batch_size)
    stats = [accumulate(particles, h, acc) for h in (half_a, half_b)]
    t_acc = time.time() - t0
    config = GridFitConfig(n_gaussians=args.n_gaussians, seed=args.seed)
    maps = []
    log = []
    for i, (mine, other) in enumerate(((stats[0], stats[1]), (stats[1], stats[0]))):
        cfg = GridFitConfig(**{**config.__dict__, "seed": config.seed * 2 + i + 1})
        model = fit_gaussians(mine, cfg, heldout=other,
                              callback=lambda s, k, loss, held, i=i: log.append((i, s, k, held)))
        with torch.no_grad():
            maps.append(model.voxelize().double().numpy())
    seconds = time.time() - t0
    pixel = particles.pixel_size_angstrom
    full = (maps[0] + maps[1]) / 2
    wiener = (stats[0] + stats[1]).reconstruct_wiener().numpy()
    return dict(n=len(particles), cryosplat_s=round(seconds, 2), accumulate_s=round(t_acc, 2),
                fsc05_half_a=round(fsc05(maps[0], truth, pixel), 3),
                fsc05_half_b=round(fsc05(maps[1], truth, pixel), 3),
                fsc05_full=round(fsc05(full, truth, pixel), 3),
                wiener_fsc05=round(fsc05(wiener, truth, pixel), 3),
                steps=len(log),
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))


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
    r.add_argument("--batch-size", type=int, default=256)
    r.add_argument("--limit", type=int, default=0, help="use only the first N particles")
    r.add_argument("--skip-relion", action="store_true")
    r.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 is fastest on a shared 2-core machine)")
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
