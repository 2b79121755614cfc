"""The cross-validated resolution sees through smooth models that agree with each other."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cryosplat.core.fourier import fourier_crop_volume, fourier_pad_volume
from cryosplat.model.gaussians import GaussianModel
from cryosplat.validation.crossval import (
    DataSpectra,
    cross_validate,
    cross_validated_fsc,
    mask_gain,
)
from cryosplat.validation.fsc import fsc, resolution_at
from cryosplat.validation.masks import auto_mask, lowpass, spherical_mask
from cryosplat.validation.resolution_monitor import ResolutionMonitor

BOX, PIXEL = 48, 2.0


def _truth() -> np.ndarray:
    model = GaussianModel.random(
        400, BOX, PIXEL, seed=1, radius_fraction=0.25, scale_angstrom=1.2, dtype=torch.float64
    )
    return model.voxelize().detach().numpy()


def _data(truth, noise, seed):
    rng = np.random.default_rng(seed)
    return truth + noise * rng.normal(size=truth.shape)


def test_models_that_agree_on_invented_detail_are_not_vouched_for():
    truth = _truth()
    noise = 0.3 * truth.std()
    d_a, d_b = _data(truth, noise, 1), _data(truth, noise, 2)
    # Both half models: the truth at low resolution plus the same invented fine detail.
    invented = np.random.default_rng(9).normal(size=truth.shape)
    invented -= lowpass(invented, 8.0, PIXEL)
    smooth = lowpass(truth, 12.0, PIXEL) + 0.5 * truth.std() * invented
    mask = spherical_mask(BOX)
    naive = resolution_at(fsc(smooth * mask, smooth * mask), 0.143, BOX, PIXEL)
    assert naive == 2 * PIXEL  # the model-vs-model FSC claims Nyquist
    cv = cross_validated_fsc(smooth, smooth, d_a, d_b, mask, PIXEL)
    truth_curve = fsc(smooth * mask, truth * mask)
    truth_res = resolution_at(truth_curve, 0.5, BOX, PIXEL)
    assert cv.resolution_angstrom > 1.4 * naive
    assert abs(cv.resolution_angstrom - truth_res) / truth_res < 0.2


def test_an_exact_model_is_vouched_for_as_far_as_the_data_go():
    truth = _truth()
    noise = 0.3 * truth.std()
    d_a, d_b = _data(truth, noise, 3), _data(truth, noise, 4)
    cv = cross_validated_fsc(truth, truth, d_a, d_b, spherical_mask(BOX), PIXEL)
    assert cv.resolution_angstrom <= 1.15 * cv.data_resolution_angstrom
    shells = np.flatnonzero(cv.data_fsc > 0.5)
    assert np.allclose(cv.model_vs_truth_estimate[shells[1:]], 1.0, atol=0.1)
    d = cv.to_dict()
    assert d["resolution_angstrom"] == cv.resolution_angstrom
    assert set(d["curves"]) >= {"data_fsc", "model_vs_truth_estimate"}
    assert "the map's (the average of the half models) FSC against the truth" in d["definition"]
    assert len(d["curves"]["half_model_vs_truth_estimate"]) == BOX // 2 + 1
    assert "0.143" not in d["definition"]


def test_past_the_cut_a_lower_bound_vouches_for_models_that_match_noisy_data():
    """Data too noisy for their own FSC to be read past some shell (the cut): an exact model
    still correlates with them by many standard errors there. Where the data's FSC pooled over
    ±DATA_POOL_PAST_CUT shells can be read, the estimate of the exact model (truly 1) stays
    high; where even that cannot, the lower bound carries the resolution on, below the point
    estimate; models whose fine detail the data do not share get nothing past the cut."""
    truth = _truth()
    noise = 10.0 * truth.std()
    d_a, d_b = _data(truth, noise, 11), _data(truth, noise, 12)
    mask = spherical_mask(BOX)
    exact = cross_validated_fsc(truth, truth, d_a, d_b, mask, PIXEL)
    cut = exact.last_vouched_angstrom
    assert cut is not None and exact.resolution_angstrom < 0.8 * cut
    past = np.arange(BOX // 2 + 1) >= exact.vouched_shells
    cross = 0.5 * (exact.model_a_vs_data_b + exact.model_b_vs_data_a)
    point = cross / np.sqrt(np.maximum(exact.data_fsc, 1e-12))
    low = exact.half_model_vs_truth_estimate[past]
    assert not exact.readable_shells[past].any()  # the reading rule still sees a cut
    wide = low > np.minimum(point[past], 1.0) + 1e-12  # estimated with the wider pool
    assert wide.any() and not wide.all()
    assert np.all((low >= 0) & (low <= 1.0))
    assert np.all(low[wide] > 0.7)
    invented = np.random.default_rng(9).normal(size=truth.shape)
    invented -= lowpass(invented, 8.0, PIXEL)
    smooth = lowpass(truth, 24.0, PIXEL) + 0.5 * truth.std() * invented
    made_up = cross_validated_fsc(smooth, smooth, d_a, d_b, mask, PIXEL)
    assert made_up.resolution_angstrom > 2.0 * exact.resolution_angstrom
    assert made_up.vouched_shells == exact.vouched_shells  # the same data, the same cut
    assert np.all(made_up.model_vs_truth_estimate[past] < 0.5)


def test_curves_equal_the_fsc_and_the_bootstrap_band_brackets_the_resolution():
    truth = _truth()
    noise = 2.0 * truth.std()
    d_a, d_b = _data(truth, noise, 5), _data(truth, noise, 6)
    m_a, m_b = _data(truth, 2 * noise, 7), _data(truth, 2 * noise, 8)  # with their own errors
    mask = spherical_mask(BOX)
    cv = cross_validated_fsc(m_a, m_b, d_a, d_b, mask, PIXEL, n_bootstrap=60, seed=1)
    np.testing.assert_allclose(cv.data_fsc, fsc(d_a * mask, d_b * mask), atol=1e-10)
    np.testing.assert_allclose(cv.model_b_vs_data_a, fsc(m_b * mask, d_a * mask), atol=1e-10)
    low, high = cv.resolution_band_angstrom
    assert cv.resolution_samples_angstrom.shape == (60,)
    assert 2 * PIXEL < cv.resolution_angstrom  # a crossing, not Nyquist
    assert low < high and low <= cv.resolution_angstrom <= high
    assert high - low < 0.5 * cv.resolution_angstrom
    p16, p84 = cv.resolution_percentiles_angstrom
    assert high - low == pytest.approx(p84 - p16) and (low + high) / 2 == pytest.approx(
        cv.resolution_angstrom
    )
    samples = np.sort(cv.resolution_samples_angstrom)
    assert samples[0] <= p16 < p84 <= samples[-1]
    again = cross_validated_fsc(m_a, m_b, d_a, d_b, mask, PIXEL, n_bootstrap=60, seed=1)
    assert again.resolution_band_angstrom == (low, high)
    assert cross_validated_fsc(m_a, m_b, d_a, d_b, mask, PIXEL).resolution_band_angstrom is None


def test_pure_noise_data_vouch_for_nothing():
    truth = _truth()
    rng = np.random.default_rng(5)
    d_a, d_b = rng.normal(size=(2, BOX, BOX, BOX))
    cv = cross_validated_fsc(truth, truth, d_a, d_b, spherical_mask(BOX), PIXEL)
    assert cv.resolution_angstrom > 20.0


def test_the_map_estimate_follows_the_agreement_of_the_half_models():
    """Half models with independent errors: the map (their average) is vouched for beyond either
    half, and the estimate follows the average's FSC with the truth; identical halves gain nothing."""
    truth = _truth()
    d_a, d_b = _data(truth, 1.0 * truth.std(), 11), _data(truth, 1.0 * truth.std(), 12)
    m_a, m_b = _data(truth, 4.0 * truth.std(), 13), _data(truth, 4.0 * truth.std(), 14)
    mask = spherical_mask(BOX)
    cv = cross_validated_fsc(m_a, m_b, d_a, d_b, mask, PIXEL)
    average = fsc(0.5 * (m_a + m_b) * mask, truth * mask)
    half_truth = fsc(m_a * mask, truth * mask)
    half_res = resolution_at(cv.half_model_vs_truth_estimate, 0.5, BOX, PIXEL)
    assert half_res > 1.1 * cv.resolution_angstrom
    assert abs(half_res / resolution_at(half_truth, 0.5, BOX, PIXEL) - 1) < 0.05
    assert abs(cv.resolution_angstrom / resolution_at(average, 0.5, BOX, PIXEL) - 1) < 0.05
    valid = np.flatnonzero(cv.model_vs_truth_estimate[1:] > 0) + 1
    assert valid.size > 5
    assert np.abs(cv.model_vs_truth_estimate[valid] - average[valid]).mean() < 0.06
    assert np.all(average[valid] > half_truth[valid] - 0.02)
    same = cross_validated_fsc(m_a, m_a, d_a, d_b, mask, PIXEL)
    np.testing.assert_allclose(same.model_vs_truth_estimate, same.half_model_vs_truth_estimate)


def test_pooled_shell_sums_are_the_sums_over_each_window():
    from cryosplat.validation.crossval import pool_shells

    values = np.random.default_rng(3).normal(size=30)
    pooled = pool_shells(values, 2)
    assert pooled[0] == values[0]  # shell 0 alone
    for k in range(1, 30):
        assert np.isclose(pooled[k], values[max(1, k - 2) : k + 3].sum())
    np.testing.assert_array_equal(pool_shells(values, 0), values)


def test_the_check_on_a_coarse_stage_grid_reads_what_the_full_box_reads():
    """A smooth model voxelised on a grid of half the box and Fourier-padded gives the full
    box's reading (its content stops at that grid's Nyquist limit, 8 Å here)."""
    model = GaussianModel.random(
        400, BOX, PIXEL, seed=1, radius_fraction=0.25, scale_angstrom=4.0, dtype=torch.float64
    )
    truth = model.voxelize().detach().numpy()
    noise = 2.0 * truth.std()
    monitor = ResolutionMonitor((_data(truth, noise, 5), _data(truth, noise, 6)), PIXEL)
    full, coarse = monitor(model, model), monitor(model, model, box=BOX // 2)
    assert full > 2 * PIXEL * 2  # the data, not the grid, limit the full box's reading
    assert abs(coarse - full) / full < 0.05


def test_fourier_padding_keeps_values_and_the_origin():
    model = GaussianModel.random(
        30, 40, 1.0, seed=2, radius_fraction=0.25, scale_angstrom=4.0, dtype=torch.float64
    )
    with torch.no_grad():
        fine = model.voxelize(40, 1.0)
        for box in (20, 25):  # even and odd coarse grids of the same extent
            padded = fourier_pad_volume(model.voxelize(box, 40 / box), 40)
            assert float((padded - fine).abs().max()) < 0.02 * float(fine.abs().max())
    flat = fourier_pad_volume(torch.full((5, 5, 5), 3.0, dtype=torch.float64), 12)
    torch.testing.assert_close(flat, torch.full((12, 12, 12), 3.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least"):
        fourier_pad_volume(fine, 20)


def test_fourier_cropping_undoes_padding_and_keeps_the_origin():
    """A map with nothing at or past the small grid's Nyquist frequency, padded to an even or an
    odd box and cropped back, is itself again (the crop keeps ``D // 2`` at ``d // 2``)."""
    noise = torch.randn(24, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    small = fourier_pad_volume(fourier_crop_volume(noise, 16), 24)
    for box in (32, 33, 48):
        back = fourier_crop_volume(fourier_pad_volume(small, box), 24)
        torch.testing.assert_close(back, small, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="even"):
        fourier_crop_volume(small, 15)


def _lowpass_data(truth, seed):
    """Data that hold the truth to 12 Å and (almost) only noise past it."""
    f = np.fft.fftfreq(BOX, d=PIXEL)
    k = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)
    noise = np.fft.fftn(np.random.default_rng(seed).normal(size=truth.shape))
    noise *= np.where(k < 1.0 / 12.0, 0.01, 50.0)
    return truth + truth.std() * np.fft.ifftn(noise).real


def test_a_model_right_past_the_data_is_reported_as_a_bound():
    """An exact model against data that stop at 12 Å: the estimate is still ~1 where the data
    stop, so the resolution read there is flagged as a bound; models that invent their detail
    are not flagged."""
    truth = _truth()
    d_a, d_b = _lowpass_data(truth, 21), _lowpass_data(truth, 22)
    mask = spherical_mask(BOX)
    cv = cross_validated_fsc(truth, truth, d_a, d_b, mask, PIXEL)
    assert cv.limited_by_data
    assert 12.0 <= cv.last_vouched_angstrom < 24.0
    # Past the cut the lower bound carries the exact model on, but no further than the data hold
    # the truth (12 Å) and not as far as the point estimate would.
    assert 12.0 <= cv.resolution_angstrom <= cv.last_vouched_angstrom
    past = np.arange(cv.box // 2 + 1) >= cv.vouched_shells
    assert np.all(cv.model_vs_truth_estimate[past] < 0.9)
    assert cv.to_dict()["limited_by_data"] is True
    invented = np.random.default_rng(9).normal(size=truth.shape)
    invented -= lowpass(invented, 8.0, PIXEL)
    smooth = lowpass(truth, 24.0, PIXEL) + 0.5 * truth.std() * invented
    assert not cross_validated_fsc(smooth, smooth, d_a, d_b, mask, PIXEL).limited_by_data
    noise_a, noise_b = _data(truth, 0.3 * truth.std(), 3), _data(truth, 0.3 * truth.std(), 4)
    full = cross_validated_fsc(truth, truth, noise_a, noise_b, mask, PIXEL)
    assert not full.limited_by_data  # the data vouch to Nyquist: a crossing or Nyquist, no bound


def test_the_report_says_when_its_resolution_is_a_bound(tmp_path):
    """The written report carries the bound in its headline and warnings (fsc.json, log)."""
    from cryosplat.reconstruct.engine_result import EngineResult, MapSettings
    from cryosplat.reconstruct.report import write_outputs

    model = GaussianModel.random(
        400, BOX, PIXEL, seed=1, radius_fraction=0.25, scale_angstrom=1.2, dtype=torch.float64
    )
    truth = model.voxelize().detach().numpy()
    data = (_lowpass_data(truth, 21), _lowpass_data(truth, 22))
    result = EngineResult((model, model), data_maps=data)
    settings = MapSettings(local_weight_sigma_px=0.0)
    report, summary = write_outputs(tmp_path, result, settings, warnings=["given"])
    assert report.cross_validated.limited_by_data
    assert report.headline.startswith("a bound set by the data")
    written = json.loads((tmp_path / "fsc.json").read_text())
    assert written["warnings"][0] == "given" and "is a bound" in written["warnings"][1]
    assert written["cross_validated"]["limited_by_data"] is True
    assert summary["resolution_definition"] == report.headline
    # The data half maps' resolution by direction, with the data maps: written and summarised.
    directional = written["data_half_maps_directional"]
    finest, coarsest = summary["data_half_maps_0143_by_direction_angstrom"]
    assert directional["finest_angstrom"] == finest <= coarsest == directional["coarsest_angstrom"]
    assert min(directional["resolution_angstrom"]) == finest


def test_where_the_data_stop_early_in_the_sphere_the_automatic_mask_is_tried():
    """A small molecule in noisy data, an exact model: in the spherical mask the solvent's noise
    stops the data vouching with the estimate still 1 (the lower bound past it carries the
    resolution only part of the way); within the automatic mask they vouch further, and the
    report keeps that (finer) estimate and names its mask."""
    from cryosplat.reconstruct.report import CrossValidationInputs, evaluate_half_maps

    model = GaussianModel.random(
        300, BOX, PIXEL, seed=1, radius_fraction=0.12, scale_angstrom=1.2, dtype=torch.float64
    )
    truth = model.voxelize().detach().numpy()
    data = (_data(truth, 10.0 * truth.std(), 3), _data(truth, 10.0 * truth.std(), 4))
    in_sphere = cross_validated_fsc(truth, truth, *data, spherical_mask(BOX), PIXEL)
    assert in_sphere.estimate_at_cut is not None and in_sphere.estimate_at_cut > 0.9
    report, _ = evaluate_half_maps(truth, truth, PIXEL, crossval=CrossValidationInputs(data))
    assert report.cv_mask.startswith("automatic mask")
    assert report.resolution_angstrom < 0.9 * in_sphere.resolution_angstrom
    assert "automatic mask" in report.headline
    assert report.to_dict()["cross_validated"]["mask"] == report.cv_mask
    # The sphere's own reading is kept beside it: the estimate there, the same as on its own.
    sphere = report.to_dict()["cross_validated"]["soft_spherical_mask_reading"]
    assert sphere["resolution_angstrom"] == pytest.approx(in_sphere.resolution_angstrom)
    assert sphere["resolution_angstrom"] > report.resolution_angstrom
    quiet = (_data(truth, 0.5 * truth.std(), 3), _data(truth, 0.5 * truth.std(), 4))
    read_in_sphere = evaluate_half_maps(truth, truth, PIXEL, crossval=CrossValidationInputs(quiet))[
        0
    ]
    assert read_in_sphere.cv_mask == "soft spherical mask"
    assert "soft_spherical_mask_reading" not in read_in_sphere.to_dict()["cross_validated"]


def test_a_tighter_masks_gain_over_the_sphere_is_read_where_the_data_vouch():
    """A truth with density in its solvent that the models lack (a noisy map's solvent, a
    detergent belt): within the automatic mask the models match it better than in the sphere, by
    the ratio ``mask_gain`` reads from the shells before the sphere's cut (against the truth's
    own ratio there); without such density the gain is 1. The masked estimate divided by it is
    on the sphere's scale, and a gain under 1 is refused."""
    molecule = GaussianModel.random(
        300, BOX, PIXEL, seed=1, radius_fraction=0.12, scale_angstrom=1.2, dtype=torch.float64
    )
    molecule = molecule.voxelize().detach().numpy()
    solvent = GaussianModel.random(
        2000, BOX, PIXEL, seed=5, radius_fraction=0.45, scale_angstrom=1.2, dtype=torch.float64
    )
    solvent = solvent.voxelize().detach().numpy()
    sphere = spherical_mask(BOX)
    tight = sphere * auto_mask(molecule, PIXEL)
    gains = []
    for share in (0.0, 1.0):
        truth = molecule + share * molecule.std() / solvent.std() * solvent
        data = _data(truth, 10.0 * truth.std(), 3), _data(truth, 10.0 * truth.std(), 4)
        in_sphere = cross_validate(DataSpectra(*data, sphere), molecule, molecule, PIXEL)
        masked = cross_validate(DataSpectra(*data, tight), molecule, molecule, PIXEL)
        gain = mask_gain(in_sphere, masked)
        cut = in_sphere.vouched_shells
        assert cut is not None and cut < BOX // 2
        shells = slice(cut - 5, cut)
        ratio = fsc(molecule * tight, truth * tight)[shells].sum() / (
            fsc(molecule * sphere, truth * sphere)[shells].sum()
        )
        assert abs(gain - ratio) < 0.05
        gains.append(gain)
        read = cross_validate(DataSpectra(*data, tight), molecule, molecule, PIXEL, 0, gain)
        assert np.allclose(
            read.half_model_vs_truth_estimate, masked.half_model_vs_truth_estimate / gain
        )
        against = cross_validate(
            DataSpectra(*data, tight), molecule, molecule, PIXEL, 0, reference=in_sphere
        )
        assert against.mask_gain == gain
        assert np.array_equal(against.model_vs_truth_estimate, read.model_vs_truth_estimate)
    assert gains[0] < 1.05 and gains[1] > 1.1
    with pytest.raises(ValueError, match="gain"):
        cross_validate(DataSpectra(*data, tight), molecule, molecule, PIXEL, 0, 0.5)


def _contaminated(truth, noise):
    """Data too noisy to read past a few shells, honest half models (the truth), and half models
    that each carry the other half's noise (as a weight made from both halves can carry it)."""
    rng = np.random.default_rng(21)
    n_a, n_b = noise * rng.normal(size=(2, *truth.shape))
    data = (truth + n_a, truth + n_b)
    carried = (truth + 0.3 * n_b, truth + 0.3 * n_a)
    return data, carried


def test_halves_that_carry_the_other_halfs_noise_are_not_vouched_for():
    """Half models that correlate with the other half's data more than those data's own FSC
    allows (``C_low > 1``) get nothing from the first such shell; honest ones on the same data
    are consistent throughout."""
    truth = _truth()
    data, carried = _contaminated(truth, 10.0 * truth.std())
    mask = spherical_mask(BOX)
    honest = cross_validated_fsc(truth, truth, *data, mask, PIXEL)
    assert honest.inconsistent_shell is None
    bad = cross_validated_fsc(*carried, *data, mask, PIXEL)
    shell = bad.inconsistent_shell
    assert shell is not None and shell < BOX // 2
    assert np.all(bad.half_model_vs_truth_estimate[shell:] == 0.0)
    assert bad.resolution_angstrom >= BOX * PIXEL / shell
    assert bad.to_dict()["inconsistent_from_angstrom"] == pytest.approx(BOX * PIXEL / shell)
    assert honest.to_dict()["inconsistent_from_angstrom"] is None


def test_the_report_estimates_on_the_halves_before_the_weight():
    # A weight made from both halves carries each half's noise into the other: the weighted
    # halves (here contaminated by the other half's data) must not be what the estimate reads.
    from cryosplat.reconstruct.half_map_report import (
        CrossValidationInputs,
        data_limit_warnings,
        evaluate_half_maps,
    )

    truth = _truth()
    data, carried = _contaminated(truth, 10.0 * truth.std())
    report, _ = evaluate_half_maps(
        truth, truth, PIXEL, crossval=CrossValidationInputs(data, carried, (truth, truth))
    )
    plain, _ = evaluate_half_maps(
        truth, truth, PIXEL, crossval=CrossValidationInputs(data, (truth, truth))
    )
    assert report.before_weight and not plain.before_weight
    assert report.resolution_angstrom == pytest.approx(plain.resolution_angstrom)
    assert report.cross_validated.inconsistent_shell is None
    assert "before the map's local weight" in report.headline
    assert report.to_dict()["cross_validated"]["halves"] == "before the map's local weight"
    assert plain.to_dict()["cross_validated"]["halves"] == "as they enter the map"
    # Without the halves before the weight, the weighted ones are read: inconsistent, vouching
    # for nothing past their first inconsistent shell, and the report says why.
    alone, _ = evaluate_half_maps(
        truth, truth, PIXEL, crossval=CrossValidationInputs(data, carried)
    )
    assert alone.cross_validated.inconsistent_shell is not None
    assert any("Check that the two half sets" in w for w in data_limit_warnings(alone))


def test_a_resolution_no_shell_vouches_for_is_said_so_and_written_as_null(tmp_path):
    from cryosplat.reconstruct.report import format_resolution
    from cryosplat.reconstruct.run_folder import write_json_atomic

    assert format_resolution(3.214) == "3.21 Å"
    assert "vouch for no shell" in format_resolution(float("inf"))
    path = tmp_path / "fsc.json"
    write_json_atomic(path, {"resolution_angstrom": float("inf"), "band": [1.0, float("nan")]})
    assert json.loads(path.read_text()) == {"resolution_angstrom": None, "band": [1.0, None]}


def test_data_spectra_made_once_serve_every_pair_of_models():
    """The data's spectra and sums made once (the per-stage check, the report) give what a
    fresh cross-validation of each pair gives, bootstrap band included."""
    truth = _truth()
    noise = 0.5 * truth.std()
    d_a, d_b = _data(truth, noise, 11), _data(truth, noise, 12)
    mask = spherical_mask(BOX)
    data = DataSpectra(d_a, d_b, mask, seed=3)
    for cut in (8.0, 5.0):
        m_a, m_b = lowpass(d_a, cut, PIXEL), lowpass(d_b, cut, PIXEL)
        once = cross_validate(data, m_a, m_b, PIXEL, n_bootstrap=20)
        fresh = cross_validated_fsc(m_a, m_b, d_a, d_b, mask, PIXEL, n_bootstrap=20, seed=3)
        np.testing.assert_array_equal(once.model_vs_truth_estimate, fresh.model_vs_truth_estimate)
        np.testing.assert_array_equal(
            once.resolution_samples_angstrom, fresh.resolution_samples_angstrom
        )
    monitor = ResolutionMonitor((d_a, d_b), PIXEL)
    model = GaussianModel.random(
        50, BOX, PIXEL, seed=4, radius_fraction=0.25, scale_angstrom=2.0, dtype=torch.float64
    )
    with torch.no_grad():
        volume = model.voxelize().numpy()
    direct = cross_validated_fsc(volume, volume, d_a, d_b, mask, PIXEL)
    assert monitor(model, model) == direct.resolution_angstrom
    with pytest.raises(ValueError, match="box 24"):
        cross_validate(data, volume[:24, :24, :24], volume[:24, :24, :24], PIXEL)
    with pytest.raises(ValueError, match="blocks must be positive"):
        DataSpectra(d_a, d_b, mask, blocks=0)


def test_a_bound_under_half_that_readable_data_contradict_is_no_crossing():
    """Where the data go unreadable for a few shells (a dip in the truth's spectrum) and come
    back, a lower bound under 0.5 there is no crossing if the next readable shell's estimate is
    0.5 or more; a readable shell under 0.5 is, and so is a bound with nothing readable after."""
    from cryosplat.validation.crossval import CrossValidatedFSC, reading_curve

    estimate = np.array([1.0, 0.95, 0.9, 0.45, 0.48, 0.7, 0.6, 0.4, 0.3, 0.2])
    readable = np.array([1, 1, 1, 0, 0, 1, 1, 1, 0, 0], dtype=bool)
    np.testing.assert_array_equal(
        reading_curve(estimate, readable), [1.0, 0.95, 0.9, 0.5, 0.5, 0.7, 0.6, 0.4, 0.3, 0.2]
    )
    flat = np.zeros(10)

    def cv(readable_shells, vouched=None):
        return CrossValidatedFSC(
            18,
            2.0,
            flat,
            flat,
            flat,
            estimate,
            vouched_shells=vouched,
            readable_shells=readable_shells,
        )

    # Read past the dip: 0.6 at shell 6, 0.4 at shell 7 (readable): the crossing at 6.5.
    assert cv(readable).resolution_angstrom == pytest.approx(18 * 2.0 / 6.5)
    # The dip's shells readable (estimates, not bounds): the crossing is there, at shell 2.89.
    assert cv(np.ones(10, dtype=bool)).resolution_angstrom == pytest.approx(
        18 * 2.0 / (2 + 0.4 / 0.45)
    )
    # Nothing readable after the dip (the cut at shell 3, the default): the bound is the crossing.
    assert cv(None, vouched=3).resolution_angstrom == pytest.approx(18 * 2.0 / (2 + 0.4 / 0.45))
    # A readable shell past the dip under 0.5: the dip's bound stays a crossing.
    low = estimate.copy()
    low[5] = 0.45
    assert reading_curve(low, readable)[3] == pytest.approx(0.45)
