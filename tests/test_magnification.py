"""Anisotropic magnification (RELION's rlnMagMat): images seen through ``M`` made by rendering the
Gaussians through ``Mᵀ A`` with the CTF at ``M k``; relion_reconstruct given ``M`` inverts them to
the clean images' map, so does cryosplat's statistics pass, and the per-image engine predicts
them."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_aberrations import Optics, images_with  # noqa: E402

from cryosplat.io.mrc import MRCStack, read_map, write_stack
from cryosplat.io.star import read_star, write_star
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.grid.statistics import wiener_inversion
from cryosplat.reconstruct.run import check_engine_particles
from cryosplat.validation.fsc import fsc

BOX, PIXEL = 32, 1.5
MAG = np.array([[1.04, 0.03], [-0.01, 0.97]])


def images_through(model: GaussianModel, particles, mag: np.ndarray) -> np.ndarray:
    """Noise-free images of ``particles``' poses, shifts and CTF, seen through ``mag``, made as
    the aberration benchmark makes them (``bench_aberrations.images_with``): the Gaussians
    rendered through ``Mᵀ A`` (a point ``p`` of the undistorted image lands at ``Mᵀ p``), the CTF
    taken at ``M k``."""
    return images_with(model, particles, Optics("mag", mag=tuple(map(tuple, mag.tolist()))))


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    from conftest import simulate_tiny

    folder = tmp_path_factory.mktemp("magnification")
    truth = GaussianModel.random(60, BOX, PIXEL, seed=3, radius_fraction=0.25, scale_angstrom=1.2)
    star = simulate_tiny(
        folder, truth, box=BOX, pixel_size_angstrom=PIXEL, snr=math.inf, n_particles=300
    )
    clean = read_particles(star)
    n = len(clean)
    out = {"folder": folder, "star": star}
    for name, mag in (("clean", np.eye(2)), ("mag", MAG)):
        write_stack(folder / f"{name}.mrcs", images_through(truth, clean, mag), PIXEL)
        out[name] = replace(
            clean,
            stacks=[MRCStack(folder / f"{name}.mrcs")],
            stack_index=np.zeros(n, dtype=np.int64),
            image_index=np.arange(n),
            mag_matrices=None if name == "clean" else np.tile(mag, (n, 1, 1)),
        )
    return out


def test_the_renderer_through_the_identity_is_the_plain_one(sets):
    """The generator above with ``M = I`` is the simulator's own image of each particle."""
    clean = sets["clean"]
    made = clean.read_images(np.arange(len(clean)))
    simulated = read_particles(sets["star"]).read_images(np.arange(len(clean)))
    scale = float(np.abs(simulated).max())
    assert np.abs(made - simulated).max() < 2e-3 * scale


def _map(particles) -> np.ndarray:
    return wiener_inversion([accumulate(particles, config=AccumulateConfig(batch_size=40))]).numpy()


def test_the_statistics_pass_places_samples_through_the_matrix(sets):
    """Direct inversions of the sums: the images seen through ``M``, gathered through it, give
    the clean images' map; gathered as if ``M`` were the identity, they do not."""
    clean = _map(sets["clean"])
    through = fsc(_map(sets["mag"]), clean)[1 : BOX // 2]
    ignored = fsc(_map(replace(sets["mag"], mag_matrices=None)), clean)[1 : BOX // 2]
    # Measured 0.996 or more to shell 13; the last two lose the samples M carries past Nyquist.
    assert through[:-2].min() > 0.995, through
    assert ignored.min() < 0.8, ignored


def test_the_per_image_engine_predicts_the_images_through_the_matrix(sets):
    """The per-image engine's forward model (its batch's poses and CTF through ``M``) predicts
    the images seen through ``M`` from the truth; as if ``M`` were the identity, it does not."""
    from cryosplat.reconstruct.splat.image_batches import image_batch, predict

    truth = GaussianModel.load(sets["folder"] / "truth.npz")
    rows = np.arange(12)
    for particles, close in ((sets["mag"], True), (replace(sets["mag"], mag_matrices=None), False)):
        data, rot, shifts, ctf, *_ = image_batch(particles, rows, "cpu", 1.0)
        with torch.no_grad():
            predicted = predict(truth, rot, shifts, ctf, "reference")
        error = float((predicted - data).abs().pow(2).sum() / data.abs().pow(2).sum())
        # Measured: 1.4e-4 of the images' power (float32 images) with M, 0.31 without.
        assert (error < 1e-3) if close else (error > 0.05), error
    check_engine_particles(sets["mag"], "splat")


def test_relion_reconstruct_inverts_the_same_images_through_the_same_matrix(sets, relion_available):
    """The generator is RELION's model: relion_reconstruct given ``rlnMagMat`` makes the clean
    images' map from the images seen through it."""
    folder = sets["folder"]
    blocks = read_star(sets["star"])
    optics = {c: list(blocks["optics"].get_str(c)) for c in blocks["optics"].columns}
    particles = {c: list(blocks["particles"].get_str(c)) for c in blocks["particles"].columns}
    n = len(particles["rlnImageName"])
    maps = {}
    for name, columns in (
        ("clean", {}),
        ("mag", {f"rlnMagMat{i}{j}": [MAG[i, j]] for i in (0, 1) for j in (0, 1)}),
        ("ignored", {}),
    ):
        stack = folder / ("clean.mrcs" if name == "clean" else "mag.mrcs")
        rows = dict(particles, rlnImageName=[f"{i + 1}@{stack}" for i in range(n)])
        path = folder / f"{name}.star"
        write_star(path, {"optics": {**optics, **columns}, "particles": rows})
        out = folder / f"relion_{name}.mrc"
        subprocess.run(
            ["relion_reconstruct", "--i", str(path), "--o", str(out), "--ctf"],
            check=True,
            capture_output=True,
            cwd=folder,
        )
        maps[name] = read_map(out)[0]
    through = fsc(maps["mag"], maps["clean"])[1 : BOX // 2]
    ignored = fsc(maps["ignored"], maps["clean"])[1 : BOX // 2]
    assert through[:-2].min() > 0.99, through
    assert ignored.min() < 0.8, ignored
    # And cryosplat reads the same STAR into the same matrices.
    np.testing.assert_allclose(read_particles(folder / "mag.star").mag_matrices[0], MAG)


def test_the_thon_ring_check_takes_the_ctf_through_the_matrix(sets):
    """Seen through ``M = 1.02 I`` the CTF at ``k`` is the plain one at ``1.02 k``."""
    from cryosplat.particles.thon_rings import _ctf2_on_rings

    plain = replace(sets["mag"], mag_matrices=None)
    scaled = replace(plain, mag_matrices=np.tile(1.02 * np.eye(2), (len(plain), 1, 1)))
    rows = np.arange(5)
    k = np.tile(np.linspace(0.02, 0.3, 15), (5, 1))
    np.testing.assert_allclose(
        _ctf2_on_rings(scaled, rows, k), _ctf2_on_rings(plain, rows, 1.02 * k), atol=1e-10
    )
    assert np.abs(_ctf2_on_rings(scaled, rows, k) - _ctf2_on_rings(plain, rows, k)).max() > 0.1
