"""FSC, resolution crossing, phase randomisation, masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.core.fourier import squared_radius
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.half_map_report import format_resolution
from cryosplat.validation.fsc import (
    crossing_shell,
    fsc,
    half_grid_shells,
    map_spectrum,
    masked_fsc,
    masked_fscs,
    phase_randomize,
    resolution_at,
    spectra_fsc,
)
from cryosplat.validation.masks import _dilate_cube, auto_mask, lowpass, spherical_mask


def _blob_map(box=48, pixel=2.0, seed=0):
    model = GaussianModel.random(
        200, box, pixel, seed=seed, radius_fraction=0.2, scale_angstrom=2.5, dtype=torch.float64
    )
    return model.voxelize().detach().numpy()


def test_identical_maps_correlate_fully():
    v = _blob_map()
    assert np.allclose(fsc(v, v), 1.0)


def test_independent_noise_does_not_correlate():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 48, 48, 48))
    curve = fsc(a, b)
    assert np.abs(curve[6:]).max() < 0.15


def test_noise_level_sets_the_crossing():
    rng = np.random.default_rng(1)
    v = _blob_map()
    low = [
        fsc(v + s * rng.normal(size=v.shape), v + s * rng.normal(size=v.shape))
        for s in (0.2 * v.std(), 2.0 * v.std())
    ]
    r_clean = resolution_at(low[0], 0.143, 48, 2.0)
    r_noisy = resolution_at(low[1], 0.143, 48, 2.0)
    assert r_clean < r_noisy


def test_crossing_interpolates_and_reports_none_when_never_below():
    curve = np.array([1.0, 0.9, 0.5, 0.1, 0.0])
    assert crossing_shell(curve, 0.3) == pytest.approx(2.5)
    assert crossing_shell(np.ones(5), 0.143) is None
    assert resolution_at(np.ones(5), 0.143, 8, 1.5) == pytest.approx(3.0)  # Nyquist
    assert resolution_at(curve, 0.3, 8, 1.5) == pytest.approx(8 * 1.5 / 2.5)


def test_a_curve_under_the_threshold_at_the_first_shell_holds_no_resolution():
    # Interpolated between the zero frequency (1.0) and shell 1 the crossing would lie at shell
    # 0.625, a "resolution" 1.6 times the box's edge, which no shell holds.
    curve = np.array([1.0, 0.2, 0.1, 0.05, 0.0])
    assert crossing_shell(curve, 0.5) == pytest.approx(0.625)
    assert resolution_at(curve, 0.5, 8, 1.5) == float("inf")
    assert format_resolution(resolution_at(curve, 0.5, 8, 1.5)).startswith("none (")
    # at the first shell exactly on it: the box's edge
    assert resolution_at(np.array([1.0, 0.5, 0.4]), 0.5, 8, 1.5) == pytest.approx(12.0)


def test_the_zero_frequency_is_read_only_where_asked():
    # Maps' means are not signal: a map whose mean has the other sign still has a resolution
    # (a real map against a truth of mean zero); a window of solvent (local resolution) has none.
    curve = np.array([-1.0, 0.99, 0.9, 0.3, 0.1])
    assert crossing_shell(curve, 0.5) == pytest.approx(2 + 0.4 / 0.6)
    assert resolution_at(curve, 0.5, 8, 1.5) == pytest.approx(8 * 1.5 / (2 + 0.4 / 0.6))
    assert crossing_shell(curve, 0.5, zero_frequency_counts=True) == 0.0
    assert resolution_at(curve, 0.5, 8, 1.5, zero_frequency_counts=True) == float("inf")


def test_phase_randomisation_keeps_amplitudes_and_low_shells():
    v = _blob_map()
    r = phase_randomize(v, from_shell=6, seed=3).numpy()
    curve = fsc(v, r)
    assert np.all(curve[:6] > 0.999)
    assert np.abs(curve[12:]).max() < 0.3
    amp_v = np.abs(np.fft.fftn(v))
    amp_r = np.abs(np.fft.fftn(r))
    assert np.allclose(amp_v, amp_r, rtol=1e-6, atol=1e-9 * amp_v.max())


def test_masked_fsc_corrected_close_to_masked_for_a_loose_mask():
    rng = np.random.default_rng(2)
    v = _blob_map()
    a = v + 0.5 * v.std() * rng.normal(size=v.shape)
    b = v + 0.5 * v.std() * rng.normal(size=v.shape)
    res = masked_fsc(a, b, spherical_mask(48), 2.0)
    assert np.all(np.abs(res.randomized[res.randomize_from_shell + 3 :]) < 0.2)
    assert abs(res.resolution("corrected") - res.resolution("masked")) < 1.0
    d = res.to_dict()
    assert set(d["fsc"]) >= {"unmasked", "masked", "randomized", "corrected"}


def test_spherical_mask_is_soft_and_centred():
    m = spherical_mask(32, radius_px=8, soft_width_px=4)
    assert m[16, 16, 16] == 1.0 and m[16, 16, 16 + 8] == 1.0
    assert 0.0 < m[16, 16, 16 + 10] < 1.0
    assert m[16, 16, 16 + 12] == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(m[16, 16, 16 + 3], m[16, 16, 16 - 3])
    with pytest.raises(ValueError, match="radius_px"):
        spherical_mask(8, soft_width_px=6)


def test_auto_mask_covers_the_density_and_excludes_far_solvent():
    v = _blob_map()
    m = auto_mask(v, 2.0)
    heavy = v > 0.3 * v.max()
    assert m[heavy].min() > 0.99
    assert m[0, 0, 0] == 0.0
    assert 0 < m.mean() < 0.6


def test_lowpass_halves_amplitude_at_its_resolution():
    box, pixel = 32, 1.0
    x = np.zeros((box, box, box))
    x[box // 2, box // 2, box // 2] = 1.0
    f = np.abs(np.fft.fftn(np.fft.ifftshift(lowpass(x, 4.0, pixel))))
    assert f[box // 4, 0, 0] == pytest.approx(0.5, rel=1e-6)  # k = 8/32 = 1/4 Å⁻¹


def test_squared_radius_layouts():
    """The one shell-radius grid: centred, FFT-order and half (rfft) layouts agree with fftfreq."""
    box = 6
    centred = squared_radius(box, 3)
    k = torch.arange(box) - box // 2
    assert centred[0, 0, 0] == 3 * 9 and centred[3, 3, 3] == 0 and centred.shape == (6, 6, 6)
    assert int(centred[3, 3, 4]) == 1 and bool((centred == centred.flip(0).roll(1, 0)).all())
    f = torch.fft.fftfreq(box, 1 / box).long()
    uncentred = squared_radius(box, 3, half=True, centred=False)
    expected = f[:, None, None] ** 2 + f[None, :, None] ** 2 + torch.arange(4)[None, None, :] ** 2
    assert torch.equal(uncentred, expected)
    assert torch.equal(squared_radius(box, 2, half=True), k[:, None] ** 2 + torch.arange(4) ** 2)


@pytest.mark.parametrize("box", [12, 13])
def test_fsc_on_the_half_grid_equals_the_full_grid_sums(box):
    """The half-grid sums with their multiplicity are the full complex transform's (even and odd
    boxes), and the FSC does not depend on where the origin is."""
    rng = np.random.default_rng(box)
    a, b = rng.normal(size=(2, box, box, box))
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    k = np.fft.fftfreq(box) * box
    shells = np.rint(np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2))
    n = box // 2 + 1
    inside = shells < n
    sums = [
        np.bincount(shells[inside].astype(int), weights=x[inside], minlength=n)
        for x in ((fa * fb.conj()).real, np.abs(fa) ** 2, np.abs(fb) ** 2)
    ]
    expected = sums[0] / np.sqrt(sums[1] * sums[2])
    np.testing.assert_allclose(fsc(a, b), expected, rtol=1e-12, atol=1e-12)
    moved = [np.roll(x, (3, -2, 5), axis=(0, 1, 2)) for x in (a, b)]
    np.testing.assert_allclose(fsc(*moved), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("box", [12, 13])
def test_fsc_taken_a_slab_at_a_time_equals_the_whole_grid_at_once(box, monkeypatch):
    """The shell sums taken over slabs of the first axis are those over the whole grid, to the
    bit; a spectrum made once serves several comparisons."""
    import cryosplat.validation.fsc as fsc_module

    rng = np.random.default_rng(box)
    a, b = rng.normal(size=(2, box, box, box))
    whole = fsc(a, b)
    fa, fb = map_spectrum(a), map_spectrum(b)
    assert fa.dtype == torch.complex128 and fa.shape == (box, box, box // 2 + 1)
    np.testing.assert_array_equal(spectra_fsc(fa, fb), whole)
    monkeypatch.setattr(fsc_module, "_SLAB_POINTS", 2 * box * (box // 2 + 1))  # 2 planes a slab
    np.testing.assert_array_equal(fsc(a, b), whole)
    np.testing.assert_array_equal(spectra_fsc(fb, fa), whole)
    with pytest.raises(ValueError, match="differ in shape"):
        spectra_fsc(fa, map_spectrum(a[:-1, :-1, :-1]))


@pytest.mark.parametrize("box", [16, 17])
def test_spherical_mask_made_by_slabs_equals_the_radius_grid_formula(box, monkeypatch):
    """The mask looked up from its squared radii a few planes at a time is the soft edge of the
    whole radius grid, value for value."""
    import cryosplat.validation.masks as masks_module

    monkeypatch.setattr(masks_module, "_MASK_SLAB_VOXELS", 3 * box * box)
    radius = squared_radius(box, 3, dtype=torch.float64).sqrt()
    for radius_px, width in ((None, 6.0), (4.5, 2.5), (5.0, 0.0)):
        edge_start = box / 2 - width - 1 if radius_px is None else radius_px
        expected = masks_module.soft_edge(radius - edge_start, width).float().numpy()
        made = spherical_mask(box, radius_px=radius_px, soft_width_px=width)
        assert made.dtype == np.float32 and made.shape == (box, box, box)
        np.testing.assert_array_equal(made, expected)


def test_the_shared_shell_index_stays_as_made():
    """The shell indices are made once a box and shared: using them leaves them as they were."""
    shells, _ = half_grid_shells(16)
    before = shells.clone()
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(2, 16, 16, 16))
    fsc(a, b)
    masked_fscs(a, b, [spherical_mask(16)], 2.0)
    again, multiplicity = half_grid_shells(16)
    assert again is shells  # made once
    assert torch.equal(again, before)
    assert float(multiplicity.sum()) == 16**3  # the full grid's points, each Friedel pair once


def test_masked_fscs_under_several_masks_equal_one_mask_at_a_time():
    rng = np.random.default_rng(4)
    v = _blob_map()
    a, b = (v + 0.5 * v.std() * rng.normal(size=v.shape) for _ in range(2))
    masks = [spherical_mask(48), auto_mask(v, 2.0)]
    together = masked_fscs(a, b, masks, 2.0)
    for mask, result in zip(masks, together, strict=True):
        alone = masked_fsc(a, b, mask, 2.0)
        for name in ("unmasked", "masked", "randomized", "corrected"):
            np.testing.assert_array_equal(getattr(result, name), getattr(alone, name))


def test_dilation_by_a_cube_equals_max_pooling():
    gen = torch.Generator().manual_seed(0)
    for shape in ((9, 9, 9), (10, 7, 12)):
        binary = torch.rand(shape, generator=gen) > 0.97
        pooled = torch.nn.functional.max_pool3d(binary.float()[None, None], 3, 1, 1)[0, 0] > 0
        assert torch.equal(_dilate_cube(binary), pooled)
        assert int(pooled.sum()) > 5 * int(binary.sum())
