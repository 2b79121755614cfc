"""The share of each shell the views sample, and a resolution that counts the rest as nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import simulate_tiny

from cryosplat.cli.main import main
from cryosplat.core.fourier import fftn_centered, ifftn_centered
from cryosplat.model.gaussians import GaussianModel
from cryosplat.simulate.views import PreferredViews
from cryosplat.validation.crossval import DataSpectra, cross_validate
from cryosplat.validation.fsc import fsc
from cryosplat.validation.sampling import sampled_frequencies

BOX, PIXEL, PAD = 48, 2.0, 2


def _band(shape, centred_axes: int, degrees: float) -> np.ndarray:
    """Frequencies within ``degrees`` of the xy plane on a grid whose first ``centred_axes`` axes
    are centred and the rest start at 0 (the half axis)."""
    axes = [np.arange(n) - (n // 2 if i < centred_axes else 0) for i, n in enumerate(shape)]
    kz, ky, kx = np.meshgrid(*axes, indexing="ij")
    radius = np.sqrt(kx**2 + ky**2 + kz**2)
    return np.abs(kz) <= np.sin(np.radians(degrees)) * radius


def sampled_share(*args, **kwargs) -> np.ndarray:
    return sampled_frequencies(*args, **kwargs).share


def test_views_within_an_angle_of_a_plane_sample_the_sine_of_it():
    size = PAD * BOX
    band = _band((size, size, size // 2 + 1), 2, 20.0)
    weights = torch.as_tensor(band * np.random.default_rng(0).uniform(1, 5, band.shape))
    share = sampled_share([weights], BOX, PAD)
    assert share.shape == (BOX // 2 + 1,) and share[0] == 1.0
    np.testing.assert_allclose(share[6:], np.sin(np.radians(20.0)), atol=0.04)
    # The mask on the map's real-FFT half grid (uncentred): the band about the xy plane.
    found = sampled_frequencies([weights], BOX, PAD)
    k = np.fft.fftfreq(BOX, 1 / BOX)
    kz, ky, kx = np.meshgrid(k, k, np.arange(BOX // 2 + 1), indexing="ij")
    radius = np.sqrt(kx**2 + ky**2 + kz**2)
    expected = (np.abs(kz) <= np.sin(np.radians(20.0)) * radius) & (np.round(radius) <= BOX // 2)
    assert found.mask().shape == expected.shape
    assert np.mean(found.mask().numpy() == expected) > 0.995
    assert found.mask(0.9).sum() < found.mask().sum()
    # Particles of disjoint sets add: the band's complement from another set fills the shells.
    rest = torch.as_tensor((~band).astype(np.float64))
    assert np.all(sampled_share([weights, rest], BOX, PAD) == 1.0)
    assert np.all(sampled_share([torch.ones_like(weights)], BOX, PAD) == 1.0)
    # Uneven sampling is sampling: a thousandth of the mean still counts.
    thin = weights + 0.002 * float(weights.mean()) * rest
    assert np.all(sampled_share([thin], BOX, PAD) == 1.0)
    # Past the statistics' own limit (here 18 frequencies) nothing was gathered: not unsampled.
    radius = _radius(size) / PAD
    gathered = torch.ones_like(weights) * ((radius <= 18) | (radius > 19.5))
    assert sampled_share([gathered], BOX, PAD)[18] < 0.9
    assert np.all(sampled_share([gathered], BOX, PAD, max_radius=18.0) == 1.0)
    with pytest.raises(ValueError, match="padded half grid"):
        sampled_share([weights], BOX + 2, PAD)
    with pytest.raises(ValueError, match="threshold"):
        sampled_share([weights], BOX, PAD, threshold=1.5)
    with pytest.raises(ValueError, match="no weights"):
        sampled_share([], BOX, PAD)


def test_the_estimate_counts_what_no_view_samples_as_holding_nothing():
    """Data that hold nothing outside a band of 25° about the xy plane, half models that are the
    truth inside it and as strong but unrelated outside: their FSC with the truth is about the
    band's share of each shell, which the cross-validation reads only with the share (without,
    its square root)."""
    truth = GaussianModel.random(
        400, BOX, PIXEL, seed=1, radius_fraction=0.25, scale_angstrom=1.2, dtype=torch.float64
    )
    truth = truth.voxelize().detach().numpy()
    band = _band((BOX,) * 3, 3, 25.0)
    rng = np.random.default_rng(3)

    def in_band(volume, keep):
        spectrum = fftn_centered(torch.as_tensor(volume)) * torch.as_tensor(keep)
        return ifftn_centered(spectrum).real.numpy()

    data = [in_band(truth + 0.05 * truth.std() * rng.normal(size=truth.shape), band) for _ in "AB"]
    other = GaussianModel.random(
        400, BOX, PIXEL, seed=8, radius_fraction=0.25, scale_angstrom=1.2, dtype=torch.float64
    )
    model = in_band(truth, band) + in_band(other.voxelize().detach().numpy(), ~band)
    counts = np.bincount(_shells(), minlength=BOX // 2 + 1)[: BOX // 2 + 1]
    share = np.bincount(_shells(), weights=band.reshape(-1), minlength=BOX // 2 + 1)
    share = share[: BOX // 2 + 1] / counts
    ones = np.ones((BOX,) * 3)
    plain = cross_validate(DataSpectra(*data, ones), model, model, PIXEL)
    counted = cross_validate(DataSpectra(*data, ones, sampled_share=share), model, model, PIXEL)
    against_truth = fsc(model, truth)
    shells = slice(8, 20)  # the lowest: two blobs about one centre are not unrelated there
    np.testing.assert_allclose(
        counted.model_vs_truth_estimate[shells], against_truth[shells], atol=0.08
    )
    assert np.all(plain.model_vs_truth_estimate[shells] > against_truth[shells] + 0.15)
    assert counted.resolution_angstrom > 2 * plain.resolution_angstrom
    with pytest.raises(ValueError, match="sampled_share"):
        DataSpectra(*data, ones, sampled_share=share[:-1])


def _radius(size: int) -> torch.Tensor:
    """Frequency radius on the padded half grid of size ``size`` (z, y centred)."""
    return torch.as_tensor(np.sqrt(_band_radius2(size)))


def _band_radius2(size: int) -> np.ndarray:
    k, kx = np.arange(size) - size // 2, np.arange(size // 2 + 1)
    kz, ky, kxx = np.meshgrid(k, k, kx, indexing="ij")
    return (kz**2 + ky**2 + kxx**2).astype(np.float64)


def _shells() -> np.ndarray:
    k = np.arange(BOX) - BOX // 2
    kz, ky, kx = np.meshgrid(k, k, k, indexing="ij")
    return np.round(np.sqrt(kx**2 + ky**2 + kz**2)).astype(int).reshape(-1)


def test_a_run_whose_views_lie_within_10_degrees_of_one_axis_says_what_they_miss(tmp_path):
    truth = GaussianModel.random(40, 24, 4.0, seed=5, radius_fraction=0.2, scale_angstrom=5.0)
    star = simulate_tiny(
        tmp_path, truth, n_particles=300, preferred_views=PreferredViews(1.0, 10.0), snr=5.0
    )
    out = tmp_path / "run"
    args = ["--n-gaussians", "80", "--stage-fractions", "0.5,1.0", "--stage-steps", "20,20"]
    assert main(["reconstruct", str(star), "-o", str(out), "--no-progress", *args]) == 0
    report = json.loads((out / "fsc.json").read_text())
    share = np.asarray(report["sampled_share_by_shell"])
    assert share.shape == (13,) and share[0] == 1.0
    mid = share[4:12]  # (shell 12 lies past the statistics' limit: 1)
    assert np.all(mid < 0.6) and np.all(mid > 0.15)  # sin 10° = 0.17, and the spread
    assert any("the views sample" in w and "missing cone" in w for w in report["warnings"])
