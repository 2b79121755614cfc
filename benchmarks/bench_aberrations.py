"""RELION's optical aberrations recorded in the optics table, against relion_reconstruct.

RELION's CTF refinement writes what it measured of a microscope's optics into ``data_optics``:
beam tilt (``rlnBeamTiltX/Y``), higher-order aberrations (``rlnOddZernike``, ``rlnEvenZernike``)
and anisotropic magnification (``rlnMagMat00..11``). This benchmark makes sets that carry them
and reconstructs each twice with each method: given the STAR with the columns, and given it
without them (what a reader that ignored them would do; cryosplat before round 2, session 60).

The images: 8ZPM's atoms (shipped) along the poses, shifts and CTF of ``cryosplat simulate``
(uniform views, defocus 0.8–2 µm), rendered through ``Mᵀ A`` with the CTF (and its symmetric
aberrations) taken at ``M k`` and the antisymmetric ones put in by
:func:`cryosplat.core.aberrations.demodulate_images` — RELION's model, as
``tests/test_odd_aberrations.py``, ``tests/test_project_relion.py`` and
``tests/test_magnification.py`` check against ``relion_reconstruct`` and ``relion_project`` —
plus white noise. The truth is ``cryosplat simulate``'s map of the atoms.

Example::

    python benchmarks/bench_aberrations.py --out bench_out/aberrations
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from bench_methods import run_cryosplat, run_relion
from bench_report import score_maps

from cryosplat.core.aberrations import demodulate_images, insert_beam_tilt, magnified_rotations
from cryosplat.core.ctf import ctf_from_params, electron_wavelength_angstrom
from cryosplat.io.mrc import write_stack
from cryosplat.io.star import read_star, write_star
from cryosplat.model.atoms import model_from_atoms
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.read import read_particles
from cryosplat.render.imaging import predict_images

MODEL = Path(__file__).parents[1] / "src" / "cryosplat" / "data" / "8zpm.cif"
CHUNK = 250


@dataclass(frozen=True)
class Optics:
    """What one set's optics table records (module docstring): beam tilt (mrad), the
    coefficients of ``rlnOddZernike`` / ``rlnEvenZernike`` and the magnification matrix."""

    name: str
    tilt_mrad: tuple[float, float] = (0.0, 0.0)
    odd: tuple[float, ...] = ()
    even: tuple[float, ...] = ()
    mag: tuple[tuple[float, float], tuple[float, float]] = ((1.0, 0.0), (0.0, 1.0))

    def star_columns(self) -> dict[str, str]:
        """The ``data_optics`` columns (one group) this set's STAR holds."""
        out: dict[str, str] = {}
        if any(self.tilt_mrad):
            out["rlnBeamTiltX"], out["rlnBeamTiltY"] = (f"{t:g}" for t in self.tilt_mrad)
        for name, values in (("rlnOddZernike", self.odd), ("rlnEvenZernike", self.even)):
            if values:
                out[name] = "[" + ",".join(f"{v:g}" for v in values) + "]"
        if not np.array_equal(np.array(self.mag), np.eye(2)):
            for i in (0, 1):
                for j in (0, 1):
                    out[f"rlnMagMat{i}{j}"] = f"{self.mag[i][j]:g}"
        return out


SETS = (
    Optics("none"),  # the reference: the same images without aberrations
    Optics("beam_tilt", tilt_mrad=(0.5, -0.3)),
    # Four-fold astigmatism (Z₄^{±4}): 2.5 rad at 2 Å, 0.5 rad at 3 Å.
    Optics("even", even=(0, 0, 0, 0, 25.0, 0, 0, 0, 30.0)),
    Optics("mag", mag=((1.012, 0.004), (-0.002, 0.990))),
    Optics(
        "all",
        tilt_mrad=(0.5, -0.3),
        odd=(0, 0, 30.0),
        even=(0, 0, 0, 0, 25.0, 0, 0, 0, 30.0),
        mag=((1.012, 0.004), (-0.002, 0.990)),
    ),
)


def images_with(model, particles: ParticleSet, optics: Optics) -> np.ndarray:
    """Noise-free images of ``particles`` through ``optics`` (module docstring)."""
    mags = np.broadcast_to(np.array(optics.mag, dtype=np.float64), (len(particles), 2, 2))
    box, pixel = particles.box, particles.pixel_size_angstrom
    ctf_params = particles.ctf
    if optics.even:
        ctf_params = replace(ctf_params, even_zernike=np.tile(optics.even, (len(particles), 1)))
    ctf = ctf_from_params(ctf_params, box, pixel, dtype=torch.float64, mag_matrices=mags)
    rotations = magnified_rotations(particles.rotations, mags)
    with torch.no_grad():
        images = predict_images(model, rotations, particles.shifts_angstrom, ctf)
    images = images.numpy().astype(np.float32)
    odd = insert_beam_tilt(optics.odd, *optics.tilt_mrad, 2.7, electron_wavelength_angstrom(300.0))
    if np.any(odd != 0):
        images = demodulate_images(images, np.tile(odd, (len(images), 1)), pixel, True, mags)
    return images


def make_set(base: Path, optics: Optics, snr: float, seed: int) -> tuple[Path, Path]:
    """``OUT/NAME/{with,without}.star`` over one noisy stack; returns both STARs."""
    folder = base / optics.name
    folder.mkdir(parents=True, exist_ok=True)
    star = base / "sim" / "particles.star"
    particles = read_particles(star)
    stack = folder / "particles.mrcs"
    if not stack.exists():
        model = model_from_atoms(MODEL, particles.box, particles.pixel_size_angstrom)
        parts = [
            images_with(
                model, particles.subset(np.arange(s, min(s + CHUNK, len(particles)))), optics
            )
            for s in range(0, len(particles), CHUNK)
        ]
        clean = np.concatenate(parts)
        noise = np.random.default_rng(seed).normal(0.0, np.sqrt(clean.var() / snr), clean.shape)
        write_stack(stack, (clean + noise).astype(np.float32), particles.pixel_size_angstrom)
    blocks = read_star(star)
    table = {c: list(blocks["optics"].get_str(c)) for c in blocks["optics"].columns}
    rows = {c: list(blocks["particles"].get_str(c)) for c in blocks["particles"].columns}
    rows["rlnImageName"] = [f"{i + 1}@{stack.name}" for i in range(len(particles))]
    extra = {k: [v] for k, v in optics.star_columns().items()}
    paths = (folder / "with.star", folder / "without.star")
    write_star(paths[0], {"optics": {**table, **extra}, "particles": rows})
    write_star(paths[1], {"optics": table, "particles": rows})
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="working folder")
    parser.add_argument("--n", type=int, default=5000, help="particles (default 5000)")
    parser.add_argument("--box", type=int, default=96)
    parser.add_argument("--pixel", type=float, default=1.0, help="Å (default 1.0)")
    parser.add_argument("--snr", type=float, default=0.05, help="white noise (default 0.05)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--sets", default=",".join(s.name for s in SETS))
    args = parser.parse_args(argv)
    base = args.out.resolve()
    base.mkdir(parents=True, exist_ok=True)
    if not (base / "sim" / "particles.star").exists():
        command = [sys.executable, "-m", "cryosplat.cli.main", "simulate", str(MODEL)]
        command += ["-o", str(base / "sim"), "-n", str(args.n), "--box", str(args.box)]
        command += ["--pixel-size", str(args.pixel), "--snr", "inf", "--seed", str(args.seed)]
        command += ["--defocus-min", "8000", "--defocus-max", "20000", "--quiet"]
        subprocess.run(command, check=True)
    truth = base / "sim" / "truth.mrc"
    print(
        "| set | columns | method | given the columns: 0.5 / 0.143 (Å) | without them | "
        "reported (with) | time / peak (with) |"
    )
    print("|---|---|---|---|---|---|---|")
    wanted = set(args.sets.split(","))
    for optics in (s for s in SETS if s.name in wanted):
        with_star, without_star = make_set(base, optics, args.snr, args.seed)
        for method in ("cryosplat", "relion"):
            scores, runs = {}, {}
            for label, star in (("with", with_star), ("without", without_star)):
                out = star.parent / f"{method}_{label}"
                run = (
                    run_cryosplat(star, out)
                    if method == "cryosplat"
                    else run_relion(star, out, args.pixel)
                )
                runs[label] = run
                scores[label] = score_maps(truth, run.full_map, run.half_maps, args.pixel)
            w, o = scores["with"], scores["without"]
            cost = runs["with"].measured
            print(
                f"| {optics.name} | {', '.join(optics.star_columns())} | {method} | "
                f"{w.truth_05:.2f} / {w.truth_0143:.2f} | {o.truth_05:.2f} / {o.truth_0143:.2f} | "
                f"{w.half_0143:.2f} | {cost.wall_s:.1f} s / {cost.peak_mib:.0f} MiB "
                f"{'; '.join(runs['with'].notes)} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
