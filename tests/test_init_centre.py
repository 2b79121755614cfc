"""The random initial model's ball put on the half set's own low-resolution density
(reconstruct/grid/init_centre.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_statistics import simulate_particles

from cryosplat.core.padded_transform import volume_to_padded_ft
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.config import ReconstructConfig
from cryosplat.reconstruct.grid.fit import random_start
from cryosplat.reconstruct.grid.fit_config import GridFitConfig
from cryosplat.reconstruct.grid.init_centre import (
    MIN_RADIUS_FRACTION,
    MIN_SHIFT_FRACTION,
    RADIUS_PER_GYRATION,
    ball_from_statistics,
    initial_centre_angstrom,
    initial_radius_fraction,
    molecule_gyration_fraction,
)
from cryosplat.reconstruct.grid.statistics import FourierStatistics
from cryosplat.reconstruct.splat.runner import initial_models

BOX, PAD, PIXEL = 32, 2, 3.0


def _blob(centre_xyz, box: int = BOX, sigma: float = 2.5) -> torch.Tensor:
    z, y, x = np.indices((box,) * 3) - box // 2
    cx, cy, cz = centre_xyz
    r2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
    return torch.as_tensor(np.exp(-0.5 * r2 / sigma**2))


def _statistics(volume: torch.Tensor, noise: float = 0.0, seed: int = 0) -> FourierStatistics:
    """Statistics whose direct inversion is ``volume`` (``W`` = 1 everywhere), plus white noise
    of ``noise`` times the data's largest coefficient."""
    data = volume_to_padded_ft(volume, PAD, PIXEL, gridding_correction=True, half=True)
    if noise:
        rng = torch.Generator().manual_seed(seed)
        scale = noise * float(data.abs().max())
        data = data + scale * torch.randn(data.shape, dtype=data.dtype, generator=rng)
    weights = torch.ones(data.shape, dtype=torch.float64)
    max_radius = BOX / 2 - 1
    power = torch.ones(int(max_radius**2) + 1, dtype=torch.float64)
    return FourierStatistics(weights, data, BOX, PAD, PIXEL, 100, power, max_radius)


def test_an_off_centre_molecule_is_found_in_either_contrast():
    blob = _blob((4, -3, 2))
    for sign in (1.0, -1.0):
        centre = initial_centre_angstrom(_statistics(sign * blob), 0.3)
        np.testing.assert_allclose(centre / PIXEL, [4, -3, 2], atol=0.5)


def test_noise_spread_over_the_box_does_not_pull_the_centre_in():
    centre = initial_centre_angstrom(_statistics(_blob((7, 0, 0)), noise=0.002, seed=4), 0.3)
    assert centre[0] / PIXEL == pytest.approx(7.0, abs=1.0)
    assert np.abs(centre[1:] / PIXEL).max() < 1.0


def test_a_molecule_near_the_centre_or_a_symmetric_model_keeps_the_ball_centred():
    near = 0.8 * MIN_SHIFT_FRACTION * BOX
    assert not initial_centre_angstrom(_statistics(_blob((near, 0, 0))), 0.3).any()
    assert not initial_centre_angstrom(_statistics(_blob((4, -3, 2))), 0.3, "C2").any()


def test_the_ball_stays_inside_the_box():
    centre = initial_centre_angstrom(_statistics(_blob((11, 0, 0))), 0.3)
    assert np.linalg.norm(centre / PIXEL) == pytest.approx((0.5 - 0.3) * BOX, rel=1e-6)
    with pytest.raises(ValueError, match="radius_fraction"):
        initial_centre_angstrom(_statistics(_blob((6, 0, 0))), 0.0)


def test_the_random_start_is_drawn_about_that_centre():
    stats = _statistics(_blob((4, -3, 2)))
    config = GridFitConfig(n_gaussians=2000, seed=3)
    model = random_start(stats, config, stats.crop(16))
    mean = model.means.detach().double().mean(dim=0).numpy() / PIXEL
    np.testing.assert_allclose(mean, [4, -3, 2], atol=1.0)
    assert (model.amplitudes < 0).sum() == round(config.negative_fraction * 2000)
    centred_stats = _statistics(_blob((0, 0, 0)))
    centred = random_start(centred_stats, config, centred_stats.crop(16))
    assert centred.means.detach().double().mean(dim=0).abs().max() / PIXEL < 0.5


def test_a_random_model_about_a_centre_draws_the_same_map_moved():
    model = GaussianModel.random(40, BOX, PIXEL, seed=2, radius_fraction=0.15)
    moved = GaussianModel.random(
        40, BOX, PIXEL, seed=2, radius_fraction=0.15, centre_angstrom=[2 * PIXEL, -PIXEL, 3 * PIXEL]
    )
    with torch.no_grad():
        a, b = model.voxelize().numpy(), moved.voxelize().numpy()
    np.testing.assert_allclose(np.roll(a, (3, -1, 2), axis=(0, 1, 2)), b, atol=1e-6 * a.max())
    assert moved.signed == model.signed and len(moved) == len(model)
    with pytest.raises(ValueError, match="x, y, z"):
        GaussianModel.random(40, BOX, PIXEL, centre_angstrom=np.zeros(2))


def test_the_per_image_engine_starts_each_half_about_its_own_centre(tmp_path):
    """``--engine splat`` reads the same centre (on a quarter of the box) for its random starts."""
    stats = _statistics(_blob((4, -3, 2)))
    centre, radius = ball_from_statistics(stats, 0.3, from_data=False)
    assert radius == 0.3
    np.testing.assert_allclose(centre / PIXEL, [4, -3, 2], atol=0.7)
    particles, *_ = simulate_particles(tmp_path, n=8, box=BOX, pixel=PIXEL)
    config = ReconstructConfig(engine="splat")
    models = initial_models(particles, config, 2000, "cpu", [(centre, 0.3), (np.zeros(3), 0.3)])
    means = [m.means.detach().double().mean(dim=0).numpy() / PIXEL for m in models]
    np.testing.assert_allclose(means[0], [4, -3, 2], atol=1.0)
    assert np.abs(means[1]).max() < 0.5


def _ball(radius: float, box: int = BOX) -> torch.Tensor:
    z, y, x = np.indices((box,) * 3) - box // 2
    return torch.as_tensor((x**2 + y**2 + z**2 <= radius**2).astype(np.float64))


def test_the_molecules_radius_of_gyration_is_read_in_either_contrast():
    ball = _ball(6.0).numpy()
    # A uniform ball's radius of gyration is √(3/5) of its radius.
    expected = np.sqrt(3 / 5) * 6.0 / BOX
    assert molecule_gyration_fraction(ball) == pytest.approx(expected, rel=0.05)
    assert molecule_gyration_fraction(-ball) == pytest.approx(expected, rel=0.05)
    assert molecule_gyration_fraction(np.zeros((BOX,) * 3)) is None


def test_the_initial_ball_is_no_larger_than_the_molecule():
    small = initial_radius_fraction(_statistics(_ball(4.0)), 0.3)
    gyration = molecule_gyration_fraction(_statistics(_ball(4.0)).reconstruct_wiener().numpy())
    assert small == pytest.approx(max(MIN_RADIUS_FRACTION, RADIUS_PER_GYRATION * gyration))
    assert small < 0.2
    # A molecule that fills the box keeps the largest ball.
    assert initial_radius_fraction(_statistics(_ball(15.0)), 0.3) == 0.3
    assert initial_radius_fraction(_statistics(_ball(15.0)), 0.25) == 0.25
    with pytest.raises(ValueError, match="radius_fraction"):
        initial_radius_fraction(_statistics(_ball(4.0)), 0.0)


def test_the_random_start_fills_the_molecules_ball():
    stats = _statistics(_ball(4.0))
    config = GridFitConfig(n_gaussians=2000, seed=5)
    model = random_start(stats, config, stats.crop(16))
    radius = initial_radius_fraction(stats.crop(16), 0.3) * BOX
    reach = np.linalg.norm(model.means.detach().double().numpy() / PIXEL, axis=1)
    assert reach.max() <= radius + 1e-6
    assert reach.max() > 0.9 * radius


def test_the_ball_of_the_setting_when_not_read_from_the_data():
    stats = _statistics(_ball(4.0))
    config = GridFitConfig(n_gaussians=2000, seed=5, init_radius_from_data=False)
    model = random_start(stats, config, stats.crop(16))
    reach = np.linalg.norm(model.means.detach().double().numpy() / PIXEL, axis=1)
    assert 0.9 * 0.3 * BOX < reach.max() <= 0.3 * BOX + 1e-6


def test_the_per_image_engine_reads_the_same_ball(tmp_path):
    """``--engine splat``: the molecule's radius on the grid engine's first-stage grid (a quarter
    of the box), the setting's where it is not read from the data, and its start drawn in it."""
    stats = _statistics(_ball(4.0))
    centre, radius = ball_from_statistics(stats, 0.3)
    assert radius == pytest.approx(initial_radius_fraction(stats.crop(BOX // 4), 0.3))
    assert radius < 0.2
    assert not centre.any()
    assert ball_from_statistics(stats, 0.3, from_data=False)[1] == 0.3
    particles, *_ = simulate_particles(tmp_path, n=8, box=BOX, pixel=PIXEL)
    models = initial_models(
        particles, ReconstructConfig(engine="splat"), 2000, "cpu", [(centre, radius)] * 2
    )
    reach = np.linalg.norm(models[0].means.detach().double().numpy() / PIXEL, axis=1)
    assert 0.9 * radius * BOX < reach.max() <= radius * BOX + 1e-6
