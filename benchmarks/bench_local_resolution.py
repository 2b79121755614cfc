"""``local_resolution.mrc`` against the truth: each window's reading against the truth's FSC with
the map in the same window.

``cryosplat reconstruct`` writes a local resolution map (:mod:`cryosplat.validation.local_resolution`:
the FSC of the map's halves at 0.143 within soft spheres across the molecule). For each set this
benchmark reconstructs, then reads, in every window centred in the automatic mask, where the map
correlates with the truth by 0.5 (the criterion the halves' 0.143 stands for), and prints the
windows' medians and spreads, the median error, the share within 15 %, and the rank correlation
of the two (do the windows order the molecule's parts as the truth does?).

The sets: catalogue sets by name (``--datasets``; made by :mod:`bench_datasets` with
``relion_project``), and ``8zpm_bgrad``: 8ZPM's atoms (shipped) with B-factors rising from 10 to
400 Å² along x, so that one side of the molecule holds finer detail than the other, simulated by
``cryosplat simulate`` (6,000 particles, box 96, 1.5 Å/px, white noise at SNR 0.003).

Example::

    python benchmarks/bench_local_resolution.py --out bench_out/locres
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from bench_datasets import make_dataset
from bench_methods import run_cryosplat
from run_benchmarks import selected_specs

from cryosplat.io.mrc import read_map
from cryosplat.validation.fsc import resolution_at
from cryosplat.validation.local_resolution import (
    local_resolution,
    window_box,
    window_fscs,
)
from cryosplat.validation.masks import spherical_mask

DEFAULT_SETS = (
    "8zpm,8zpm_bgrad,betagal,emd1832,emd5625,p59_betagal_part,p59_emd1832_part,p59_emd5625_part"
)


def bgrad_set(root: Path) -> tuple[Path, Path]:
    """The B-gradient set (module docstring): its STAR and truth."""
    import gemmi

    folder = root / "8zpm_bgrad"
    star = folder / "sim" / "particles.star"
    if not star.exists():
        folder.mkdir(parents=True, exist_ok=True)
        source = resources.files("cryosplat") / "data" / "8zpm.cif"
        structure = gemmi.read_structure(str(source))
        atoms = [a for ch in structure[0] for r in ch for a in r]
        xs = np.array([a.pos.x for a in atoms])
        for a in atoms:
            a.b_iso = 10.0 + 390.0 * (a.pos.x - xs.min()) / np.ptp(xs)
        structure.setup_entities()
        model = folder / "8zpm_bgrad.cif"
        structure.make_mmcif_document().write_file(str(model))
        command = [sys.executable, "-m", "cryosplat.cli.main", "simulate", str(model)]
        command += ["-o", str(folder / "sim"), "-n", "6000", "--box", "96", "--pixel-size", "1.5"]
        command += ["--snr", "0.003", "--defocus-min", "8000", "--defocus-max", "25000"]
        command += ["--seed", "3", "--quiet"]
        subprocess.run(command, check=True)
    return star, star.parent / "truth.mrc"


def truth_in_windows(run: Path, truth: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window of the run: its reading, the truth's (map vs truth at 0.5), and whether it is
    centred in the automatic mask."""
    entry = json.loads((run / "fsc.json").read_text())["local_resolution"]
    made, pixel = read_map(run / "map.mrc")
    true, _ = read_map(truth)
    mask, _ = read_map(run / "mask.mrc")
    radius = entry["radius_px"]
    centres = np.array(entry["centres_px"])
    curves = window_fscs((torch.as_tensor(made), torch.as_tensor(true)), centres, radius)
    size = window_box(radius)
    expected = np.array([resolution_at(c, 0.5, size, pixel) for c in curves])
    inside = mask[tuple(centres.T)] > 0.5
    return np.array(entry["resolution_angstrom"]), expected, inside


def _ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x)).astype(np.float64)


def row(name: str, run: Path, truth: Path) -> str:
    reported, expected, inside = truth_in_windows(run, truth)
    ok = inside & np.isfinite(expected)
    r, t = reported[ok], expected[ok]
    error = r / t - 1
    rank = np.corrcoef(_ranks(r), _ranks(t))[0, 1] if ok.sum() > 2 else float("nan")
    pr, pt = np.percentile(r, [5, 50, 95]), np.percentile(t, [5, 50, 95])
    return (
        f"| {name} | {ok.sum()} | {pr[1]:.2f} ({pr[0]:.2f}-{pr[2]:.2f}) | "
        f"{pt[1]:.2f} ({pt[0]:.2f}-{pt[2]:.2f}) | {np.median(error):+.1%} | "
        f"{np.mean(np.abs(error) < 0.15):.0%} | {rank:.2f} |"
    )


def timing(box: int = 256, radius_px: float = 12.0) -> float:
    """Seconds for one local resolution of two random halves of ``box`` in a ball of 0.6 of it."""
    rng = np.random.default_rng(0)
    halves = tuple(torch.as_tensor(rng.normal(size=(box,) * 3)) for _ in "AB")
    mask = spherical_mask(box, radius_px=0.3 * box, soft_width_px=1.0)
    start = time.perf_counter()
    local_resolution(halves, mask, 1.0, radius_px)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="working folder")
    parser.add_argument("--datasets", default=DEFAULT_SETS, help="comma-separated set names")
    args = parser.parse_args(argv)
    root = args.out.resolve()
    root.mkdir(parents=True, exist_ok=True)
    print(
        "| set | windows in the mask | local resolution, median (5-95 %) (Å) | the truth's in the "
        "same windows | median error | within 15 % | rank correlation |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        if name == "8zpm_bgrad":
            star, truth = bgrad_set(root)
        else:
            data = make_dataset(selected_specs([name], quick=False)[0], root / "datasets")
            star, truth = data.star, data.truth
        out = root / "runs" / name
        if not (out / "run" / "fsc.json").exists():
            run_cryosplat(star, out)
        print(row(name, out / "run", truth), flush=True)
    print(f"\none local resolution at box 256, windows of 12 voxels: {timing():.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
