"""Orthographic splatting: mass, origin, analytic forms, line integrals, Fourier slices, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryosplat.core.fourier import fft2_centered, frequency_grid_2d
from cryosplat.core.mixture import Mixture
from cryosplat.core.rotations import quaternion_to_matrix, random_rotations
from cryosplat.model.gaussians import GaussianModel
from cryosplat.render import splat, splat_fast, splat_reference

BACKENDS = [splat_reference, splat_fast]


def _random_mixture(n, box, pixel, seed, dtype=torch.float64, spread=0.25, scale=(1.0, 3.0)):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 2 * spread * box * pixel
    scales = scale[0] + (scale[1] - scale[0]) * torch.rand(n, 3, generator=g, dtype=dtype)
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    amps = 0.2 + torch.rand(n, generator=g, dtype=dtype)
    return means, scales, quats, amps


def _rotations(n, seed, dtype=torch.float64):
    return torch.tensor(random_rotations(n, seed), dtype=dtype)


@pytest.mark.parametrize("fn", BACKENDS)
@pytest.mark.parametrize("box", [64, 65])
def test_projection_integrates_to_total_amplitude(fn, box):
    pixel = 1.0
    means, scales, quats, amps = _random_mixture(
        30, box, pixel, seed=1, spread=0.1, scale=(1.5, 2.5)
    )
    rot = _rotations(6, seed=2)
    img = fn(Mixture(means, scales, quats, amps), rot, box, pixel, n_sigma=6.0)
    totals = img.sum(dim=(1, 2)) * pixel**2
    rel = (totals - amps.sum()).abs() / amps.sum()
    assert rel.max().item() < 1e-6


@pytest.mark.parametrize("fn", BACKENDS)
@pytest.mark.parametrize("box", [40, 41])
def test_gaussian_at_origin_lands_on_centre_pixel(fn, box):
    pixel = 1.0
    means = torch.zeros(1, 3, dtype=torch.float64)
    scales = torch.tensor([[1.5, 2.5, 3.5]], dtype=torch.float64)
    quats = torch.tensor([[0.9, 0.1, -0.3, 0.2]], dtype=torch.float64)
    amps = torch.ones(1, dtype=torch.float64)
    rot = _rotations(10, seed=3)
    img = fn(Mixture(means, scales, quats, amps), rot, box, pixel, n_sigma=5.0)
    coords = torch.arange(box, dtype=torch.float64)
    for im in img:
        iy, ix = np.unravel_index(int(torch.argmax(im)), im.shape)
        assert (iy, ix) == (box // 2, box // 2)
        mass = im.sum()
        cy = (im.sum(dim=1) * coords).sum() / mass
        cx = (im.sum(dim=0) * coords).sum() / mass
        assert abs(cx.item() - box // 2) < 1e-9 and abs(cy.item() - box // 2) < 1e-9


@pytest.mark.parametrize("fn", BACKENDS)
def test_isotropic_gaussian_matches_analytic_2d_gaussian(fn):
    box, pixel, sigma, amp = 40, 0.8, 2.3, 3.0
    mu = torch.tensor([[2.1, -3.7, 5.0]], dtype=torch.float64)
    scales = torch.full((1, 3), sigma, dtype=torch.float64)
    quats = torch.tensor([[0.3, 0.5, -0.1, 0.7]], dtype=torch.float64)
    rot = _rotations(4, seed=4)
    amps = torch.tensor([amp], dtype=torch.float64)
    img = fn(Mixture(mu, scales, quats, amps), rot, box, pixel, n_sigma=8.0)
    x = (torch.arange(box, dtype=torch.float64) - box // 2) * pixel
    for b in range(rot.shape[0]):
        m2 = rot[b] @ mu[0]
        d2 = (x[None, :] - m2[0]) ** 2 + (x[:, None] - m2[1]) ** 2
        expected = amp / (2 * math.pi * sigma**2) * torch.exp(-0.5 * d2 / sigma**2)
        assert torch.allclose(img[b], expected, rtol=0, atol=1e-12 * expected.max())


@pytest.mark.parametrize("fn", BACKENDS)
def test_splat_equals_line_integral_of_voxelised_mixture(fn):
    box, pixel = 40, 1.0
    # Gaussians well inside the box (in z too: the voxelised map is cut at the box).
    model = GaussianModel.random(
        25, box, pixel, seed=5, radius_fraction=0.12, scale_angstrom=1.6, dtype=torch.float64
    )
    for i in range(25):
        with torch.no_grad():
            model.raw_scales[i] += 0.3 * torch.randn(
                3, generator=torch.Generator().manual_seed(i), dtype=torch.float64
            )
    with torch.no_grad():
        vol = model.voxelize(n_sigma=6.0)  # [z, y, x]
    # Views that permute axes: A maps map (x, y, z) to image (x', y', z').
    views = {
        "identity": (torch.eye(3, dtype=torch.float64), vol.sum(0)),
        "x'=y, y'=z": (
            torch.tensor([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=torch.float64),
            vol.sum(2),
        ),
        "x'=z, y'=x": (
            torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.float64),
            vol.sum(1).T,
        ),
    }
    rot = torch.stack([v[0] for v in views.values()])
    with torch.no_grad():
        img = fn(
            model.mixture(),
            rot,
            box,
            pixel,
            n_sigma=6.0,
        )
    for k, (_, proj) in enumerate(views.values()):
        expected = proj * pixel
        assert torch.allclose(img[k], expected, rtol=0, atol=1e-6 * expected.max())


def _analytic_slice(mu2, cov2, amp, kx, ky):
    quad = cov2[0, 0] * kx * kx + 2 * cov2[0, 1] * kx * ky + cov2[1, 1] * ky * ky
    phase = -2 * math.pi * (kx * mu2[0] + ky * mu2[1])
    return amp * torch.exp(-2 * math.pi**2 * quad) * torch.polar(torch.ones_like(phase), phase)


@pytest.mark.parametrize("box", [48, 49])
def test_fft_of_splat_is_analytic_fourier_slice_without_phase_ramp(box):
    pixel = 1.1
    means = torch.tensor([[3.0, -2.0, 4.0]], dtype=torch.float64)
    scales = torch.tensor([[1.8, 2.4, 3.0]], dtype=torch.float64)
    quats = torch.tensor([[0.8, 0.2, 0.4, -0.3]], dtype=torch.float64)
    amp = torch.tensor([2.0], dtype=torch.float64)
    rot = _rotations(3, seed=6)
    img = splat_fast(Mixture(means, scales, quats, amp), rot, box, pixel, n_sigma=9.0)
    kx, ky = frequency_grid_2d(box, pixel, dtype=torch.float64)
    r3 = quaternion_to_matrix(quats)[0]
    cov = r3 @ torch.diag(scales[0] ** 2) @ r3.T
    for b in range(3):
        a = rot[b]
        mu2 = (a @ means[0])[:2]
        cov2 = (a @ cov @ a.T)[:2, :2]
        expected = _analytic_slice(mu2, cov2, amp[0], kx, ky)
        got = fft2_centered(img[b]) * pixel**2
        assert (got - expected).abs().max().item() < 1e-8 * amp.item()
        # The same splat on an image-centred grid (origin at (D-1)/2) has a phase ramp.
        x = (torch.arange(box, dtype=torch.float64) - (box - 1) / 2) * pixel
        d = torch.stack(torch.meshgrid(x, x, indexing="xy"), -1) - mu2
        inv = torch.linalg.inv(cov2)
        q = torch.einsum("...i,ij,...j->...", d, inv, d)
        wrong = amp[0] / (2 * math.pi * torch.sqrt(torch.det(cov2))) * torch.exp(-0.5 * q)
        err = (fft2_centered(wrong) * pixel**2 - expected).abs().max().item()
        if box % 2 == 0:
            assert err > 1e-2 * amp.item()
        else:
            assert err < 1e-8 * amp.item()


@pytest.mark.parametrize("fn", BACKENDS)
def test_gradcheck_float64(fn):
    box, pixel = 10, 1.0
    means, scales, quats, amps = _random_mixture(
        3, box, pixel, seed=7, spread=0.3, scale=(0.8, 1.6)
    )
    rot = _rotations(2, seed=8)
    inputs = tuple(t.clone().requires_grad_() for t in (means, scales, quats, amps, rot))

    def f(m, s, q, a, r):
        return fn(Mixture(m, s, q, a), r, box, pixel, n_sigma=3.0)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-11), (torch.float32, 1e-5)])
def test_fast_matches_reference_forward_and_gradients(dtype, tol):
    """Stated tolerance: relative to the largest value, 1e-11 in float64 and 1e-5 in float32."""
    box, pixel = 28, 1.3
    means, scales, quats, amps = _random_mixture(
        60, box, pixel, seed=9, dtype=dtype, spread=0.55, scale=(0.4, 3.5)
    )
    rot = _rotations(5, seed=10, dtype=dtype)
    weight = torch.randn(5, box, box, generator=torch.Generator().manual_seed(11), dtype=dtype)
    results = []
    for fn in BACKENDS:
        inputs = [t.clone().requires_grad_() for t in (means, scales, quats, amps, rot)]
        img = fn(Mixture(*inputs[:4]), inputs[4], box, pixel, n_sigma=3.0, max_elements=2**14)
        (img * weight).sum().backward()
        results.append((img.detach(), [t.grad for t in inputs]))
    (ref, ref_grads), (fast, fast_grads) = results
    assert (fast - ref).abs().max() <= tol * ref.abs().max()
    for g_ref, g_fast in zip(ref_grads, fast_grads, strict=True):
        assert (g_fast - g_ref).abs().max() <= tol * g_ref.abs().max()


@pytest.mark.parametrize("fn", BACKENDS)
def test_chunking_does_not_change_the_result(fn):
    box, pixel = 20, 1.0
    means, scales, quats, amps = _random_mixture(40, box, pixel, seed=12, spread=0.5)
    rot = _rotations(7, seed=13)
    big = fn(Mixture(means, scales, quats, amps), rot, box, pixel, max_elements=2**24)
    small = fn(Mixture(means, scales, quats, amps), rot, box, pixel, max_elements=500)
    assert torch.allclose(big, small, rtol=0, atol=1e-12 * big.abs().max())


def test_dispatcher_and_errors():
    means, scales, quats, amps = _random_mixture(5, 16, 1.0, seed=14)
    rot = _rotations(2, seed=15)
    ref = splat(Mixture(means, scales, quats, amps), rot, 16, 1.0, backend="reference")
    for backend in ("fast", "auto"):
        out = splat(Mixture(means, scales, quats, amps), rot, 16, 1.0, backend=backend)
        assert torch.allclose(out, ref, rtol=0, atol=1e-12 * ref.max())
    with pytest.raises(ValueError, match="backend"):
        splat(Mixture(means, scales, quats, amps), rot, 16, 1.0, backend="gpu")
    with pytest.raises(ValueError, match="rotations"):
        splat_fast(Mixture(means, scales, quats, amps), rot[:, :2], 16, 1.0)
    with pytest.raises(ValueError, match="scales"):
        splat_reference(Mixture(means, scales[:3], quats, amps), rot, 16, 1.0)


@pytest.mark.parametrize("fn", BACKENDS)
def test_gaussians_outside_the_image_and_empty_inputs(fn):
    far = torch.tensor([[500.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    scales = torch.ones(2, 3, dtype=torch.float64)
    quats = torch.tensor([[1.0, 0, 0, 0]] * 2, dtype=torch.float64)
    amps = torch.ones(2, dtype=torch.float64)
    rot = torch.eye(3, dtype=torch.float64)[None]
    img = fn(Mixture(far, scales, quats, amps), rot, 16, 1.0, n_sigma=6.0)
    assert abs(img.sum().item() - 1.0) < 1e-6
    empty = fn(Mixture(far[:0], scales[:0], quats[:0], amps[:0]), rot, 16, 1.0)
    assert empty.shape == (1, 16, 16) and empty.abs().max() == 0
