"""A tighter mask's FSC noise: the share of the box a soft mask keeps, the spread of a masked
noise FSC it predicts, and the cross-validated resolution read with that noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.core.fourier import squared_radius
from cryosplat.model.gaussians import GaussianModel
from cryosplat.validation.crossval import (
    LOWER_BOUND_SIGMAS,
    DataSpectra,
    cross_validate,
    pool_width,
    tighter_mask_noise_scale,
    wide_pool_width,
)
from cryosplat.validation.crossval import _fsc_sigma as fsc_sigma
from cryosplat.validation.fsc import fsc
from cryosplat.validation.masks import auto_mask, effective_volume_fraction, spherical_mask

BOX, PIXEL = 48, 2.0


def _radius(box: int = BOX) -> np.ndarray:
    return squared_radius(box, 3, dtype=torch.float64).sqrt().numpy()


def test_a_binary_mask_keeps_its_share_of_the_box_and_a_soft_one_less_than_its_support():
    r = _radius()
    binary = (r < 10).astype(np.float64)
    assert effective_volume_fraction(binary) == pytest.approx(binary.mean())
    assert effective_volume_fraction(np.ones((BOX,) * 3)) == pytest.approx(1.0)
    soft = np.clip((14 - r) / 4, 0, 1)
    assert (r < 10).mean() < effective_volume_fraction(soft) < (r < 14).mean()
    with pytest.raises(ValueError, match="zero everywhere"):
        effective_volume_fraction(np.zeros((BOX,) * 3))


def test_a_masked_noise_fsc_spreads_as_the_kept_share_to_the_power_minus_a_third():
    """Two independent noise maps under masks keeping less and less of the box: the spread of
    their FSC over the middle shells grows as the share to the power −1/3 (the shell's
    independent samples, a surface), not −1/2 (a volume)."""
    rng = np.random.default_rng(0)
    r = _radius()
    shells = slice(6, 22)
    masks = {"none": np.ones((BOX,) * 3), "small": np.clip((9 - r) / 3, 0, 1)}
    spread = {}
    for name, mask in masks.items():
        values = [
            fsc(a * mask, b * mask)[shells] for a, b in rng.normal(size=(8, 2, BOX, BOX, BOX))
        ]
        spread[name] = float(np.std(values))
    scale = tighter_mask_noise_scale(masks["none"], masks["small"])
    share = effective_volume_fraction(masks["small"])
    assert scale == pytest.approx(share ** (-1.0 / 3.0))
    assert spread["small"] / spread["none"] == pytest.approx(scale, rel=0.25)
    assert spread["small"] / spread["none"] < 0.7 * share**-0.5
    assert tighter_mask_noise_scale(masks["small"], masks["none"]) == 1.0  # never below one


def test_with_the_tighter_masks_noise_the_data_vouch_no_further():
    """A small molecule in noisy data: under the automatic mask, fewer shells' data FSC is
    read with that mask's noise than with the sphere's, the resolution reaches no further, and a
    scale under one is refused."""
    model = GaussianModel.random(
        300, BOX, PIXEL, seed=1, radius_fraction=0.12, scale_angstrom=1.2, dtype=torch.float64
    )
    truth = model.voxelize().detach().numpy()
    rng = np.random.default_rng(3)
    data = tuple(truth + 10.0 * truth.std() * rng.normal(size=truth.shape) for _ in range(2))
    sphere = spherical_mask(BOX)
    tight = sphere * auto_mask(truth, PIXEL)
    scale = tighter_mask_noise_scale(sphere, tight)
    assert scale > 1.2
    spectra = DataSpectra(*data, tight)
    plain = cross_validate(spectra, truth, truth, PIXEL)
    noisy = cross_validate(spectra, truth, truth, PIXEL, noise_scale=scale)
    assert noisy.vouched_shells < plain.vouched_shells  # the masked FSC's own noise, read as such
    assert noisy.resolution_angstrom >= plain.resolution_angstrom
    with pytest.raises(ValueError, match="noise_scale"):
        cross_validate(spectra, truth, truth, PIXEL, noise_scale=0.5)


def test_a_tighter_masks_reading_takes_the_lower_bound_past_its_cut():
    """Without the wide pool past the cut (a tighter mask's reading), every shell past the cut
    whose data FSC cannot be read gets the lower bound ``C_low`` of its own pooled shell, where
    the sphere's reading estimated some of them with the data's FSC pooled wider."""
    model = GaussianModel.random(
        300, BOX, PIXEL, seed=1, radius_fraction=0.12, scale_angstrom=1.2, dtype=torch.float64
    )
    truth = model.voxelize().detach().numpy()
    rng = np.random.default_rng(3)
    data = tuple(truth + 10.0 * truth.std() * rng.normal(size=truth.shape) for _ in range(2))
    spectra = DataSpectra(*data, spherical_mask(BOX))
    pooled = cross_validate(spectra, truth, truth, PIXEL)
    bound = cross_validate(spectra, truth, truth, PIXEL, pool_past_cut=False)
    cut = bound.vouched_shells
    assert cut is not None and cut < BOX // 2
    unread = (np.arange(BOX // 2 + 1) >= cut) & ~bound.readable_shells
    assert unread.sum() > 5
    data_fsc, cross_a, cross_b, _ = spectra.shell_terms(truth, truth).curves(None, pool_width(BOX))
    k, sigma = LOWER_BOUND_SIGMAS, fsc_sigma(BOX, pool_width(BOX))
    c_low = (0.5 * (cross_a + cross_b) - k * sigma) / np.sqrt(np.maximum(data_fsc, 0) + k * sigma)
    c_low = np.clip(c_low, 0.0, 1.0)
    assert np.allclose(bound.half_model_vs_truth_estimate[unread], c_low[unread])
    assert not np.allclose(pooled.half_model_vs_truth_estimate[unread], c_low[unread])
    before = slice(0, cut)  # the shells the data vouch for are read alike
    assert np.array_equal(
        bound.model_vs_truth_estimate[before], pooled.model_vs_truth_estimate[before]
    )


def test_the_wide_pool_past_the_cut_keeps_its_share_of_a_small_box():
    """Six shells on boxes of 48 and more; at smaller boxes the same share of the shells (a box
    of 20 has ten: two), never none."""
    assert [wide_pool_width(b) for b in (256, 96, 48)] == [6, 6, 6]
    assert [wide_pool_width(b) for b in (40, 20, 8, 2)] == [5, 2, 1, 1]
