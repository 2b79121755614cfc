"""Statistics restated on the unpadded grid: the same loss for compact maps, 8× smaller grids."""

from __future__ import annotations

import numpy as np
import torch
from test_statistics import simulate_particles

from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.grid.fit import GridFitConfig, fit_gaussians
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.grid.loss import GridLoss
from cryosplat.validation.fsc import fsc

BOX, PIXEL = 32, 3.0


def _blob(seed: int, radius_fraction: float) -> torch.Tensor:
    model = GaussianModel.random(
        30, BOX, PIXEL, seed=seed, radius_fraction=radius_fraction, scale_angstrom=2.0 * PIXEL
    )
    return model.voxelize().detach().double()


def test_unpadded_statistics_give_the_same_loss_and_gradient(tmp_path):
    particles, _, _ = simulate_particles(tmp_path, n=60, box=BOX, pixel=PIXEL, seed=2)
    stats = accumulate(particles)
    small = stats.unpadded()
    assert small.pad == 1 and small.insertion_pad == 2
    assert small.weights.shape == (BOX, BOX, BOX // 2 + 1)
    assert float(small.weights.min()) >= 0.0
    padded = GridLoss(stats, dtype=torch.float64)
    unpadded = GridLoss(small, dtype=torch.float64)
    for seed in range(3):
        volume = _blob(seed, 0.2).requires_grad_(True)
        a = padded.data_term_and_spectrum(volume)[0]
        (ga,) = torch.autograd.grad(a, volume)
        b = unpadded.data_term_and_spectrum(volume)[0]
        (gb,) = torch.autograd.grad(b, volume)
        assert abs(float(b.detach() - a.detach())) < 0.01 * abs(float(a.detach()))
        cosine = float((ga * gb).sum() / (ga.norm() * gb.norm()))
        assert cosine > 0.99
    # The linear term is exact: the loss of V minus that of -V is -4 Re(conj X B) on both grids.
    volume = _blob(7, 0.2)
    lin_padded = padded(volume) - padded(-volume)
    lin_unpadded = unpadded(volume) - unpadded(-volume)
    np.testing.assert_allclose(float(lin_unpadded), float(lin_padded), rtol=1e-4)


def test_statistics_padded_three_times_restate_on_the_unpadded_grid(tmp_path):
    """``--pad 3`` gathers to ``D/2 − 2/3``, past the unpadded grid's ``D/2 − 1``: the data power
    of the frequencies between is dropped with them (it raised a shape error at every box above
    ``unpadded_above_box`` until round 2 session 55); the loss's linear term stays within 0.1 % of
    the padded one's."""
    particles, _, _ = simulate_particles(tmp_path, n=40, box=BOX, pixel=PIXEL, seed=3)
    stats = accumulate(particles, config=AccumulateConfig(pad=3))
    assert stats.max_radius > BOX / 2 - 1
    small = stats.unpadded()
    assert small.max_radius == BOX / 2 - 1
    assert small.power.shape == (int(small.max_radius**2) + 1,)
    torch.testing.assert_close(small.power, stats.power[: small.power.shape[0]])
    padded = GridLoss(stats, dtype=torch.float64)
    unpadded = GridLoss(small, dtype=torch.float64)
    volume = _blob(5, 0.2)
    lin_padded = padded(volume) - padded(-volume)
    lin_unpadded = unpadded(volume) - unpadded(-volume)
    np.testing.assert_allclose(float(lin_unpadded), float(lin_padded), rtol=1e-3)


def test_a_fit_on_unpadded_statistics_matches_the_padded_fit(tmp_path):
    particles, truth, _ = simulate_particles(tmp_path, n=120, box=BOX, pixel=PIXEL, seed=4)
    stats = accumulate(particles)
    config = GridFitConfig(n_gaussians=150, stage_fractions=(0.5, 1.0), stage_steps=(30, 20))
    maps = {}
    for limit in (None, 0):
        cfg = GridFitConfig(**{**config.__dict__, "unpadded_above_box": limit})
        maps[limit] = fit_gaussians(stats, cfg).voxelize().detach().double().numpy()
    padded = fsc(maps[None], truth)[1 : BOX // 4]
    unpadded = fsc(maps[0], truth)[1 : BOX // 4]
    assert unpadded.mean() > padded.mean() - 0.02
