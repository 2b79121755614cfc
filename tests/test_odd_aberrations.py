"""Antisymmetric aberrations (beam tilt, coma, trefoil): RELION's Zernike terms, the beam tilt's
phase, the images' correction, and relion_reconstruct taking out what cryosplat puts in."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest
import torch

from cryosplat.core.aberrations import (
    demodulate_images,
    even_index_to_mn,
    insert_beam_tilt,
    odd_index_to_mn,
    odd_phase,
    zernike_cartesian,
)
from cryosplat.core.ctf import electron_wavelength_angstrom
from cryosplat.validation.fsc import fsc

RNG = np.random.default_rng(11)
X, Y = RNG.normal(size=50) * 0.2, RNG.normal(size=50) * 0.2


def test_index_orders_are_relions():
    assert [odd_index_to_mn(i) for i in range(12)] == [
        (-1, 1), (1, 1), (-3, 3), (-1, 3), (1, 3), (3, 3),
        (-5, 5), (-3, 5), (-1, 5), (1, 5), (3, 5), (5, 5),
    ]  # fmt: skip
    assert [even_index_to_mn(i) for i in range(9)] == [
        (0, 0), (-2, 2), (0, 2), (2, 2), (-4, 4), (-2, 4), (0, 4), (2, 4), (4, 4),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="-1"):
        odd_index_to_mn(-1)


@pytest.mark.parametrize(
    "m, n, closed",
    [
        (-1, 1, lambda x, y: y),
        (1, 1, lambda x, y: x),
        (-3, 3, lambda x, y: 3 * x**2 * y - y**3),
        (3, 3, lambda x, y: x**3 - 3 * x * y**2),
        (1, 3, lambda x, y: (3 * (x**2 + y**2) - 2) * x),
        (-1, 3, lambda x, y: (3 * (x**2 + y**2) - 2) * y),
        (0, 2, lambda x, y: 2 * (x**2 + y**2) - 1),
        (2, 2, lambda x, y: x**2 - y**2),
        (-2, 2, lambda x, y: 2 * x * y),
    ],
)
def test_zernike_polynomials_have_their_closed_forms(m, n, closed):
    np.testing.assert_allclose(zernike_cartesian(m, n, X, Y), closed(X, Y), atol=1e-12)


def test_beam_tilt_phase_is_the_coma_of_a_tilted_beam():
    """φ(k) = -2π Cs λ² |k|² (k · t): Cs in Å, the tilt in rad."""
    tilt_mrad = np.array([0.7, -0.4])
    cs_mm, wavelength = 2.7, electron_wavelength_angstrom(300.0)
    coeffs = insert_beam_tilt([], *tilt_mrad, cs_mm, wavelength)
    expected = (
        -2 * math.pi * cs_mm * 1e7 * wavelength**2 * (X**2 + Y**2)
        * (X * tilt_mrad[0] + Y * tilt_mrad[1]) * 1e-3
    )  # fmt: skip
    np.testing.assert_allclose(odd_phase(coeffs, X, Y), expected, rtol=1e-8)
    kept = insert_beam_tilt([0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 1.5], *tilt_mrad, cs_mm, wavelength)
    assert kept[2] == 5.0 and kept[6] == 1.5


def test_phase_is_odd():
    coeffs = RNG.normal(size=12)
    np.testing.assert_allclose(odd_phase(coeffs, -X, -Y), -odd_phase(coeffs, X, Y), atol=1e-12)


def test_demodulation_undoes_modulation_and_keeps_power():
    images = RNG.normal(size=(4, 20, 20)).astype(np.float32)
    coeffs = np.zeros((4, 6))
    coeffs[1:] = insert_beam_tilt([0, 0, 30.0], 1.5, -0.8, 2.7, 0.0197)
    coeffs[3, 2] = -60.0
    pixel = np.array([1.0, 1.0, 1.2, 0.9])
    made = demodulate_images(images, coeffs, pixel, modulate=True)
    assert made.dtype == np.float32
    np.testing.assert_array_equal(made[0], images[0])
    assert np.abs(made[1:] - images[1:]).max() > 0.1
    # A unit-modulus factor keeps every Fourier amplitude (away from Nyquist's line).
    a, b = np.abs(np.fft.rfft2(images)), np.abs(np.fft.rfft2(made))
    np.testing.assert_allclose(b[:, 1:9, :9], a[:, 1:9, :9], rtol=1e-4, atol=1e-4)
    back = demodulate_images(made, coeffs, pixel)
    np.testing.assert_allclose(back[:, :, :], images, atol=2e-3)
    with pytest.raises(ValueError, match="shape"):
        demodulate_images(images[0], coeffs[0], 1.0)


def test_read_images_take_the_aberrations_out(tmp_path, small_stack):
    from cryosplat.io.star import write_star
    from cryosplat.particles.relion import particles_from_star

    path, images = small_stack
    tilt = (1.0, 0.5)
    coeffs = insert_beam_tilt([], *tilt, 2.7, electron_wavelength_angstrom(300.0))
    made = demodulate_images(images, np.tile(coeffs, (6, 1)), 2.0, modulate=True)
    from cryosplat.io.mrc import write_stack

    write_stack(tmp_path / "made.mrcs", made, 2.0)
    optics = {
        "rlnOpticsGroup": [1],
        "rlnImagePixelSize": [2.0],
        "rlnImageSize": [16],
        "rlnVoltage": [300.0],
        "rlnSphericalAberration": [2.7],
        "rlnAmplitudeContrast": [0.1],
        "rlnBeamTiltX": [tilt[0]],
        "rlnBeamTiltY": [tilt[1]],
    }
    parts = {
        "rlnImageName": [f"{i + 1}@made.mrcs" for i in range(6)],
        "rlnOpticsGroup": [1] * 6,
        "rlnDefocusU": [10000.0] * 6,
    }
    write_star(tmp_path / "p.star", {"optics": optics, "particles": parts})
    ps = particles_from_star(tmp_path / "p.star")
    np.testing.assert_allclose(ps.read_images([4, 1]), images[[4, 1]], atol=2e-4)


def test_relion_reconstruct_takes_out_what_cryosplat_puts_in(tmp_path, relion_available):
    """Noise-free images with a beam tilt and a trefoil put in by :func:`demodulate_images`:
    relion_reconstruct given the aberrations in data_optics makes the map of the clean images;
    without them it does not. RELION's convention, sign and Zernike order are cryosplat's."""
    from conftest import simulate_tiny

    from cryosplat.io.mrc import read_map, write_stack
    from cryosplat.io.star import read_star, write_star
    from cryosplat.model.gaussians import GaussianModel

    truth = GaussianModel.random(60, 32, 1.5, seed=3, radius_fraction=0.25, scale_angstrom=1.2)
    star = simulate_tiny(tmp_path, truth, box=32, pixel_size_angstrom=1.5, snr=math.inf)
    blocks = read_star(star)
    names = blocks["particles"].get_str("rlnImageName")
    stack = star.parent / names[0].split("@")[1]
    from cryosplat.io.mrc import MRCStack

    clean = MRCStack(stack).read(np.arange(len(names)))
    tilt, trefoil = (1.2, -0.7), 40.0
    coeffs = insert_beam_tilt([0, 0, trefoil], *tilt, 2.7, electron_wavelength_angstrom(300.0))
    write_stack(
        stack.parent / "made.mrcs",
        demodulate_images(clean, coeffs[None].repeat(len(clean), 0), 1.5, True),
        1.5,
    )

    def table(block):
        return {c: list(block.get_str(c)) for c in block.columns}

    optics, particles = table(blocks["optics"]), table(blocks["particles"])
    particles["rlnImageName"] = [n.split("@")[0] + "@made.mrcs" for n in names]
    maps = {}
    for label, extra in (("with", True), ("without", False)):
        o = dict(optics)
        if extra:
            o.update(
                rlnBeamTiltX=[tilt[0]], rlnBeamTiltY=[tilt[1]], rlnOddZernike=[f"[0,0,{trefoil}]"]
            )
        write_star(star.parent / f"{label}.star", {"optics": o, "particles": particles})
    for label, path in (
        ("clean", star),
        ("with", star.parent / "with.star"),
        ("without", star.parent / "without.star"),
    ):
        out = tmp_path / f"{label}.mrc"
        subprocess.run(
            ["relion_reconstruct", "--i", str(path), "--o", str(out), "--ctf", "--angpix", "1.5"],
            check=True, capture_output=True, cwd=star.parent,
        )  # fmt: skip
        maps[label] = read_map(out)[0]
    with_ = fsc(maps["with"], maps["clean"])[1:16]
    without = fsc(maps["without"], maps["clean"])[1:16]
    # The last shell holds the Nyquist lines, which a real image cannot carry a phase on.
    assert with_[:-1].min() > 0.999, with_
    assert with_[-1] > 0.99, with_
    assert without.min() < 0.9, without


def test_the_gather_takes_them_out_as_read_images_does(tmp_path, tiny_set):
    """The statistics pass reads images as stored and multiplies their transforms by the
    correction on the device: its sums equal those of the clean images, as reading them
    corrected does."""
    from dataclasses import replace

    from cryosplat.io.mrc import MRCStack, write_stack
    from cryosplat.particles.read import read_particles
    from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate

    clean = read_particles(tiny_set)
    n = len(clean)
    images = clean.read_images(np.arange(n))
    coeffs = np.zeros((n, 6))
    coeffs[::2] = insert_beam_tilt([0, 0, 2000.0], 3.0, -2.0, 2.7, 0.0197)
    coeffs[1::3, 4] = -1500.0
    made = demodulate_images(images, coeffs, clean.pixel_size_angstrom, modulate=True)
    write_stack(tmp_path / "made.mrcs", made, clean.pixel_size_angstrom)
    aberrated = replace(
        clean,
        stacks=[MRCStack(tmp_path / "made.mrcs")],
        stack_index=np.zeros(n, dtype=np.int64),
        image_index=np.arange(n),
        odd_zernike=coeffs,
    )
    np.testing.assert_allclose(aberrated.read_images([3, 7]), images[[3, 7]], atol=1e-4)
    config = AccumulateConfig(batch_size=50)
    ours, theirs = accumulate(aberrated, config=config), accumulate(clean, config=config)
    assert torch.equal(ours.weights, theirs.weights)
    scale = float(theirs.data.abs().max())
    assert float((ours.data - theirs.data).abs().max()) < 1e-4 * scale
    ignored = accumulate(replace(aberrated, odd_zernike=None), config=config)
    assert float((ignored.data - theirs.data).abs().max()) > 0.05 * scale
