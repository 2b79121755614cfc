"""Half maps as the mean, frequency by frequency, of the last stages' fits that hold it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.core.errors import InputError
from cryosplat.io.mrc import read_map
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid import engine as grid_engine
from cryosplat.reconstruct.grid.engine import GridEngineConfig
from cryosplat.reconstruct.grid.fit import GridFitConfig
from cryosplat.reconstruct.run import ReconstructConfig, reconstruct
from cryosplat.reconstruct.stage_mean import TAPER_SHELLS, band_weights, mean_of_stages
from cryosplat.validation.fsc import fsc


def _wave(box: int, shell: int, axis: int = 0) -> np.ndarray:
    """A plane wave of ``shell`` periods over the box along ``axis`` (one shell of the FSC)."""
    x = np.arange(box) / box
    wave = np.cos(2 * np.pi * shell * x)
    shape = [1, 1, 1]
    shape[axis] = box
    return np.broadcast_to(wave.reshape(shape), (box,) * 3).copy()


def test_band_weights_are_one_below_the_band_and_zero_from_its_edge():
    w = band_weights(20, 10.0)
    assert torch.all(w[: int(10 - TAPER_SHELLS) + 1] == 1.0)
    assert torch.all(w[10:] == 0.0)
    assert torch.all(w[1:] <= w[:-1])  # never rises
    with pytest.raises(ValueError, match="band_shells must be positive, got 0"):
        band_weights(20, 0.0)


def test_the_mean_is_taken_below_the_band_and_the_last_fit_kept_above():
    box, band = 32, 8.0
    rng = np.random.default_rng(0)
    common = rng.normal(size=(box,) * 3)
    low, high = _wave(box, 3), _wave(box, 12, axis=1)
    last = common + low + high
    previous = common - low - high  # differs from the last fit at shell 3 and at shell 12
    out = mean_of_stages(last, [(previous, band)])
    # shell 3 lies in the band: the two fits' difference there averages out; shell 12 is past it
    np.testing.assert_allclose(out, common + high, atol=1e-6)  # the correction in float32
    np.testing.assert_array_equal(mean_of_stages(last, [(last, band)]), last)
    np.testing.assert_array_equal(mean_of_stages(last, []), last)


def test_each_frequency_is_the_mean_of_the_stages_that_hold_it():
    box = 32
    waves = [_wave(box, k) for k in (2, 6, 12)]
    last = sum(waves)
    middle = 4.0 * waves[0] + 4.0 * waves[1]  # holds shells up to 8
    first = 7.0 * waves[0]  # holds shells up to 4
    out = mean_of_stages(last, [(middle, 8.0), (first, 4.0)])
    expected = (1 + 4 + 7) / 3 * waves[0] + (1 + 4) / 2 * waves[1] + waves[2]
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_the_mean_refuses_maps_of_different_shapes():
    with pytest.raises(ValueError, match="maps differ in shape"):
        mean_of_stages(np.zeros((8, 8, 8)), [(np.zeros((10, 10, 10)), 3.0)])


def _config(stage_mean: int) -> ReconstructConfig:
    fit = GridFitConfig(stage_fractions=(0.5, 1.0), stage_steps=(10, 8))
    grid = GridEngineConfig(fit=fit, stage_mean=stage_mean)
    return ReconstructConfig(n_gaussians=60, seed=0, device="cpu", grid=grid, keep_checkpoints=True)


def test_the_half_maps_are_the_stages_mean_in_the_earlier_band(tiny_set, tmp_path):
    particles = read_particles(tiny_set)
    reconstruct(particles, tmp_path / "off", _config(1), show_progress=False)
    reconstruct(particles, tmp_path / "on", _config(3), show_progress=False)
    box = particles.box
    band = grid_engine.stage_boxes(box, (0.5, 1.0))[0] / 2
    for half in "AB":
        # the same fits either way: only the maps differ
        a = GaussianModel.load(tmp_path / "off" / f"model_{half}.npz")
        b = GaussianModel.load(tmp_path / "on" / f"model_{half}.npz")
        torch.testing.assert_close(a.means, b.means)
        last, _ = read_map(tmp_path / "off" / f"half_map_{half}.mrc")
        both, _ = read_map(tmp_path / "on" / f"half_map_{half}.mrc")
        first = GaussianModel.load(tmp_path / "on" / "checkpoints" / f"grid_stage0_{half}.npz")
        with torch.no_grad():
            earlier = first.voxelize().double().numpy()
        expected = mean_of_stages(last, [(earlier, band)])
        np.testing.assert_allclose(both, expected, atol=1e-5 * float(np.abs(expected).max()))
        # above the band the half map is the last fit's
        curve = fsc(both, last)
        assert np.all(curve[int(band) + 1 :] > 0.999999)
        assert curve[1 : int(band - TAPER_SHELLS)].min() < 0.9999


def test_stage_mean_below_one_is_refused():
    with pytest.raises(InputError, match="stage_mean must be at least 1, got 0"):
        GridEngineConfig(stage_mean=0).validate()
