"""The per-shell prior of the grid fit (RELION's regularised likelihood, issue 11)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_statistics import simulate_particles

from cryosplat.core.errors import InputError
from cryosplat.reconstruct.grid.fit import GridFitConfig, GridLoss, fit_gaussians
from cryosplat.reconstruct.grid.gather import accumulate
from cryosplat.reconstruct.grid.half_statistics import half_data_fsc
from cryosplat.reconstruct.grid.loss import half_grid_multiplicity, pooled_fsc, shell_prior_ratios
from cryosplat.reconstruct.grid.statistics import padded_shell_index
from cryosplat.validation.fsc import fsc
from cryosplat.validation.masks import spherical_mask

BOX, PIXEL = 24, 3.0


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return simulate_particles(
        tmp_path_factory.mktemp("prior"), n=80, box=BOX, pixel=PIXEL, noise=1.0, seed=5
    )


def test_shell_prior_ratios_follow_the_half_set_snr_and_the_cap():
    curve = np.array([1.0, 0.9, 0.5, 0.2, 0.01, -0.3])
    ratios = shell_prior_ratios(curve, 8, strength=0.5, cap=2.0)
    assert ratios.shape == (8,) and ratios.dtype == torch.float64
    expected = 0.5 * (1 - np.array([0.999, 0.9, 0.5, 0.2])) / np.array([0.999, 0.9, 0.5, 0.2])
    np.testing.assert_allclose(ratios[:4], expected, rtol=1e-12)
    # FSC 0.01 and below (and the shells past the curve, repeating its last value) hit the cap.
    np.testing.assert_allclose(ratios[4:], 2.0)
    assert float(shell_prior_ratios(curve, 8, strength=0.0, cap=2.0).abs().max()) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        shell_prior_ratios(curve, 8, strength=-1.0, cap=2.0)
    with pytest.raises(ValueError, match="empty"):
        shell_prior_ratios([], 8, strength=1.0, cap=2.0)


def test_pooled_fsc_means_neighbouring_shells_and_leaves_shell_zero():
    curve = np.array([1.0, 0.9, 0.6, 0.3, 0.6, 0.5])
    np.testing.assert_array_equal(pooled_fsc(curve, 0), curve)
    pooled = pooled_fsc(curve, 1)
    # shell 0 is neither pooled nor part of shell 1's mean; the ends take what they have
    expected = [1.0, (0.9 + 0.6) / 2, (0.9 + 0.6 + 0.3) / 3, 0.5, (0.3 + 0.6 + 0.5) / 3, 0.55]
    np.testing.assert_allclose(pooled, expected, rtol=1e-12)
    np.testing.assert_allclose(pooled_fsc(curve, 9)[1:], curve[1:].mean())
    with pytest.raises(ValueError, match="pool_shells must be non-negative, got -1"):
        pooled_fsc(curve, -1)


def test_pooled_prior_has_no_one_shell_notch():
    # a spectral dip at shell 4: the data's FSC falls by half for one shell
    curve = np.array([1.0, 0.95, 0.9, 0.85, 0.4, 0.8, 0.75, 0.7])
    plain = shell_prior_ratios(curve, 8, strength=0.3, cap=2.0)
    pooled = shell_prior_ratios(curve, 8, strength=0.3, cap=2.0, pool_shells=1)
    assert float(plain[4] / plain[3]) > 5.0 and float(pooled[4] / pooled[3]) < 2.0
    fsc = np.clip([(0.85 + 0.4 + 0.8) / 3], 1e-3, 0.999)
    assert float(pooled[4]) == pytest.approx(float(0.3 * (1 - fsc[0]) / fsc[0]), rel=1e-12)
    with pytest.raises(InputError, match="prior_pool_shells must be non-negative"):
        GridFitConfig(prior_pool_shells=-1).validate()


def test_prior_adds_lambda_times_the_power_of_each_shell(data):
    stats = accumulate(data[0])
    volume = torch.from_numpy(data[1]).float()
    n_shells = int(stats.max_radius) + 1
    ratios = torch.linspace(0.1, 3.0, n_shells, dtype=torch.float64)
    plain, spectrum = GridLoss(stats).data_term_and_spectrum(volume)
    with_prior = GridLoss(stats, prior_ratios=ratios).data_term_and_spectrum(volume)[0]
    # λ(k) = ratio(k) · mean W of the shell, times |X̂|² summed over the full grid.
    lam = ratios * stats.mean_weight_by_shell()
    shells = padded_shell_index(stats.padded_box, stats.pad, "cpu")
    per_voxel = torch.where(shells < n_shells, lam[shells.clamp_max(n_shells - 1)], 0.0)
    mult = half_grid_multiplicity(spectrum.shape, dtype=torch.float64)
    expected = (per_voxel * mult * spectrum.abs().double() ** 2).sum()
    expected *= PIXEL**2 / BOX**2
    assert float(with_prior - plain) == pytest.approx(float(expected), rel=1e-4)


def test_fit_without_prior_strength_ignores_the_fsc_and_with_it_changes(data):
    stats = accumulate(data[0])
    curve = np.full(BOX // 2 + 1, 0.3)
    config = GridFitConfig(n_gaussians=60, stage_fractions=(0.5, 1.0), stage_steps=(10, 10), seed=2)
    off = GridFitConfig(**{**config.__dict__, "prior_strength": 0.0})
    plain = fit_gaussians(stats, off)
    ignored = fit_gaussians(stats, off, half_fsc=curve)
    used = fit_gaussians(stats, config, half_fsc=curve)
    torch.testing.assert_close(plain.means, ignored.means)
    assert not torch.allclose(plain.means, used.means)


def test_strong_prior_shrinks_the_fitted_map_at_high_frequency(data):
    """The prior's minimiser is B / (W + λ): a strong λ beyond the lowest shells keeps the map's
    high-frequency power below the unregularised fit's."""
    stats = accumulate(data[0])
    n = BOX // 2 + 1
    curve = np.where(np.arange(n) < 3, 0.99, 0.001)
    base = GridFitConfig(n_gaussians=80, stage_fractions=(0.5, 1.0), stage_steps=(20, 20), seed=4)
    strong = GridFitConfig(**{**base.__dict__, "prior_strength": 50.0, "prior_cap": 50.0})
    free = fit_gaussians(stats, base).voxelize().detach().double().numpy()
    shrunk = fit_gaussians(stats, strong, half_fsc=curve).voxelize().detach().double().numpy()

    def high_power(volume):
        f = np.fft.fftshift(np.fft.fftn(volume))
        k = np.indices(volume.shape) - BOX // 2
        r = np.sqrt((k**2).sum(0))
        return float((np.abs(f[(r > 4) & (r < BOX // 2)]) ** 2).sum())

    assert high_power(shrunk) < 0.5 * high_power(free)


def test_half_data_fsc_is_the_masked_fsc_and_config_is_checked():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 16, 16, 16))
    mask = spherical_mask(16)
    np.testing.assert_allclose(half_data_fsc((a, b)), fsc(a * mask, b * mask))
    for name in ("prior_strength", "prior_cap"):
        with pytest.raises(InputError, match=name):
            GridFitConfig(**{name: -0.1}).validate()


def test_reconstruct_logs_the_prior_and_turns_it_off(tiny_set, tmp_path):
    from cryosplat.cli.main import main

    args = ["--n-gaussians", "30", "--no-progress", "--stage-fractions", "1.0"]
    args += ["--stage-steps", "5"]
    logs = {}
    for name, extra in (("default", []), ("off", ["--prior-strength", "0"])):
        out = tmp_path / name
        assert main(["reconstruct", str(tiny_set), "-o", str(out), *args, *extra]) == 0
        logs[name] = (out / "log.txt").read_text()
    assert "prior on the map: strength 0.5, from the FSC of the halves" in logs["default"]
    assert "the FSC sees" in logs["default"]
    assert "prior on the map: none (--prior-strength 0)" in logs["off"]
