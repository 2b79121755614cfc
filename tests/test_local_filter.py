"""A map filtered locally: each voxel is the map sharpened and low-passed at its own resolution;
a uniform resolution gives the global sharpening's map."""

from __future__ import annotations

import numpy as np
import pytest

from cryosplat.validation.local_filter import filter_levels, local_filter
from cryosplat.validation.sharpening import sharpen

BOX, PIXEL, BFACTOR = 32, 2.0, -40.0
EXTENT = BOX * PIXEL


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(3).standard_normal((BOX,) * 3).astype(np.float32)


def test_a_uniform_local_resolution_is_the_global_sharpening(volume):
    for shells in (5, 9.0, 13):  # on a rung, and between two (9.0 is a rung too)
        resolution = EXTENT / shells
        local = np.full(volume.shape, resolution)
        expected = sharpen(volume, PIXEL, BFACTOR, resolution)
        got = local_filter(volume, PIXEL, local, BFACTOR)
        np.testing.assert_allclose(got, expected, atol=2e-5 * np.abs(expected).max())


def test_each_region_takes_its_own_resolution(volume):
    local = np.full(volume.shape, EXTENT / 6)
    local[:, :, BOX // 2 :] = EXTENT / 12  # a finer half
    got = local_filter(volume, PIXEL, local, BFACTOR)
    coarse = sharpen(volume, PIXEL, BFACTOR, EXTENT / 6)
    fine = sharpen(volume, PIXEL, BFACTOR, EXTENT / 12)
    scale = np.abs(fine).max()
    np.testing.assert_allclose(got[..., : BOX // 2], coarse[..., : BOX // 2], atol=2e-5 * scale)
    np.testing.assert_allclose(got[..., BOX // 2 :], fine[..., BOX // 2 :], atol=2e-5 * scale)
    assert np.abs(coarse - fine)[..., BOX // 2 :].max() > 0.1 * scale  # the two differ there


def test_between_two_rungs_a_voxel_mixes_them_linearly_in_frequency(volume):
    local = np.full(volume.shape, EXTENT / 7.25)  # a quarter of the way from shell 7 to 8
    local[0, 0, 0] = EXTENT / 7  # the rungs: 7 and 8
    local[0, 0, 1] = EXTENT / 8
    got = local_filter(volume, PIXEL, local, BFACTOR)
    seven = sharpen(volume, PIXEL, BFACTOR, EXTENT / 7)
    eight = sharpen(volume, PIXEL, BFACTOR, EXTENT / 8)
    np.testing.assert_allclose(got[1:], (0.75 * seven + 0.25 * eight)[1:], atol=1e-4)


def test_the_rungs_span_the_resolutions_one_shell_apart_or_at_most_so_many():
    np.testing.assert_allclose(filter_levels(np.array([3.2, 7.9])), [3, 4, 5, 6, 7, 8])
    many = filter_levels(np.array([10.0, 110.0]), max_levels=11)
    np.testing.assert_allclose(many, np.arange(10, 111, 10))
    assert len(filter_levels(np.array([1.0, 128.0]))) <= 48
    with pytest.raises(ValueError, match="max_levels must be at least 2, got 1"):
        filter_levels(np.array([1.0]), 1)


def test_resolutions_past_nyquist_are_read_at_nyquist(volume):
    finer = local_filter(volume, PIXEL, np.full(volume.shape, 1.0), 0.0)
    nyquist = local_filter(volume, PIXEL, np.full(volume.shape, 2 * PIXEL), 0.0)
    np.testing.assert_allclose(finer, nyquist, atol=1e-6)


def test_bad_local_resolutions_are_refused_naming_the_value(volume):
    with pytest.raises(ValueError, match="shape"):
        local_filter(volume, PIXEL, np.ones((4, 4, 4)), BFACTOR)
    bad = np.full(volume.shape, 8.0)
    bad[1, 2, 3] = 0.0
    with pytest.raises(ValueError, match="positive and finite, got 0.0"):
        local_filter(volume, PIXEL, bad, BFACTOR)


def test_coarser_readings_are_read_at_the_coarsest_given(volume):
    local = np.full(volume.shape, EXTENT / 12)
    local[:, :, BOX // 2 :] = EXTENT / 3  # a region read far coarser than the map's resolution
    got = local_filter(volume, PIXEL, local, BFACTOR, coarsest_angstrom=EXTENT / 6)
    expected = local_filter(volume, PIXEL, np.minimum(local, EXTENT / 6), BFACTOR)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    six = sharpen(volume, PIXEL, BFACTOR, EXTENT / 6)
    np.testing.assert_allclose(got[..., BOX // 2 :], six[..., BOX // 2 :], atol=1e-4)
    with pytest.raises(ValueError, match="coarsest_angstrom must be positive, got -1"):
        local_filter(volume, PIXEL, local, BFACTOR, coarsest_angstrom=-1.0)
