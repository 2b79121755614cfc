"""Image formation: RELION shift sign, CTF as a Fourier multiplication, spectra vs images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.core.ctf import CTFParams, ctf_from_params
from cryosplat.core.fourier import fft2_centered, ifft2_centered
from cryosplat.core.rotations import random_rotations
from cryosplat.model.gaussians import GaussianModel
from cryosplat.render.imaging import predict_images, predict_spectra, render_images

BOX, PIXEL = 32, 1.5


@pytest.fixture()
def model():
    return GaussianModel.random(40, BOX, PIXEL, seed=3, radius_fraction=0.2, dtype=torch.float64)


@pytest.fixture()
def views():
    return torch.tensor(random_rotations(3, seed=4), dtype=torch.float64)


def _ctf(n, seed):
    rng = np.random.default_rng(seed)
    params = CTFParams.create(
        n,
        defocus_u_angstrom=rng.uniform(5000, 15000, n),
        defocus_v_angstrom=rng.uniform(5000, 15000, n),
        defocus_angle_degrees=rng.uniform(0, 180, n),
    )
    return ctf_from_params(params, BOX, PIXEL, dtype=torch.float64)


def test_integer_shift_is_a_roll_with_relion_sign(model, views):
    shifts_px = np.array([[2, -3], [0, 5], [-4, 1]])
    with torch.no_grad():
        plain = predict_images(model, views)
        shifted = predict_images(model, views, shifts_px * PIXEL)
    for b, (ox, oy) in enumerate(shifts_px):
        # image(p) = projection(p + o): the particle moves by -o.
        expected = torch.roll(plain[b], shifts=(-int(oy), -int(ox)), dims=(0, 1))
        assert torch.allclose(shifted[b], expected, rtol=0, atol=1e-12 * plain.abs().max())


def test_ctf_is_a_fourier_multiplication_that_commutes_with_the_shift(model, views):
    ctf = _ctf(3, seed=5)
    # Whole-pixel shifts: sub-pixel ones leave an imaginary part at Nyquist that .real drops.
    shifts = torch.tensor([[1.0, -2.0], [3.0, 0.0], [-2.0, 4.0]], dtype=torch.float64) * PIXEL
    with torch.no_grad():
        plain = predict_images(model, views)
        with_ctf = predict_images(model, views, None, ctf)
        both = predict_images(model, views, shifts, ctf)
        shifted = predict_images(model, views, shifts)
    expected = ifft2_centered(fft2_centered(plain) * ctf).real
    assert torch.allclose(with_ctf, expected, rtol=0, atol=1e-12 * expected.abs().max())
    commuted = ifft2_centered(fft2_centered(shifted) * ctf).real
    assert torch.allclose(both, commuted, rtol=0, atol=1e-12 * both.abs().max())
    # A unit CTF changes nothing; the CTF is not a real-space multiplication.
    ones = predict_images(model, views, None, torch.ones(3, BOX, BOX, dtype=torch.float64))
    assert torch.allclose(ones, plain, rtol=0, atol=1e-12 * plain.abs().max())
    assert not torch.allclose(with_ctf, plain * ctf, atol=1e-3 * plain.abs().max())


def test_spectra_and_raw_tensor_versions_agree(model, views):
    ctf = _ctf(3, seed=6)
    shifts = torch.tensor([[0.7, -1.1], [0.0, 2.2], [-1.3, 0.4]], dtype=torch.float64)
    args = (model.mixture(), views)
    with torch.no_grad():
        spectra = predict_spectra(*args, shifts, ctf, BOX, PIXEL, backend="reference")
        images = render_images(*args, shifts, ctf, BOX, PIXEL)
        from_model = predict_images(model, views.numpy(), shifts.numpy(), ctf)
    assert spectra.is_complex()
    assert torch.allclose(ifft2_centered(spectra).real, images, atol=1e-12 * images.abs().max())
    assert torch.allclose(from_model, images, rtol=0, atol=1e-12 * images.abs().max())


def test_gradients_reach_shifts_rotations_and_parameters(model, views):
    shifts = torch.tensor(
        [[0.3, 0.2], [0.1, -0.4], [0.5, 0.0]], dtype=torch.float64, requires_grad=True
    )
    rot = views.clone().requires_grad_()
    images = predict_images(model, rot, shifts, _ctf(3, seed=7))
    images.square().sum().backward()
    for t in (shifts, rot, model.means, model.raw_scales, model.raw_amplitudes):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().max() > 0


def test_bad_shapes_raise(model, views):
    with pytest.raises(ValueError, match="shifts_angstrom"):
        predict_images(model, views, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="ctf"):
        predict_images(model, views, None, torch.ones(3, BOX, BOX + 1))
