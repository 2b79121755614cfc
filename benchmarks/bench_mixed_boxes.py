"""Particles stored at three boxes in one STAR file, against the same particles at one box.

Data sets extracted at different boxes, or one of them binned, are reconstructed together by
RELION (each optics group has its own ``rlnImageSize`` and pixel size). cryosplat reads every
image at the most common box (:mod:`cryosplat.particles.mixed_boxes`). For each catalogue set
(made by :mod:`bench_datasets` with ``relion_project``) this benchmark makes a mixed copy of it:

* half the particles (rows ``i % 4`` 0 and 2) as they are, box ``D``;
* a quarter (``i % 4 == 1``) projected again by ``relion_project`` from the truth padded to box
  ``D' = 5D/4`` (even), with the same pixel, poses, CTF and noise level (as if extracted at a
  larger box);
* a quarter (``i % 4 == 3``) binned: the set's own noisy images Fourier-cropped to ``D/2`` (or the
  even box under it) at twice the pixel (as ``relion_preprocess --scale`` makes them);

three optics groups in one RELION 3.1 STAR file. ``--layout pixels`` makes another copy instead:
half the particles as they are, half the larger box's images Fourier-cropped to ``D`` (an optics
group of a 1.25 times coarser pixel over a larger field, as one binned from a larger extraction). cryosplat and ``relion_reconstruct --ctf`` each
reconstruct the set at one box and the mixed copy; the table gives the FSC with the truth at
0.5 and 0.143, cryosplat's reported resolution, and the wall time and peak memory of each run.

Example::

    python benchmarks/bench_mixed_boxes.py --out bench_out/mixed_boxes
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from bench_datasets import make_dataset
from bench_methods import run_cryosplat, run_relion
from bench_noise import NoiseModel, add_noise
from bench_variants import parse_args, print_table, project_again, table_row
from run_benchmarks import selected_specs

from cryosplat.core.conventions import matrix_to_euler_relion
from cryosplat.io.mrc import MRCStack, read_map, write_map, write_stack
from cryosplat.io.star import write_star
from cryosplat.particles.downsample import fourier_crop_images
from cryosplat.particles.read import read_particles

DEFAULT_SETS = "emd1832_c,emd5625_c,betagal_c"
LAYOUTS = (
    "boxes: the three groups above; pixels: half as they are, half the larger box's images "
    "Fourier-cropped to D (a 1.25 times coarser pixel over the larger field: an optics group of "
    "another pixel size)"
)


def _big_box(box: int) -> int:
    return box + 2 * round(box / 8)


def mixed_copy(data, folder: Path, layout: str = "boxes") -> Path:
    """The mixed copy of ``data`` (module docstring) in ``folder``; its STAR file."""
    star = folder / "particles.star"
    if star.is_file():
        return star
    folder.mkdir(parents=True, exist_ok=True)
    spec, source = data.spec, data.star.parent
    particles = read_particles(data.star)
    n, box, pixel = len(particles), spec.box, spec.pixel_size_angstrom
    # 0: as is, 1: larger box (for "pixels", its images Fourier-cropped to D), 2: binned
    pattern = [0, 1, 0, 2] if layout == "boxes" else [0, 1]
    kind = np.array(pattern)[np.arange(n) % len(pattern)]
    big, small = _big_box(box), box // 2 - (box // 2) % 2  # binned: an even box
    # the larger box: the truth padded, projected along the same rows' poses, noise as the set's
    truth, _ = read_map(source / "truth.mrc")
    lo = big // 2 - box // 2
    padded = np.zeros((big, big, big), dtype=np.float32)
    padded[lo : lo + box, lo : lo + box, lo : lo + box] = truth
    write_map(folder / "truth_big.mrc", padded, pixel)
    rows = np.flatnonzero(kind == 1)
    clean = project_again(data, rows, folder / "truth_big.mrc", big, folder)
    add_noise(
        clean,
        folder / "big.mrcs",
        data.noise_sd,
        pixel,
        spec.seed + 1000,
        NoiseModel(spec.noise, spec.noise_source),
    )
    (folder / "proj.mrcs").unlink()
    sizes, pixels = [box, big, small], [pixel, pixel, pixel * box / small]
    if layout == "pixels":  # the larger field at box D: a coarser pixel
        noisy = MRCStack(folder / "big.mrcs")
        cropped = fourier_crop_images(noisy.read(np.arange(noisy.n_images)), box)
        noisy.release()
        write_stack(folder / "big.mrcs", cropped, pixel * big / box)
        sizes[1], pixels[1] = box, pixel * big / box
    binned = np.flatnonzero(kind == 2)
    if binned.size:
        images = fourier_crop_images(particles.read_images(binned), small)
        write_stack(folder / "binned.mrcs", images, pixel * box / small)
    write_stack(folder / "same.mrcs", particles.read_images(np.flatnonzero(kind == 0)), pixel)
    names = np.empty(n, dtype=object)
    for k, stack in enumerate(("same.mrcs", "big.mrcs", "binned.mrcs")):
        picked = np.flatnonzero(kind == k)
        names[picked] = [f"{i + 1:06d}@{stack}" for i in range(picked.size)]
    groups = 2 if layout == "pixels" else 3  # the optics groups of this layout
    angles = matrix_to_euler_relion(particles.rotations)
    ctf = particles.ctf
    columns = {
        "rlnImageName": list(names),
        "rlnOpticsGroup": list(kind + 1),
        "rlnAngleRot": angles[:, 0],
        "rlnAngleTilt": angles[:, 1],
        "rlnAnglePsi": angles[:, 2],
        "rlnOriginXAngst": particles.shifts_angstrom[:, 0],
        "rlnOriginYAngst": particles.shifts_angstrom[:, 1],
        "rlnDefocusU": ctf.defocus_u_angstrom,
        "rlnDefocusV": ctf.defocus_v_angstrom,
        "rlnDefocusAngle": ctf.defocus_angle_degrees,
        "rlnRandomSubset": particles.random_subset,
    }
    optics = {
        "rlnOpticsGroup": [1, 2, 3][:groups],
        "rlnOpticsGroupName": ["as_is", "larger_box", "binned"][:groups],
        "rlnImagePixelSize": pixels[:groups],
        "rlnImageSize": sizes[:groups],
        "rlnImageDimensionality": [2] * groups,
        "rlnVoltage": [float(ctf.voltage_kv[0])] * groups,
        "rlnSphericalAberration": [float(ctf.cs_mm[0])] * groups,
        "rlnAmplitudeContrast": [float(ctf.amplitude_contrast[0])] * groups,
    }
    write_star(star, {"optics": optics, "particles": columns})
    return star


def main(argv: list[str] | None = None) -> int:
    layouts = {"choices": ("boxes", "pixels"), "default": "boxes", "help": LAYOUTS}
    args = parse_args(__doc__, DEFAULT_SETS, argv, {"--layout": layouts})
    rows = []
    for spec in selected_specs(args.datasets.split(","), quick=False):
        data = make_dataset(spec, args.cache)
        name = spec.name if args.layout == "boxes" else f"{spec.name}_pixels"
        mixed = mixed_copy(data, args.out / "mixed" / name, args.layout)
        label_mixed = "three boxes" if args.layout == "boxes" else "two pixels"
        for label, star in (("one box", data.star), (label_mixed, mixed)):
            work = args.out / "runs" / name / label.replace(" ", "_")
            for run in (
                run_cryosplat(star, work / "cryosplat"),
                run_relion(star, work / "relion", spec.pixel_size_angstrom),
            ):
                pixel = spec.pixel_size_angstrom
                rows.append(table_row((spec.name, label), run, data.truth, pixel, work))
    print_table("set | particles", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
