"""Images whose contrast differs particle by particle, with and without the per-particle scale.

Refinements estimate each particle's contrast (thicker ice, a less coherent image): cryoSPARC's
per-particle scale ``alignments3D/alpha`` (on by default in its refinements: the real table
``metadata/cryosparc_P12_J24_001_particles.cs`` holds 0.67–3.08), RELION's
``rlnCtfScalefactor``. Both model an image as ``α · CTF · projection + noise``. For each catalogue
set (made by :mod:`bench_datasets`) this benchmark projects the truth again with
``relion_project`` along the set's poses and CTF, multiplies each projection by a scale drawn
from the real table's alphas (divided by their mean), adds noise as the set's, and writes three
STAR files of the same images: without a scale, with the true scales in ``rlnCtfScalefactor``,
and with scales estimated with an error (``α · exp(0.15 z)``). cryosplat and
``relion_reconstruct --ctf`` reconstruct each; the table gives the FSC with the truth at 0.5
and 0.143, cryosplat's reported resolution, wall time and peak memory.

Example::

    python benchmarks/bench_particle_scale.py --out bench_out/particle_scale
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from bench_datasets import SHARED, make_dataset
from bench_methods import run_cryosplat, run_relion
from bench_noise import NoiseModel, add_noise
from bench_variants import parse_args, print_table, project_again, table_row
from run_benchmarks import selected_specs

from cryosplat.io.mrc import MRCStack
from cryosplat.io.stack_writer import StreamingStackWriter
from cryosplat.io.star import write_relion31_particles
from cryosplat.particles.read import read_particles

DEFAULT_SETS = "emd5625_c,emd1832_c,betagal_c"
ALPHA_TABLE = "metadata/cryosparc_P12_J24_001_particles.cs"
ESTIMATE_ERROR = 0.15  # log-normal s.d. of the recorded scales about the true ones


def real_alphas(n: int, seed: int) -> np.ndarray:
    """``n`` scales drawn from the real table's ``alignments3D/alpha``, divided by their mean."""
    table = np.load(SHARED / ALPHA_TABLE)
    alpha = table["alignments3D/alpha"].astype(np.float64)
    return np.random.default_rng([seed, 23]).choice(alpha / alpha.mean(), n)


def scaled_copy(data, folder: Path) -> dict[str, Path]:
    """The three STAR files (module docstring) of ``data``'s scaled copy in ``folder``."""
    stars = {
        name: folder / f"{name}.star" for name in ("no scale", "true scale", "estimated scale")
    }
    if all(p.is_file() for p in stars.values()):
        return stars
    folder.mkdir(parents=True, exist_ok=True)
    spec, source = data.spec, data.star.parent
    particles = read_particles(data.star)
    n = len(particles)
    alpha = real_alphas(n, spec.seed)
    truth = folder / "truth.mrc"
    truth.write_bytes((source / "truth.mrc").read_bytes())
    clean = project_again(data, np.arange(n), truth, spec.box, folder)
    writer = StreamingStackWriter(folder / "scaled.mrcs", n, spec.box, spec.pixel_size_angstrom)
    for start in range(0, n, 1000):
        rows = np.arange(start, min(n, start + 1000))
        writer.write(clean.read(rows) * alpha[rows, None, None].astype(np.float32))
    writer.close()
    (folder / "proj.mrcs").unlink()
    add_noise(
        MRCStack(folder / "scaled.mrcs"),
        folder / "particles.mrcs",
        data.noise_sd,
        spec.pixel_size_angstrom,
        spec.seed + 2000,
        NoiseModel(spec.noise, spec.noise_source),
    )
    (folder / "scaled.mrcs").unlink()
    estimated = alpha * np.exp(
        ESTIMATE_ERROR * np.random.default_rng([spec.seed, 29]).normal(size=n)
    )
    names = [f"{i + 1:06d}@particles.mrcs" for i in range(n)]
    for name, scale in (
        ("no scale", np.ones(n)),
        ("true scale", alpha),
        ("estimated scale", estimated),
    ):
        write_relion31_particles(
            stars[name],
            image_names=names,
            rotations=particles.rotations,
            shifts_angstrom=particles.shifts_angstrom,
            ctf=replace(particles.ctf, scale=scale),
            pixel_size_angstrom=spec.pixel_size_angstrom,
            box=spec.box,
            random_subset=particles.random_subset,
        )
    return stars


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, DEFAULT_SETS, argv)
    rows = []
    for spec in selected_specs(args.datasets.split(","), quick=False):
        data = make_dataset(spec, args.cache)
        stars = scaled_copy(data, args.out / "scaled" / spec.name)
        truth = stars["no scale"].parent / "truth.mrc"
        for label, star in stars.items():
            work = args.out / "runs" / spec.name / label.replace(" ", "_")
            runs = [run_cryosplat(star, work / "cryosplat")]
            if label != "estimated scale":
                runs.append(run_relion(star, work / "relion", spec.pixel_size_angstrom))
            for run in runs:
                pixel = spec.pixel_size_angstrom
                rows.append(table_row((spec.name, label), run, truth, pixel, work))
    print_table("set | STAR", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
