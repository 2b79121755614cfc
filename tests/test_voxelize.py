"""Voxelisation of a Gaussian mixture: chunking, the ball footprint, mass and the symmetric case."""

from __future__ import annotations

import math

import pytest
import torch

from cryosplat.core.mixture import Mixture
from cryosplat.model.voxelize import footprint_voxels, voxelize_gaussians


def _mixture(n: int, box: int, pixel: float, seed: int = 0, dtype=torch.float64) -> Mixture:
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 0.5 * box * pixel
    scales = (0.6 + 2.0 * torch.rand(n, 3, generator=g, dtype=dtype)) * pixel
    quaternions = torch.randn(n, 4, generator=g, dtype=dtype)
    quaternions = quaternions / quaternions.norm(dim=-1, keepdim=True)
    amplitudes = torch.randn(n, generator=g, dtype=dtype)
    return Mixture(means, scales, quaternions, amplitudes)


def test_footprint_counts_a_ball_of_radius_plus_a_half():
    assert footprint_voxels(1) == 19  # centre, 6 faces, 12 edges (|o|² ≤ 2.25)
    for r in (3, 5, 9):
        ball = 4.0 / 3.0 * math.pi * (r + 0.5) ** 3
        assert abs(footprint_voxels(r) - ball) / ball < 0.07
        assert footprint_voxels(r) < 0.56 * (2 * r + 1) ** 3


def test_chunking_does_not_change_the_map_or_its_gradients():
    mixture = _mixture(60, 20, 1.5, seed=1)
    results = []
    for max_elements in (2**24, 300, 1):
        leaves = [t.clone().requires_grad_() for t in mixture]
        volume = voxelize_gaussians(Mixture(*leaves), 20, 1.5, max_elements=max_elements)
        probe = torch.sin(torch.arange(volume.numel(), dtype=volume.dtype)).reshape(volume.shape)
        (volume * probe).sum().backward()
        results.append((volume.detach(), [t.grad for t in leaves]))
    for volume, grads in results[1:]:
        torch.testing.assert_close(volume, results[0][0], rtol=1e-12, atol=1e-14)
        for a, b in zip(grads, results[0][1], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_sigma,lost", [(3.0, 0.03), (4.0, 0.002)])
def test_mass_is_the_amplitude_up_to_the_truncated_tail(n_sigma, lost):
    """A well-sampled Gaussian (scale 2 px) integrates to its amplitude, less the mass beyond the
    footprint (3σ in 3D: 2.9 %; 4σ: 0.1 %)."""
    pixel = 1.2
    mixture = Mixture(
        torch.tensor([[0.3, -0.7, 0.5]], dtype=torch.float64),
        torch.tensor([[2.4, 2.4, 2.4]], dtype=torch.float64),
        torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64),
        torch.tensor([5.0], dtype=torch.float64),
    )
    mass = float(voxelize_gaussians(mixture, 32, pixel, n_sigma=n_sigma).sum()) * pixel**3
    assert 5.0 * (1.0 - lost) < mass <= 5.0 * 1.0001


def test_a_gaussian_off_the_box_adds_nothing_and_gets_no_gradient():
    leaves = [t.clone().requires_grad_() for t in _mixture(3, 12, 1.0, seed=2)]
    with torch.no_grad():
        leaves[0][0] = torch.tensor([40.0, 0.0, 0.0], dtype=torch.float64)
    volume = voxelize_gaussians(Mixture(*leaves), 12, 1.0)
    volume.sum().backward()
    assert float(leaves[3].grad[0]) == 0.0
    alone = voxelize_gaussians(Mixture(*(t.detach()[1:] for t in leaves)), 12, 1.0)
    torch.testing.assert_close(volume.detach(), alone)
