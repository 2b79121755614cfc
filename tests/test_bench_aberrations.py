"""The aberration benchmark's sets (``benchmarks/bench_aberrations.py``): what its STAR records is
what its images were made with, as cryosplat reads it back."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_aberrations import SETS, Optics, images_with, make_set  # noqa: E402

from cryosplat.core.aberrations import insert_beam_tilt  # noqa: E402
from cryosplat.core.ctf import ctf_from_params, electron_wavelength_angstrom  # noqa: E402
from cryosplat.model.gaussians import GaussianModel  # noqa: E402
from cryosplat.particles.read import read_particles  # noqa: E402
from cryosplat.render.imaging import predict_images  # noqa: E402


def test_plain_optics_make_the_plain_images(tiny_set):
    particles = read_particles(tiny_set)
    model = GaussianModel.load(tiny_set.parent.parent / "truth.npz")
    ctf = ctf_from_params(particles.ctf, particles.box, particles.pixel_size_angstrom)
    with torch.no_grad():
        plain = predict_images(model, particles.rotations, particles.shifts_angstrom, ctf).numpy()
    made = images_with(model, particles, Optics("plain"))
    assert np.abs(made - plain).max() < 1e-4 * np.abs(plain).max()
    assert Optics("plain").star_columns() == {}


def test_the_star_records_what_the_images_were_made_with(tmp_path, tiny_set, monkeypatch):
    import bench_aberrations

    sim = tmp_path / "sim"
    sim.mkdir()
    for f in tiny_set.parent.iterdir():
        (sim / f.name).symlink_to(f)
    monkeypatch.setattr(bench_aberrations, "MODEL", tiny_set.parent.parent / "truth.npz")
    monkeypatch.setattr(
        bench_aberrations,
        "model_from_atoms",
        lambda path, box, pixel: GaussianModel.load(path),
    )
    everything = next(s for s in SETS if s.name == "all")
    with_star, without_star = make_set(tmp_path, everything, math.inf, 0)
    given = read_particles(with_star)
    bare = read_particles(without_star)
    assert bare.odd_zernike is None and bare.mag_matrices is None and bare.ctf.even_zernike is None
    odd = insert_beam_tilt(
        everything.odd, *everything.tilt_mrad, 2.7, electron_wavelength_angstrom(300)
    )
    np.testing.assert_allclose(given.odd_zernike[0], odd, rtol=1e-5)
    np.testing.assert_allclose(given.ctf.even_zernike[0], everything.even)
    np.testing.assert_allclose(given.mag_matrices[0], everything.mag)
    # The stack holds the images made through those optics (noise-free here).
    model = GaussianModel.load(tiny_set.parent.parent / "truth.npz")
    made = images_with(model, bare, everything)
    stored = bare.read_images(np.arange(5))
    assert np.abs(stored - made[:5]).max() < 1e-5 * np.abs(made).max()
