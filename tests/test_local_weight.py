"""The local Wiener weight of the map: the Gaussian window, the weight's limits, and that it
brings the mean of two noisy half maps closer to the truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cryosplat.core.fourier import squared_radius
from cryosplat.io.mrc import read_map
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.engine_result import EngineResult, MapSettings
from cryosplat.reconstruct.report import CrossValidationInputs, evaluate_half_maps, write_outputs
from cryosplat.validation.fsc import fsc, half_grid_shells, resolution_at
from cryosplat.validation.local_weight import (
    DEFAULT_SIGMA_PX,
    MAX_AUTO_SIGMA_PX,
    RESOLUTION_PER_SIGMA,
    UNWEIGHTED_SHELLS,
    UNWEIGHTED_TAPER_SHELLS,
    apply_local_weight,
    local_wiener_weight,
    window_for_resolution,
)
from cryosplat.validation.masks import gaussian_smooth, spherical_mask

BOX = 32


def _blob(box: int = BOX, sigma: float = 3.0, offset=(0, 0, 0)) -> np.ndarray:
    c = np.arange(box) - box // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    r2 = (z - offset[0]) ** 2 + (y - offset[1]) ** 2 + (x - offset[2]) ** 2
    return np.exp(-r2 / (2 * sigma**2))


def test_smoothing_a_point_gives_the_gaussian_of_that_sigma():
    point = torch.zeros((BOX,) * 3, dtype=torch.float64)
    point[BOX // 2, BOX // 2, BOX // 2] = 1.0
    out = gaussian_smooth(point, 2.0).numpy()
    assert out.sum() == pytest.approx(1.0, abs=1e-10)  # normalised: the mass is kept
    c = np.arange(BOX) - BOX // 2
    for axis in range(3):
        profile = out.sum(axis=tuple(a for a in range(3) if a != axis))
        assert (profile * c**2).sum() == pytest.approx(4.0, rel=1e-6)  # variance σ² per axis
    expected = _blob(sigma=2.0)
    np.testing.assert_allclose(out, expected / expected.sum(), atol=1e-9)


def test_smoothing_keeps_dtype_and_refuses_bad_input():
    v = torch.rand((8, 8, 8), dtype=torch.float32)
    assert gaussian_smooth(v, 1.0).dtype == torch.float32
    with pytest.raises(ValueError, match="sigma_px"):
        gaussian_smooth(v, 0.0)
    with pytest.raises(ValueError, match="cube"):
        gaussian_smooth(torch.rand(8, 8, 6), 1.0)


def test_weight_limits():
    truth = _blob()
    # Two identical halves: nothing differs, the weight is 1 wherever they hold anything.
    same = local_wiener_weight(truth, truth)
    assert same.dtype == np.float32 and same.shape == truth.shape
    assert same[BOX // 2, BOX // 2, BOX // 2] == pytest.approx(1.0)
    assert same.min() >= 0.0 and same.max() <= 1.0
    # Two halves of independent noise alone share nothing: the weight is small everywhere.
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2,) + truth.shape)
    assert local_wiener_weight(a, b).mean() < 0.2
    # Halves t(1 ± s/2) with s = ±1 at random: A·B = 3t²/4 and (A − B)²/4 = t²/4 at every voxel,
    # so the weight is 3/4 wherever the truth is.
    sign = np.where(rng.random(truth.shape) < 0.5, -1.0, 1.0)
    part = local_wiener_weight(truth * (1 + 0.5 * sign), truth * (1 - 0.5 * sign), 1.5)
    np.testing.assert_allclose(part[truth > 0.01], 0.75, atol=1e-4)
    with pytest.raises(ValueError, match="differ in shape"):
        local_wiener_weight(truth, truth[:-1])


def test_weight_keeps_the_molecule_and_takes_the_noise_out_of_the_solvent():
    rng = np.random.default_rng(7)
    truth = _blob(offset=(0, 0, 4)) + 0.7 * _blob(sigma=2.0, offset=(-3, 5, -6))
    noise = 0.15 * truth.max()
    a = truth + noise * rng.standard_normal(truth.shape)
    b = truth + noise * rng.standard_normal(truth.shape)
    mean = 0.5 * (a + b)
    w = local_wiener_weight(a, b)
    centre = (BOX // 2, BOX // 2, BOX // 2 + 4)
    assert w[centre] > 0.9
    far = _blob(sigma=8.0, offset=(0, 0, 4)) < 1e-3
    assert w[far].mean() < 0.2
    error_plain = np.square(mean - truth).sum()
    error_weighted = np.square(mean * w - truth).sum()
    assert error_weighted < 0.5 * error_plain


def _model(seed: int) -> GaussianModel:
    return GaussianModel.random(300, 24, 2.0, seed=seed, radius_fraction=0.3)


@pytest.mark.parametrize("sigma", [0.0, 1.5])
def test_write_outputs_map_is_the_weighted_mean(tmp_path, sigma):
    model_a, model_b = _model(1), _model(2)
    result = EngineResult((model_a, model_b))
    _, summary = write_outputs(tmp_path, result, MapSettings(local_weight_sigma_px=sigma))
    a, voxel = read_map(tmp_path / "half_map_A.mrc")
    b, _ = read_map(tmp_path / "half_map_B.mrc")
    full, _ = read_map(tmp_path / "map.mrc")
    assert voxel == pytest.approx(2.0)
    if sigma == 0:
        assert not (tmp_path / "local_weight.mrc").exists()
        np.testing.assert_allclose(full, 0.5 * (a + b), rtol=1e-5, atol=1e-7)
        assert summary["map"] == "mean of the half maps"
    else:
        w, _ = read_map(tmp_path / "local_weight.mrc")
        expected = apply_local_weight(0.5 * (a + b), w)
        np.testing.assert_allclose(full, expected, rtol=1e-4, atol=1e-6 * np.abs(full).max())
        np.testing.assert_allclose(w, local_wiener_weight(a, b, sigma), atol=1e-5)
        assert "local Wiener weight" in summary["map"]
    assert json.loads((tmp_path / "fsc.json").read_text())["symmetry"] == "C1"


def test_the_reported_resolution_follows_the_weight_into_the_map():
    """Halves of a small molecule in much noise: the weight takes the noise out of the solvent,
    and the cross-validated estimate made on the weighted halves tracks the weighted map's FSC
    with the truth, where the estimate made on the raw halves describes their plain mean."""
    box, pixel = 48, 2.0
    truth = GaussianModel.random(
        400, box, pixel, seed=1, radius_fraction=0.25, scale_angstrom=1.2, dtype=torch.float64
    )
    truth = truth.voxelize().detach().numpy()
    rng = np.random.default_rng(5)
    a, b, d_a, d_b = (truth + 6 * truth.std() * rng.normal(size=truth.shape) for _ in range(4))
    w = local_wiener_weight(a, b)
    raw, _ = evaluate_half_maps(a, b, pixel, crossval=CrossValidationInputs((d_a, d_b)))
    weighted, _ = evaluate_half_maps(
        a, b, pixel, crossval=CrossValidationInputs((d_a, d_b), (a * w, b * w))
    )
    mask = spherical_mask(box)
    truth_plain = resolution_at(fsc(0.5 * (a + b) * mask, truth * mask), 0.5, box, pixel)
    truth_map = resolution_at(fsc(0.5 * (a + b) * w * mask, truth * mask), 0.5, box, pixel)
    assert truth_map < 0.8 * truth_plain  # the weight is worth much here
    assert weighted.resolution_angstrom < 0.8 * raw.resolution_angstrom
    assert weighted.resolution_angstrom == pytest.approx(truth_map, rel=0.1)
    assert raw.resolution_angstrom == pytest.approx(truth_plain, rel=0.1)


def _noisy_halves(seed: int = 3):
    truth = _blob(sigma=4.0) + 0.5 * _blob(sigma=2.0, offset=(4, -3, 2))
    rng = np.random.default_rng(seed)
    a, b = (truth + 0.3 * rng.normal(size=truth.shape) for _ in range(2))
    return truth, a, b


def test_the_weight_leaves_the_lowest_shells_as_they_are():
    """Shells 0..UNWEIGHTED_SHELLS of the weighted map are the map's own, the next shell passes
    to the plain product through a raised cosine in ``|k|`` (between the two, never outside),
    every coefficient past it is the product's; a weight of one changes nothing, and a
    negative count of shells gives the plain product."""
    truth, a, b = _noisy_halves()
    w = local_wiener_weight(a, b)
    out = apply_local_weight(a, w)
    shells = half_grid_shells(BOX)[0].numpy()
    radius = np.sqrt(squared_radius(BOX, 3, half=True, centred=False).numpy())
    low = shells <= UNWEIGHTED_SHELLS
    high = radius >= UNWEIGHTED_SHELLS + 0.5 + UNWEIGHTED_TAPER_SHELLS
    seam = ~low & ~high
    spectrum, own, product = (np.fft.rfftn(x) for x in (out, a, a * w))
    tol = 1e-9 * np.abs(own).max()
    np.testing.assert_allclose(spectrum[low], own[low], atol=tol)
    np.testing.assert_allclose(spectrum[high], product[high], atol=tol)
    share = 0.5 * (1 + np.cos(np.pi * (radius[seam] - UNWEIGHTED_SHELLS - 0.5)))
    assert seam.any() and np.all((share > 0) & (share < 1))
    np.testing.assert_allclose(
        spectrum[seam], share * own[seam] + (1 - share) * product[seam], atol=tol
    )
    assert not np.allclose(own[low], product[low])  # the weight did bend those shells
    np.testing.assert_allclose(apply_local_weight(a, np.ones_like(a)), a, atol=1e-12)
    np.testing.assert_allclose(apply_local_weight(a, w, unweighted_shells=-1), a * w, atol=1e-12)
    assert out.dtype == a.dtype
    with pytest.raises(ValueError, match="cubes of one shape"):
        apply_local_weight(a, w[:-1])


def test_the_envelope_is_not_bent_by_the_weight():
    """A weight that falls from the molecule's core to its edge bends the map's envelope when
    it multiplies every frequency: the first shells' FSC with the truth is lower for the plain
    product than for the weighted map with those shells left alone, and the weight's gain at
    the higher shells is kept."""
    truth, a, b = _noisy_halves()
    w = local_wiener_weight(a, b)
    mask = spherical_mask(BOX)
    mean = 0.5 * (a + b)
    plain = fsc(mean * w * mask, truth * mask)
    kept = fsc(apply_local_weight(mean, w) * mask, truth * mask)
    unweighted = fsc(mean * mask, truth * mask)
    assert kept[1] > plain[1]
    assert kept[1] >= unweighted[1] - 1e-9
    high = slice(UNWEIGHTED_SHELLS + 1, BOX // 2)
    np.testing.assert_allclose(kept[high], plain[high], atol=0.02)
    assert kept[high].mean() > unweighted[high].mean()


@pytest.mark.parametrize("field", ["soft_width_px", "local_weight_sigma_px"])
def test_map_settings_refuse_a_negative_width(field):
    with pytest.raises(ValueError, match=field):
        MapSettings(**{field: -1.0})


def test_the_window_is_a_third_of_the_resolution_within_its_bounds():
    assert window_for_resolution(12.0, 2.0) == pytest.approx(6.0 / RESOLUTION_PER_SIGMA)
    assert window_for_resolution(6.0, 2.0) == DEFAULT_SIGMA_PX  # resolved at 3 voxels
    assert window_for_resolution(300.0, 2.0) == MAX_AUTO_SIGMA_PX
    assert window_for_resolution(float("inf"), 2.0) == DEFAULT_SIGMA_PX  # none vouched for
    with pytest.raises(ValueError, match="pixel_size_angstrom"):
        window_for_resolution(10.0, 0.0)


def test_the_default_window_follows_the_fits_resolution(tmp_path):
    """``MapSettings()`` takes the window from the last cross-validated resolution of the
    engine's history: the weight written is the one of that window."""
    model_a, model_b = _model(1), _model(2)
    history = [{"stage": 1, "resolution_angstrom": 30.0}, {"stage": 2, "resolution_angstrom": 18.0}]
    result = EngineResult((model_a, model_b), history=history)
    assert result.last_resolution_angstrom() == 18.0
    assert EngineResult((model_a, model_b)).last_resolution_angstrom() == float("inf")
    _, summary = write_outputs(tmp_path, result, MapSettings())
    a, _ = read_map(tmp_path / "half_map_A.mrc")
    b, _ = read_map(tmp_path / "half_map_B.mrc")
    w, _ = read_map(tmp_path / "local_weight.mrc")
    sigma = window_for_resolution(18.0, 2.0)
    assert sigma == pytest.approx(3.0)
    np.testing.assert_allclose(w, local_wiener_weight(a, b, sigma), atol=1e-5)
    assert "(3 px;" in summary["map"]
