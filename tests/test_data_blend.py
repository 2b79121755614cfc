"""The half maps blended, shell by shell, with their own data's inversion (validation.data_blend)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cryosplat.io.mrc import read_map
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.engine_result import EngineResult
from cryosplat.reconstruct.report import write_outputs
from cryosplat.validation import data_blend, map_blend_weights
from cryosplat.validation.data_blend import blend_halves, masked_mean_correction
from cryosplat.validation.fsc import fsc
from cryosplat.validation.local_weight import apply_local_weight, local_wiener_weight
from cryosplat.validation.mask_choice import DataUnderMasks, read_in_masks
from cryosplat.validation.masks import spherical_mask

BOX = 32


def _blended(*maps, **options):
    """``(half A, half B, model weight)`` of :func:`blend_halves`."""
    blend = blend_halves(*maps, **options)
    return *blend.halves, blend.model_weight


def _frequency(box: int = BOX) -> np.ndarray:
    f = np.fft.fftfreq(box)
    return np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)


def _field(seed: int, box: int = BOX, scale: float = 1.0, profile=None) -> np.ndarray:
    """A random field white inside the Nyquist sphere (times ``profile(|k|)``), empty outside
    (where the blend keeps the model: there are no data)."""
    k = _frequency(box)
    white = np.fft.fftn(np.random.default_rng(seed).standard_normal((box,) * 3))
    shape = (k <= 0.5) * (1.0 if profile is None else profile(k))
    return scale * np.fft.ifftn(white * shape).real


def test_the_weight_is_the_analytic_optimum_for_a_shared_bias(monkeypatch):
    """Models ``T + e`` (an error both halves share, independent of the data), data ``T + n``:
    the error of one half, ``α M + (1 − α) D``, is least at ``α = σ²_n / (σ²_e + σ²_n)``; that
    of the map, the mean of the halves, at ``(σ²_n/2) / (σ²_e + σ²_n/2)`` (the data's noise
    halves in the mean, the shared error does not), where its FSC with the truth is highest
    too. Moved to the map's estimated FSC whatever the gain (``MAP_GAIN_SIGMAS`` 0) ``α`` is
    the map's optimum; never moved (infinite) each half's; the margin on the estimate only
    moves that towards the model."""
    truth, bias = _field(0), _field(1, scale=0.5)
    models = [truth + bias, truth + bias]
    data = [truth + _field(2, scale=0.8), truth + _field(3, scale=0.8)]
    for_map, for_half = 0.32 / (0.25 + 0.32), 0.64 / (0.25 + 0.64)
    monkeypatch.setattr(map_blend_weights, "MAP_GAIN_SIGMAS", 0.0)
    _, _, alpha = _blended(*models, *data)
    assert alpha[0] == 1.0  # the map's mean stays the model's
    assert abs(alpha[4:].mean() - for_map) < 0.03  # shells of many coefficients
    np.testing.assert_allclose(alpha[4:], for_map, atol=0.08)
    monkeypatch.setattr(map_blend_weights, "MAP_GAIN_SIGMAS", np.inf)
    _, _, per_half = _blended(*models, *data)
    monkeypatch.setattr(data_blend, "DATA_SIGNAL_SIGMAS", np.inf)  # the margin on every shell
    _, _, cautious = _blended(*models, *data)
    np.testing.assert_allclose(per_half[4:], for_half, atol=0.05)
    assert np.all(cautious >= per_half - 1e-12)
    np.testing.assert_allclose(cautious[8:], for_half, atol=0.1)


def test_the_map_takes_more_data_where_the_models_share_their_error(monkeypatch):
    """Half models that share an error take more of the data than each half's optimum, and
    the map's error and FSC with the truth are better for it; half models with independent
    errors stay at each half's optimum (they share nothing the mean would keep); half models
    that are the truth shrunk (a scale per shell, as the fit's prior shrinks what it holds
    weakly) would have the map's FSC take less of the data, but ``α`` only ever moves down:
    it stays each half's. A box of 48: its outer shells hold enough coefficients for the gains
    to count."""
    box = 48
    truth = _field(0, box=box)
    data = [truth + _field(2, box=box, scale=0.8), truth + _field(3, box=box, scale=0.8)]
    shared = [truth + _field(1, box=box, scale=0.5)] * 2
    independent = [truth + _field(s, box=box, scale=0.5) for s in (6, 7)]
    shrunk = [0.5 * truth + _field(s, box=box, scale=0.05) for s in (4, 5)]

    def blended(models):
        a, b, alpha = _blended(*models, *data)
        mean = 0.5 * (a + b)
        return alpha, float(np.mean((mean - truth) ** 2)), float(fsc(mean, truth)[2:].mean())

    alpha_shared, error_shared, fsc_shared = blended(shared)
    alpha_independent, _, _ = blended(independent)
    alpha_shrunk, _, _ = blended(shrunk)
    monkeypatch.setattr(map_blend_weights, "MAP_GAIN_SIGMAS", np.inf)
    per_half_shared, error_per_half, fsc_per_half = blended(shared)
    per_half_independent, _, _ = blended(independent)
    per_half_shrunk, _, _ = blended(shrunk)
    for_map = 0.32 / (0.25 + 0.32)
    assert np.all(alpha_shared <= per_half_shared + 1e-12)
    assert abs(alpha_shared[13:].mean() - for_map) < 0.03
    assert error_shared < 0.97 * error_per_half and fsc_shared > fsc_per_half
    np.testing.assert_allclose(alpha_independent[4:], per_half_independent[4:], atol=0.03)
    assert per_half_shrunk[4:].max() < 0.8  # each half's squared error mends the scale
    np.testing.assert_array_equal(alpha_shrunk, per_half_shrunk)


def test_where_the_data_hold_signal_the_low_shells_weight_is_unbiased(monkeypatch):
    """The shells of few coefficients, where the data hold signal (their FSC far above chance):
    over eight realisations each half's ``α`` (``MAP_GAIN_SIGMAS`` infinite: no move to the
    map's FSC) averages its analytic optimum. Taken a standard error low
    there too (the margin on every shell), it averaged 0.04 above it: the data's correction of
    an error both half models share withheld where it is as large as that error (EMD-5625 at
    169 Å in a box of 80, round 2, session 53)."""
    monkeypatch.setattr(map_blend_weights, "MAP_GAIN_SIGMAS", np.inf)
    expected = 0.6**2 / (0.5**2 + 0.6**2)

    def mean_low_shells() -> float:
        weights = []
        for seed in range(8):
            truth, bias = _field(10 * seed), _field(10 * seed + 1, scale=0.5)
            noisy = [truth + _field(10 * seed + i, scale=0.6) for i in (2, 3)]
            weights.append(_blended(truth + bias, truth + bias, *noisy)[2][2:7])
        return float(np.mean(weights))

    assert abs(mean_low_shells() - expected) < 0.02
    monkeypatch.setattr(data_blend, "DATA_SIGNAL_SIGMAS", np.inf)
    assert mean_low_shells() > expected + 0.03


def test_the_model_is_kept_where_the_data_hold_nothing():
    truth = _field(0)
    models = [truth + _field(1, scale=0.1), truth + _field(2, scale=0.1)]
    data = [_field(3, scale=50.0), _field(4, scale=50.0)]  # noise only
    a, b, alpha = _blended(*models, *data)
    assert alpha[2:].min() >= 0.95
    curve = fsc(0.5 * (a + b), truth)[2:]
    # Data of no signal keep the margin (DATA_SIGNAL_SIGMAS): without it half the shells let
    # their noise in on a chance excess (the median FSC 0.83); with it a shell in six or so may
    # still let a little in.
    assert np.median(curve) > 0.99 and curve.min() > 0.9


def test_where_no_view_samples_the_models_are_kept_and_the_weight_read_elsewhere():
    """Data zero outside a band of 30° about the xy plane (a missing cone of 60°, as views within
    30° of one axis leave), models the truth plus a shared error: in the band the data are taken
    as where all is sampled; outside it the models stay (over the whole shell their fill-in
    counted as error against zero data, and the blend emptied the cone)."""
    truth = _field(0)
    bias = _field(1, scale=2.0)
    k = np.fft.fftfreq(BOX) * BOX
    kz, ky, kx = np.meshgrid(k, k, k[: BOX // 2 + 1], indexing="ij")
    band = np.abs(kz) <= np.sin(np.radians(30.0)) * np.sqrt(kx**2 + ky**2 + kz**2)

    def in_band(volume):
        return np.fft.irfftn(np.fft.rfftn(volume) * band, s=volume.shape, axes=(0, 1, 2))

    models = [truth + bias, truth + bias]
    data = [in_band(truth + _field(2, scale=0.1)), in_band(truth + _field(3, scale=0.1))]
    a, b, alpha = _blended(*models, *data, sampled=torch.as_tensor(band))
    _, _, every = _blended(*models, *[truth + _field(s, scale=0.1) for s in (2, 3)])
    np.testing.assert_allclose(alpha[2:], every[2:], atol=0.05)
    assert alpha[2:].max() < 0.05
    blended = np.fft.rfftn(0.5 * (a + b))
    expected = np.where(band, np.fft.rfftn(truth), np.fft.rfftn(truth + bias))
    blended[0, 0, 0] = expected[0, 0, 0]  # the map's mean stays the model's (α(0) = 1)
    assert np.linalg.norm(blended - expected) < 0.1 * np.linalg.norm(expected)
    _, _, blind = _blended(*models, *data)  # the cone counted against the models
    assert blind[2:].min() < 0.01
    with pytest.raises(ValueError, match="sampled has shape"):
        _blended(*models, *data, sampled=torch.as_tensor(band[:-1]))


def test_the_data_are_taken_where_the_models_share_a_large_error():
    truth = _field(0)
    bias = _field(1, scale=2.0)
    models = [truth + bias, truth + bias]
    data = [truth + _field(2, scale=0.1), truth + _field(3, scale=0.1)]
    a, b, alpha = _blended(*models, *data)
    assert alpha[2:].max() < 0.05
    blended, model_mean = 0.5 * (a + b), 0.5 * (models[0] + models[1])
    assert np.mean((blended - truth) ** 2) < 0.05 * np.mean((model_mean - truth) ** 2)


def test_the_blend_is_closer_to_the_truth_than_either_map():
    """Models that hold the high shells well and the low ones with a distortion both share (as a
    mixture of Gaussians errs); data good at the low shells, noisy at the high ones."""
    truth = _field(0, profile=lambda k: np.exp(-10 * k**2))
    shared = _field(1, scale=0.3, profile=lambda k: k < 0.15)

    def noise(seed, scale):  # rising with frequency, as the data's noise per shell does
        return _field(seed, scale=scale, profile=lambda k: 0.02 + k)

    models = [truth + shared + noise(2, 0.3), truth + shared + noise(3, 0.3)]
    data = [truth + noise(4, 2.0), truth + noise(5, 2.0)]
    a, b, alpha = _blended(*models, *data)

    def error(volume):
        return float(np.mean((volume - truth) ** 2))

    blended = error(0.5 * (a + b))
    assert blended < 0.9 * error(0.5 * (models[0] + models[1]))
    assert blended < 0.8 * error(0.5 * (data[0] + data[1]))
    assert alpha[2] < 0.5 and alpha[-1] > 0.9  # data at the low shells, the model at the high


def test_the_weights_are_estimated_where_the_molecule_is():
    """Models that share an error inside the mask, data whose noise is mostly outside it (the
    solvent of a box): estimated over the whole box the solvent's noise keeps the models' error;
    within the mask the data correct it, and the map inside the mask is closer to the truth."""
    mask = spherical_mask(BOX, radius_px=8.0, soft_width_px=3.0)
    solvent = 1.0 - spherical_mask(BOX, radius_px=11.0, soft_width_px=2.0)
    truth = _field(0) * mask
    models = [truth + _field(1, scale=0.3) * mask] * 2

    def noise(seed):  # strong in the solvent, weak in the molecule
        return _field(seed, scale=2.0) * solvent + _field(seed + 10, scale=0.05)

    data = [truth + noise(2), truth + noise(3)]
    whole = _blended(*models, *data)
    masked = _blended(*models, *data, mask=mask)
    assert np.median(masked[2][2:-1]) < 0.3 < np.median(whole[2][2:-1])

    def error(volume):
        return float(np.sum(((volume - truth) * mask) ** 2))

    assert error(0.5 * (masked[0] + masked[1])) < 0.5 * error(0.5 * (whole[0] + whole[1]))
    with pytest.raises(ValueError, match="mask has shape"):
        _blended(*models, *data, mask=mask[:-1])


def test_each_half_is_made_of_its_own_model_and_data():
    """``A'`` is half A's model and data mixed by ``α``: half B enters only through ``α``."""
    maps = [_field(s) for s in range(4)]
    a, b, alpha = _blended(*maps)
    f = np.fft.fftfreq(BOX) * BOX
    shells = np.round(
        np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2)
    )
    per = np.where(shells <= BOX // 2, alpha[np.minimum(shells, BOX // 2).astype(int)], 1.0)
    expected_a = np.fft.ifftn(per * np.fft.fftn(maps[0]) + (1 - per) * np.fft.fftn(maps[2])).real
    np.testing.assert_allclose(a, expected_a, atol=1e-10)
    assert np.all((alpha >= 0) & (alpha <= 1)) and alpha.shape == (BOX // 2 + 1,)


def test_odd_boxes_and_bad_shapes():
    maps = [_field(s, box=15) for s in range(4)]
    a, _, alpha = _blended(*maps)
    assert a.shape == (15, 15, 15) and alpha.shape == (8,)
    with pytest.raises(ValueError, match="one shape"):
        _blended(_field(0), _field(1), _field(2), _field(3, box=16))


def _model(seed: int) -> GaussianModel:
    return GaussianModel.random(300, 24, 2.0, seed=seed, radius_fraction=0.3)


def test_written_map_is_the_weighted_mean_of_the_blended_halves(tmp_path):
    model_a, model_b = _model(1), _model(2)
    # Data that agree with each other and with neither model: the blend takes them.
    common = 0.5 * (model_a.voxelize() + model_b.voxelize()).detach().double().numpy()
    data = tuple(common + _field(seed, box=24, scale=1e-3 * common.std()) for seed in (3, 4))
    _, summary = write_outputs(tmp_path, EngineResult((model_a, model_b), blend_maps=data))
    a, _ = read_map(tmp_path / "half_map_A.mrc")
    b, _ = read_map(tmp_path / "half_map_B.mrc")
    mask = spherical_mask(24)  # the report's
    ba, bb, alpha = _blended(a, b, *data, mask=mask)
    offsets = [masked_mean_correction(m, d, alpha, mask) for m, d in zip((a, b), data, strict=True)]
    assert min(abs(o) for o in offsets) > 1e-4 * np.abs(a).max()  # the test sees them
    full, _ = read_map(tmp_path / "map.mrc")
    weight = local_wiener_weight(ba, bb)  # made before the constant is added
    expected = 0.5 * (
        apply_local_weight(ba, weight) + offsets[0] + apply_local_weight(bb, weight) + offsets[1]
    )
    # The half maps read back are float32: the weight made of them differs at that rounding.
    np.testing.assert_allclose(full, expected, rtol=1e-4, atol=1e-5 * np.abs(full).max())
    written = json.loads((tmp_path / "fsc.json").read_text())
    np.testing.assert_allclose(written["map_model_weight_by_shell"], alpha, atol=1e-4)
    assert "blended" in summary["map"] and "blended" in written["map"]
    # The half maps written are the models' own, not blended.
    assert not np.allclose(a, ba, atol=1e-7)


def test_the_reported_resolution_is_the_written_maps(tmp_path):
    """The cross-validated resolution is read on the halves as they enter map.mrc (blended and
    weighted), not on the half models the half maps hold."""
    model_a, model_b = _model(1), _model(2)
    common = 0.5 * (model_a.voxelize() + model_b.voxelize()).detach().double().numpy()
    data = tuple(common + _field(seed, box=24, scale=0.3 * common.std()) for seed in (3, 4))
    result = EngineResult((model_a, model_b), data_maps=data, blend_maps=data)
    report, _ = write_outputs(tmp_path, result)
    a, _ = read_map(tmp_path / "half_map_A.mrc")
    b, _ = read_map(tmp_path / "half_map_B.mrc")
    weight, _ = read_map(tmp_path / "local_weight.mrc")
    automatic, _ = read_map(tmp_path / "mask.mrc")
    mask = spherical_mask(24)
    ba, bb, _ = _blended(a, b, *data, mask=mask)
    spectra = DataUnderMasks(*_tensors([data, mask, automatic]))

    def read(halves):  # the report's reading: the sphere, or the automatic mask where finer
        return read_in_masks(_tensors(halves), spectra, 2.0).chosen

    of_map = read([apply_local_weight(h, weight) for h in (ba, bb)])
    of_models = read([a, b])
    assert report.resolution_angstrom == pytest.approx(of_map.resolution_angstrom, rel=1e-3)
    np.testing.assert_allclose(
        report.cross_validated.model_vs_truth_estimate, of_map.model_vs_truth_estimate, atol=1e-3
    )
    assert not np.allclose(of_map.model_vs_truth_estimate, of_models.model_vs_truth_estimate)


def _tensors(items):
    """Nested lists of maps as float64 tensors (the report computes its FSCs so)."""
    if isinstance(items, (list, tuple)):
        return [_tensors(x) for x in items]
    return torch.as_tensor(np.asarray(items, dtype=np.float64))


def test_the_datas_solvent_stays_out_of_the_blended_map():
    """The weights are estimated in the mask, and the correction is taken there too: noise the
    data hold only in the solvent (outside the mask) does not enter the map, whatever ``α``."""
    mask = spherical_mask(BOX)
    solvent = mask == 0
    truth, bias = _field(0), _field(1, scale=0.5)
    models = [truth + bias, truth + bias]
    inside = [truth + _field(2, scale=0.3), truth + _field(3, scale=0.3)]
    data = [d + 20.0 * _field(4 + i) * solvent for i, d in enumerate(inside)]
    a, b, alpha = _blended(*models, *data, mask=mask)
    assert (1 - alpha[2:]).mean() > 0.5  # the data are taken at most shells
    clean_a, clean_b, clean_alpha = _blended(*models, *inside, mask=mask)
    np.testing.assert_allclose(alpha, clean_alpha)  # the solvent does not move the weights
    np.testing.assert_allclose(a, clean_a, atol=1e-9)  # nor the maps
    np.testing.assert_allclose(b, clean_b, atol=1e-9)


def test_the_masked_mean_correction_is_the_mass_the_model_misses_inside_the_mask():
    """``(1 − α(1)) ⟨m (D − M)⟩``: a blob the model lacks, inside the mask, at the first shell's
    weight; what lies outside the mask does not count."""
    data = _field(5)
    blob = np.exp(-0.5 * (np.indices((BOX,) * 3) - BOX // 2 - 3).__pow__(2).sum(0) / 2.0**2)
    far = np.zeros_like(data)
    far[0, 0, 0] = 50.0  # a corner the mask leaves out
    mask = spherical_mask(BOX)
    alpha = np.full(BOX // 2 + 1, 0.9)
    alpha[1] = 0.25
    got = masked_mean_correction(data - blob - far, data, alpha, mask)
    assert got == pytest.approx(0.75 * float((mask * blob).sum()) / BOX**3, rel=1e-6)
    assert masked_mean_correction(data, data, alpha, mask) == 0.0
    alpha[1] = 1.0  # the first shell the model's: nothing to correct
    assert masked_mean_correction(data - blob, data, alpha, mask) == 0.0
    alpha[1] = 0.0  # no mask: the whole box, the corner too
    assert masked_mean_correction(data - blob - far, data, alpha) == pytest.approx(
        float((blob + far).sum()) / BOX**3, rel=1e-6
    )
    with pytest.raises(ValueError, match="one weight per shell"):
        masked_mean_correction(data, data, np.ones(1), mask)
    with pytest.raises(ValueError, match="mask has shape"):
        masked_mean_correction(data, data, alpha, mask[:-1])


def test_a_model_missing_mass_off_centre_gets_the_datas_first_shell(tmp_path):
    """The molecule off the box's centre and the models missing part of it at low resolution
    (issue 11, round 2 session 42): the written map's first shell follows the data's, as the
    blend means it to, where the blend alone (its zero frequency the model's) fell short."""
    box, pixel = 24, 2.0
    truth_model = GaussianModel.random(200, box, pixel, seed=7, radius_fraction=0.12)
    with torch.no_grad():
        truth_model.means += torch.tensor([8.0, -6.0, 4.0])  # Å: off the centre
    truth = truth_model.voxelize().detach().double().numpy()
    lost = np.exp(
        -0.5
        * ((np.indices((box,) * 3) - np.array([14, 9, 16])[:, None, None, None]) ** 2).sum(0)
        / 5.0**2
    )
    lost *= 0.3 * truth.max()
    halves = [truth - lost + _field(s, box=box, scale=0.02 * truth.std()) for s in (11, 12)]
    data = tuple(truth + _field(s, box=box, scale=0.01 * truth.std()) for s in (13, 14))
    sphere = spherical_mask(box)
    ba, bb, alpha = _blended(*halves, *data, mask=sphere)
    assert alpha[1] < 0.5  # the data hold the first shell
    offsets = [
        masked_mean_correction(h, d, alpha, sphere) for h, d in zip(halves, data, strict=True)
    ]
    corrected = 0.5 * (ba + bb) + 0.5 * sum(offsets)
    first = [fsc(x * sphere, truth * sphere)[1] for x in (0.5 * (ba + bb), corrected)]
    assert first[1] > first[0] + 0.003  # 0.9985 against 0.9942
    assert first[1] > fsc(0.5 * (data[0] + data[1]) * sphere, truth * sphere)[1] - 0.002
