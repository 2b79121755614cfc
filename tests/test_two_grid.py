"""Broad Gaussians sampled at twice the voxel size (model.two_grid, core.coarse_spectrum): the
fine grid's spectrum they give is the one of sampling them on the fine grid."""

from __future__ import annotations

import math

import pytest
import torch

from cryosplat.core.coarse_spectrum import (
    add_coarse_spectrum,
    coarse_offset,
    coarse_spectrum_adjoint,
    embed_coarse_spectrum,
)
from cryosplat.core.mixture import Mixture
from cryosplat.model.two_grid import (
    COARSE_MIN_SCALE_PIXELS,
    coarse_rows,
    footprint_saving,
    voxelize_two_grids,
)
from cryosplat.model.voxelize import voxelize_gaussians


def _mixture(n, box, pixel, scale_pixels, seed, spread=0.5):
    """``n`` Gaussians with means within ``± spread / 2`` of the box, scales in ``scale_pixels``."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5) * spread * box * pixel
    low, high = scale_pixels
    scales = (low + (high - low) * torch.rand(n, 3, generator=g, dtype=torch.float64)) * pixel
    quaternions = torch.randn(n, 4, generator=g, dtype=torch.float64)
    quaternions = quaternions / quaternions.norm(dim=-1, keepdim=True)
    amplitudes = torch.rand(n, generator=g, dtype=torch.float64) + 0.5
    return Mixture(means, scales, quaternions, amplitudes)


def test_coarse_offset_puts_the_two_origins_on_one_point():
    for box in (14, 16, 42, 56, 100):
        d, c = box // 2, coarse_offset(box)
        assert 2 * (d // 2) + c == box // 2  # coarse origin voxel d//2 is fine voxel box//2
        assert c + 2 * (d - 1) <= box - 1  # every coarse voxel lies in the fine box
    with pytest.raises(ValueError, match="even box"):
        coarse_offset(15)


@pytest.mark.parametrize("box,pad", [(32, 2), (28, 1), (42, 2), (22, 1)])
def test_broad_gaussians_on_the_coarse_grid_give_the_fine_grids_spectrum(box, pad):
    """Broad Gaussians near the centre voxelised on the coarse grid and taken to the fine
    spectrum: within 5e-3 of the spectrum's peak of the Gaussians themselves (sampled on the fine
    grid with a footprint of 7σ), closer than the fit's own fine sampling with its 3σ footprint
    (box 42 has an odd coarse box, box 22 with pad 1 an odd coarse padded size)."""
    pixel, size = 2.0, pad * box
    mixture = _mixture(6, box, pixel, (COARSE_MIN_SCALE_PIXELS, 3.0), seed=box, spread=0.15)
    truth = torch.fft.rfftn(voxelize_gaussians(mixture, box, pixel, n_sigma=7.0), s=(size,) * 3)
    fine = torch.fft.rfftn(voxelize_gaussians(mixture, box, pixel, n_sigma=3.0), s=(size,) * 3)
    two = voxelize_two_grids(mixture, box, pixel, n_sigma=3.0)
    assert two.coarse is not None and float(two.fine.abs().max()) == 0.0
    spectrum = torch.fft.rfftn(two.fine, s=(size,) * 3)
    coarse = torch.fft.rfftn(two.coarse, s=(size // 2,) * 3)
    add_coarse_spectrum(spectrum, coarse, coarse_offset(box))

    def error(s):
        return float((s - truth).abs().max() / truth.abs().max())

    assert error(spectrum) < 5e-3
    assert error(spectrum) < error(fine)
    # the wrong offset (half a coarse voxel off) is caught
    wrong = torch.fft.rfftn(two.fine, s=(size,) * 3)
    add_coarse_spectrum(wrong, coarse, 1 - coarse_offset(box))
    assert error(wrong) > 0.05


def test_narrow_gaussians_stay_on_the_fine_grid():
    box, pixel = 32, 1.5
    narrow = _mixture(5, box, pixel, (0.4, 2.0), seed=1)
    broad = _mixture(4, box, pixel, (2.5, 3.0), seed=2)
    mixture = Mixture(*(torch.cat([a, b]) for a, b in zip(narrow, broad, strict=True)))
    wide = coarse_rows(mixture.scales, pixel, box)
    assert wide.tolist() == [False] * 5 + [True] * 4
    two = voxelize_two_grids(mixture, box, pixel)
    torch.testing.assert_close(two.fine, voxelize_gaussians(narrow, box, pixel))
    torch.testing.assert_close(two.coarse, voxelize_gaussians(broad, box // 2, 2 * pixel))
    assert not bool(coarse_rows(mixture.scales, pixel, 14).any())  # too small a box for two
    saving = footprint_saving(broad.scales, pixel, 3.0)
    ball = 4.0 * math.pi / 3.0  # radii 8-9 voxels on the fine grid, 4-5 on the coarse one
    assert 4 * ball * (8.5**3 - 5.5**3) <= saving <= 4 * ball * (9.5**3 - 4.5**3)
    assert voxelize_two_grids(mixture, box, pixel, min_saving=saving * 0.99).coarse is not None
    kept = voxelize_two_grids(mixture, box, pixel, min_saving=saving * 1.01)
    assert kept.coarse is None
    torch.testing.assert_close(kept.fine, voxelize_gaussians(mixture, box, pixel))


@pytest.mark.parametrize("size", [16, 10, 12])
def test_the_in_place_add_and_its_adjoint_match_the_autograd_twin(size):
    g = torch.Generator().manual_seed(size)
    q = size // 2
    coarse = torch.randn(q, q, q // 2 + 1, dtype=torch.complex128, generator=g)
    for offset in (0, 1):
        placed = torch.zeros(size, size, size // 2 + 1, dtype=torch.complex128)
        add_coarse_spectrum(placed, coarse, offset)
        leaf = coarse.clone().requires_grad_()
        embedded = embed_coarse_spectrum(leaf, size, offset)
        torch.testing.assert_close(placed, embedded.detach())
        probe = torch.randn(embedded.shape, dtype=torch.complex128, generator=g)
        (probe.conj() * embedded).real.sum().backward()
        torch.testing.assert_close(coarse_spectrum_adjoint(probe, offset), leaf.grad)


@pytest.mark.parametrize("pad", [2, 1])
def test_the_gridded_loss_of_two_grids_is_the_loss_of_one(tmp_path, pad):
    """The fit's loss, and its gradient, for a mixture with broad Gaussians: the same whether
    they are sampled on the fine grid or on the coarse one (to 1e-3 of its data term)."""
    from test_statistics import simulate_particles

    from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
    from cryosplat.reconstruct.grid.loss import GridLoss

    box, pixel = 32, 3.0
    particles = simulate_particles(tmp_path, n=40, box=box, pixel=pixel, noise=1.0, seed=3)[0]
    stats = accumulate(particles, config=AccumulateConfig(pad=pad))
    stats = stats if pad == 2 else stats.unpadded()
    loss = GridLoss(stats, 1.0, True, "cpu", dtype=torch.float64)
    narrow = _mixture(8, box, pixel, (0.5, 1.0), seed=5, spread=0.3)
    broad = _mixture(5, box, pixel, (2.5, 3.0), seed=6, spread=0.3)
    mixture = Mixture(*(torch.cat([a, b]) for a, b in zip(narrow, broad, strict=True)))
    results = []
    for two in (False, True):
        leaves = [t.clone().requires_grad_() for t in mixture]
        if two:
            volume = voxelize_two_grids(Mixture(*leaves), box, pixel)
            assert volume.coarse is not None
        else:
            volume = voxelize_gaussians(Mixture(*leaves), box, pixel)
        value = loss.data_term_and_spectrum(volume)[0]
        value.backward()
        results.append((float(value.detach()), leaves[0].grad.clone(), leaves[3].grad.clone()))
    (one, g_mean, g_amp), (two, g_mean2, g_amp2) = results
    assert abs(two - one) < 1e-3 * abs(one)
    for a, b in ((g_mean, g_mean2), (g_amp, g_amp2)):
        assert float((a - b).norm() / a.norm()) < 1e-2


@pytest.mark.parametrize("symmetry", ["D2", "C3"])
def test_symmetric_models_on_two_grids(symmetry):
    """A symmetric model's map on two grids (the copies gathered on each grid for D2, whose
    operators move voxels onto voxels; the expanded Gaussians for C3) has the spectrum of its
    map on one grid."""
    from cryosplat.model.gaussians import GaussianModel
    from cryosplat.reconstruct.grid.parameters import FitParameters

    box, pixel, size = 32, 2.0, 64
    narrow = _mixture(6, box, pixel, (0.5, 1.0), seed=11, spread=0.3)
    broad = _mixture(4, box, pixel, (2.5, 3.0), seed=12, spread=0.3)
    parts = [torch.cat([a, b]).float() for a, b in zip(narrow, broad, strict=True)]
    parts[3] = parts[3] * torch.tensor([1.0] * 6 + [-0.5] * 4)
    model = GaussianModel(*parts, box, pixel, symmetry, signed=True)
    params = FitParameters(model, "cpu")
    with torch.no_grad():
        one = params.voxelize(box, pixel, 3.0)
        two = params.voxelize(box, pixel, 3.0, coarse_min_saving=0.0)
    assert one.coarse is None and two.coarse is not None
    reference = torch.fft.rfftn(one.fine, s=(size,) * 3)
    spectrum = torch.fft.rfftn(two.fine, s=(size,) * 3)
    add_coarse_spectrum(spectrum, torch.fft.rfftn(two.coarse, s=(size // 2,) * 3), two.offset)
    assert float((spectrum - reference).abs().max() / reference.abs().max()) < 5e-3
