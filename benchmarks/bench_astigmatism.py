"""The astigmatism check on particle sets as written and with each slip: readings and time.

``python benchmarks/bench_astigmatism.py PARTICLES [PARTICLES ...]`` reads each particle file
(a STAR or .cs, e.g. the real sets of ``../shared/data/particles`` or a made set's
``particles.star``) and runs :func:`cryosplat.particles.astigmatism_check.check_astigmatism` on
its metadata as written and with each slip of
:data:`~cryosplat.particles.astigmatism_check.VARIANTS` applied to it (the images as they are):
one table row each, the verdict, the slip the rings follow best and every slip's ``t`` (positive:
the rings follow the metadata read; negative: they follow the slip). Written with a slip, a set
whose rings show its astigmatism must be named with it; as written it must not be; sets without
rings (simulated with the noise added after the CTF) must say they cannot tell.

``python benchmarks/bench_astigmatism.py --synthetic`` makes blob-and-noise sets whose images
also hold ice seen through their own astigmatic CTF
(:class:`~cryosplat.simulate.noise_stacks.NoiseStacksConfig`'s ``ice_sd``), box 128 at 1.1 Å,
for each ring strength, image count and astigmatism of :data:`SYNTHETIC`: the Thon-ring check's
``z`` per image (real images: 2.3–4.0), the check as written and how many of the three slips are
named when written with them.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from cryosplat.particles.astigmatism_check import VARIANTS, check_astigmatism, with_slip
from cryosplat.particles.read import read_particles
from cryosplat.particles.thon_rings import check_thon_rings
from cryosplat.simulate.noise_stacks import NoiseStacksConfig, write_noise_particles

SYNTHETIC = {"ice_sd": (0.3, 0.6), "images": (30, 100, 300), "astigmatism": (200.0, 600.0)}


def rows(path: Path) -> list[str]:
    particles = read_particles(path)
    out = []
    for written in ("as written", *VARIANTS):
        start = time.perf_counter()
        ctf = particles.ctf if written == "as written" else with_slip(particles.ctf, written)
        check = check_astigmatism(replace(particles, ctf=ctf))
        seconds = time.perf_counter() - start
        if check is None:
            return [f"| {path.name} | – | no astigmatic particle, or no CTF | | | |"]
        expected = "agree or weak" if written == "as written" else written
        found = check.best_slip if check.verdict == "mismatch" else check.verdict
        readings = ", ".join(f"{t:+.1f}" for t in check.t)
        out.append(
            f"| {path.parent.name}/{path.name} ({check.n_images} images, astigmatism ≤ "
            f"{check.max_astigmatism_angstrom:.0f} Å) | {written} | {found} | {expected} | "
            f"{readings} | {seconds:.2f} |"
        )
    return out


def synthetic_rows(seed: int = 9101) -> list[str]:
    """One row per set of :data:`SYNTHETIC` (module docstring)."""
    out = []
    for k, (ice, n, astigmatism) in enumerate(itertools.product(*SYNTHETIC.values())):
        config = NoiseStacksConfig(
            n, 128, 1.1, seed=seed + k, ice_sd=ice, astigmatism_max_angstrom=astigmatism
        )
        with tempfile.TemporaryDirectory(prefix="bench_astigmatism_") as scratch:
            particles = read_particles(write_noise_particles(Path(scratch) / "set", config))
            rings = check_thon_rings(particles)
            check = check_astigmatism(particles)
            named = sum(
                (
                    c := check_astigmatism(replace(particles, ctf=with_slip(particles.ctf, slip)))
                ).verdict
                == "mismatch"
                and c.best_slip == slip
                for slip in VARIANTS
            )
        readings = ", ".join(f"{t:+.1f}" for t in check.t)
        out.append(
            f"| {ice:g} | {n} | {astigmatism:.0f} | {rings.z_given / np.sqrt(n):.1f} | "
            f"{check.verdict} ({readings}) | {named} of {len(VARIANTS)} |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("particles", nargs="*", type=Path, help="STAR or .cs particle files")
    parser.add_argument("--synthetic", action="store_true", help="the made sets of SYNTHETIC")
    args = parser.parse_args(argv)
    if args.synthetic:
        print(
            "| ice sd | images | max abs(U − V) (Å) | Thon z per image | as written (t by slip) "
            "| slips named |"
        )
        print("|---|---|---|---|---|---|")
        for row in synthetic_rows():
            print(row, flush=True)
    if not args.particles:
        return 0 if args.synthetic else parser.error("give particle files, or --synthetic")
    print("t by slip: " + ", ".join(VARIANTS))
    print("| set | metadata | named | expected | t by slip | s |")
    print("|---|---|---|---|---|---|")
    for path in args.particles:
        for row in rows(path):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
