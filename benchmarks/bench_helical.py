"""A helical set: cryosplat and ``relion_reconstruct`` with and without the helix imposed.

``python benchmarks/bench_helical.py OUT [--twist 30] [--rise 8] [--units 5] [--snr 0.007]
[--unit-map MAP --unit-size 40] [--coloured]`` makes (or reuses) a helix along z (right-handed for
a positive twist) through a box of 64 at 2.5 Å: of three-blob units, or of a real map (``MAP``,
e.g. ``../shared/data/maps/emd_5625.map``) shrunk to ``--unit-size`` Å across, its negative and
noisy density kept, at 25 Å from the axis. It projects 4,000 segments with ``relion_project``
(tilt 90 ± 6°, rot and psi uniform, defocus 0.8–2.0 µm; white noise for the SNR, or with
``--coloured`` the spectrum of ``particles/betagal_17/sample.mrcs``; four tubes of ten segments a
micrograph, the half sets by tube), runs ``cryosplat reconstruct`` and ``relion_reconstruct --ctf``
in C1 and with ``--helical-twist/--helical-rise/--helical-asu`` (RELION's ``--helical_twist/
--helical_rise/--nr_helical_asu``), the helix's other hand too, and prints one row each: FSC with
the truth (soft sphere) at 0.5 and 0.143, cryosplat's reported resolution and the wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
from bench_methods import relion_command, run_cryosplat
from bench_noise import NOISE_SOURCE, NoiseModel, add_noise

from cryosplat.core.conventions import euler_relion_to_matrix
from cryosplat.core.ctf import CTFParams
from cryosplat.io.mrc import MRCStack, read_map, write_map
from cryosplat.io.star import write_relion31_particles
from cryosplat.validation.fsc import fsc, resolution_at
from cryosplat.validation.masks import spherical_mask

BOX, PIXEL, N = 64, 2.5, 4000
UNIT = [(25.0, 0.0, 0.0, 1.0, 4.0), (31.0, 5.0, 3.0, 0.7, 3.0), (22.0, -6.0, 6.0, 0.5, 3.0)]


def real_unit_helix(twist: float, rise: float, unit_map: Path, size: float) -> np.ndarray:
    """The map ``unit_map`` shrunk to ``size`` Å across, centred 25 Å from z, turned by ``k·twist``
    and moved by ``k·rise`` for every unit that reaches the box (trilinear, torch's
    ``grid_sample``)."""
    import torch

    unit, _ = read_map(unit_map)
    unit = torch.as_tensor(unit, dtype=torch.float64)[None, None]
    half = size / 2
    c = (np.arange(BOX) - BOX // 2) * PIXEL
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    points = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    volume = np.zeros(BOX**3)
    for k in range(-200, 201):
        if abs(k * rise) > BOX * PIXEL * 0.6 + size:
            continue
        a = np.deg2rad(k * twist)
        turn = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        centre = turn @ np.array([25.0, 0.0, 0.0]) + [0.0, 0.0, k * rise]
        local = (points - centre) @ turn  # the unit's own frame (turn⁻¹ applied)
        grid = torch.as_tensor(local / half, dtype=torch.float64).reshape(1, BOX, BOX, BOX, 3)
        sample = torch.nn.functional.grid_sample(unit, grid, align_corners=False)
        volume += sample.reshape(-1).numpy()
    return volume.reshape(BOX, BOX, BOX).astype(np.float32)


def helix_map(
    twist: float,
    rise: float,
    box: int = BOX,
    pixel: float = PIXEL,
    unit: list = UNIT,
    reach: float = 0.6,
) -> np.ndarray:
    """A helix along z of ``unit`` (blobs ``(x, y, z, amplitude, s.d.)``, Å) turned by
    ``k·twist`` and moved by ``k·rise``, the blobs within ``reach`` box sides of the centre in z
    (right-handed for a positive twist; ``tests/test_helical.py`` draws its own with it)."""
    c = (np.arange(box) - box // 2) * pixel
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    volume = np.zeros((box, box, box))
    for k in range(-200, 201):
        a = np.deg2rad(k * twist)
        turn = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        for px, py, pz, amplitude, sd in unit:
            p = turn @ np.array([px, py, pz]) + [0.0, 0.0, k * rise]
            if abs(p[2]) <= box * pixel * reach:
                r2 = (x - p[0]) ** 2 + (y - p[1]) ** 2 + (z - p[2]) ** 2
                volume += amplitude * np.exp(-r2 / (2 * sd * sd))
    return volume.astype(np.float32)


def make_set(folder: Path, args: argparse.Namespace) -> Path:
    star = folder / "proj.star"
    if star.is_file():
        return star
    folder.mkdir(parents=True, exist_ok=True)
    if args.unit_map is None:
        volume = helix_map(args.twist, args.rise)
    else:
        volume = real_unit_helix(args.twist, args.rise, args.unit_map, args.unit_size)
    write_map(folder / "truth.mrc", volume, PIXEL)
    rng = np.random.default_rng(93)  # the draws in the order the sets were first made in
    defocus = rng.uniform(8000, 20000, N)
    angles = [rng.uniform(-180, 180, N), 90 + rng.normal(0, 6, N), rng.uniform(-180, 180, N)]
    shifts = np.stack([rng.normal(0, 2, N), rng.normal(0, 2, N)], axis=1)
    ctf = CTFParams.create(
        N,
        defocus_u_angstrom=defocus,
        defocus_v_angstrom=defocus + 200,
        defocus_angle_degrees=rng.uniform(0, 180, N),
    )
    segment = np.arange(N)
    write_relion31_particles(
        folder / "in.star",
        image_names=None,
        rotations=euler_relion_to_matrix(*angles),
        shifts_angstrom=shifts,
        ctf=ctf,
        pixel_size_angstrom=PIXEL,
        box=BOX,
        random_subset=1 + (segment // 10) % 2,  # by tube: four tubes of ten a micrograph
        extra_columns={
            "rlnMicrographName": [f"mic{k // 40:03d}.mrc" for k in segment],
            "rlnCoordinateX": 1000.0 + 300 * (segment % 10),
            "rlnCoordinateY": 500.0 + 1000 * ((segment % 40) // 10),
            "rlnHelicalTubeID": 1 + (segment % 40) // 10,
        },
    )
    # the noise's s.d. from the clean projections' variance and the SNR
    clean = ["relion_project", "--i", "truth.mrc", "--ang", "in.star", "--ctf"]
    run = {"cwd": folder, "check": True, "capture_output": True}
    subprocess.run([*clean, "--o", "clean", "--angpix", str(PIXEL)], **run)
    signal = float(np.var(read_stack_sample(folder / "clean.mrcs")))
    noise = (signal / args.snr) ** 0.5
    if args.coloured:
        model = NoiseModel(kind="coloured", source=NOISE_SOURCE)
        add_noise(MRCStack(folder / "clean.mrcs"), folder / "proj.mrcs", noise, PIXEL, 93, model)
        text = (folder / "clean.star").read_text().replace("clean.mrcs", "proj.mrcs")
        star.write_text(text)
    else:
        white = ["--add_noise", "--white_noise", f"{noise:g}"]
        subprocess.run([*clean, "--o", "proj", "--angpix", str(PIXEL), *white], **run)
    return star


def read_stack_sample(path: Path) -> np.ndarray:
    import mrcfile

    with mrcfile.mmap(path, permissive=True) as m:
        return np.asarray(m.data[:500])


def crossings(map_path: Path, truth: np.ndarray) -> tuple[float, float]:
    volume, _ = read_map(map_path)
    mask = spherical_mask(BOX)
    curve = fsc(volume * mask, truth * mask)
    return resolution_at(curve, 0.5, BOX, PIXEL), resolution_at(curve, 0.143, BOX, PIXEL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--twist", type=float, default=30.0)
    parser.add_argument("--rise", type=float, default=8.0)
    parser.add_argument("--units", type=int, default=5)
    parser.add_argument("--snr", type=float, default=0.007)
    parser.add_argument("--unit-map", type=Path, help="a real map as the helix's unit")
    parser.add_argument("--unit-size", type=float, default=40.0, help="its size across, Å")
    parser.add_argument("--coloured", action="store_true", help="noise of real images' spectrum")
    args = parser.parse_args(argv)
    star = make_set(args.out / "set", args)
    truth, _ = read_map(star.parent / "truth.mrc")
    print("| method | helix imposed | FSC 0.5 (Å) | FSC 0.143 (Å) | reported (Å) | wall (s) |")
    print("|---|---|---|---|---|---|")
    for twist in (None, args.twist, -args.twist):
        label = (
            "none (C1)"
            if twist is None
            else f"twist {twist:g}°, rise {args.rise:g} Å, {args.units} units"
        )
        helix = (
            []
            if twist is None
            else [
                "--helical-twist",
                f"{twist:g}",
                "--helical-rise",
                f"{args.rise:g}",
                "--helical-asu",
                str(args.units),
            ]
        )
        run = run_cryosplat(star, args.out / f"cryosplat_{twist}", [*helix, "--accept-warnings"])
        reported = json.loads((run.full_map.parent / "fsc.json").read_text())["resolution_angstrom"]
        a, b = crossings(run.full_map, truth)
        print(
            f"| cryosplat | {label} | {a:.2f} | {b:.2f} | {reported:.2f} | {run.measured.wall_s:.1f} |",
            flush=True,
        )
        relion = relion_command(star, PIXEL) + ["--o", str(args.out / f"relion_{twist}.mrc")]
        if twist is not None:
            relion += [
                "--helical_twist",
                f"{twist:g}",
                "--helical_rise",
                f"{args.rise:g}",
                "--nr_helical_asu",
                str(args.units),
            ]
        started = time.perf_counter()
        subprocess.run(relion, cwd=star.parent, check=True, capture_output=True)
        wall = time.perf_counter() - started
        a, b = crossings(args.out / f"relion_{twist}.mrc", truth)
        print(
            f"| relion_reconstruct --ctf | {label} | {a:.2f} | {b:.2f} | | {wall:.1f} |", flush=True
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
