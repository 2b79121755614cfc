"""The benchmark sets' noise models (``benchmarks/bench_noise``): the background ramps, and that
each part of the noise draws from its own stream."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_noise import (  # noqa: E402
    CARBON_TEXTURE_SD,
    CarbonEdges,
    IceBlobs,
    MicrographEdges,
    NoiseModel,
    add_noise,
    background_ramps,
    noise_amplitude,
)

from cryosplat.io.mrc import MRCStack, write_stack  # noqa: E402


def test_a_ramp_is_linear_through_the_centre_with_its_edge_value_of_the_given_sd():
    box, sd = 32, 0.4
    ramps = background_ramps(4000, box, sd, np.random.default_rng(1))
    assert ramps.shape == (4000, box, box)
    assert not ramps[:, box // 2, box // 2].any()  # zero at the centre pixel
    # linear: every second difference along x and along y is zero
    np.testing.assert_allclose(np.diff(ramps, 2, axis=2), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.diff(ramps, 2, axis=1), 0.0, atol=1e-5)
    # the value box/2 pixels out along the ramp's direction: |gradient| · box/2
    gx = ramps[:, box // 2, box // 2 + 1]
    gy = ramps[:, box // 2 + 1, box // 2]
    edge = np.hypot(gx, gy) * box / 2
    assert np.sqrt(np.mean(edge**2)) == pytest.approx(sd, rel=0.05)
    with pytest.raises(ValueError, match="non-negative"):
        background_ramps(2, box, -1.0, np.random.default_rng(1))


def test_the_ramp_adds_to_the_same_noise(tmp_path):
    rng = np.random.default_rng(5)
    clean = rng.standard_normal((6, 16, 16)).astype(np.float32)
    write_stack(tmp_path / "clean.mrcs", clean, 2.0)
    stack = MRCStack(tmp_path / "clean.mrcs")
    add_noise(stack, tmp_path / "a.mrcs", 3.0, 2.0, seed=9)
    add_noise(stack, tmp_path / "b.mrcs", 3.0, 2.0, seed=9, model=NoiseModel(ramp_sd=0.5))
    a = MRCStack(tmp_path / "a.mrcs").read(np.arange(6))
    b = MRCStack(tmp_path / "b.mrcs").read(np.arange(6))
    ramps = background_ramps(6, 16, 0.5, np.random.default_rng([9, 13]))
    np.testing.assert_allclose(b - a, 3.0 * ramps, atol=1e-4)


def _noise_of(tmp_path, model: NoiseModel, n: int = 400, box: int = 32) -> np.ndarray:
    write_stack(tmp_path / "zero.mrcs", np.zeros((n, box, box), np.float32), 2.0)
    add_noise(MRCStack(tmp_path / "zero.mrcs"), tmp_path / "n.mrcs", 2.0, 2.0, 4, model)
    return MRCStack(tmp_path / "n.mrcs").read(np.arange(n)).astype(np.float64)


def test_anisotropic_noise_has_more_power_along_x_than_y_and_the_same_in_all(tmp_path):
    box = 32
    noise = _noise_of(tmp_path, NoiseModel(anisotropy=0.6), box=box)
    assert noise.var() == pytest.approx(4.0, rel=0.03)  # the total kept
    power = (np.abs(np.fft.fftshift(np.fft.fft2(noise), axes=(1, 2))) ** 2).mean(0)
    c = box // 2
    along_x = power[c, c + 4 : c + 12].mean()  # frequencies along the images' x axis
    along_y = power[c + 4 : c + 12, c].mean()
    # 1 + 0.6 against 1 − 0.6
    assert along_x / along_y == pytest.approx(1.6 / 0.4, rel=0.15)
    # white noise: none of either
    assert noise_amplitude(box, NoiseModel()) is None
    with pytest.raises(ValueError, match="anisotropy"):
        NoiseModel(anisotropy=1.0)


def test_coloured_anisotropic_noise_keeps_its_total_power(shared_data):
    amplitude = noise_amplitude(32, NoiseModel(kind="coloured", anisotropy=0.3))
    assert (amplitude**2).mean() == pytest.approx(1.0)


def test_hot_pixels_are_that_share_of_the_pixels_at_that_level_and_add_to_the_same_noise(
    tmp_path,
):
    plain = _noise_of(tmp_path, NoiseModel())
    hot = _noise_of(tmp_path, NoiseModel(hot_pixels=(0.002, 20.0)))
    added = hot - plain
    changed = added != 0
    assert changed.mean() == pytest.approx(0.002, rel=0.1)
    assert added[changed].std() == pytest.approx(2.0 * 20.0, rel=0.1)
    with pytest.raises(ValueError, match="hot_pixels"):
        NoiseModel(hot_pixels=(-0.1, 5.0))


def _held(holds: np.ndarray, values: np.ndarray, fraction: float) -> np.ndarray:
    """The images that hold the part (about ``fraction`` of them; the others hold none)."""
    assert holds.mean() == pytest.approx(fraction, abs=0.04)
    assert not values[~holds].any()
    return values[holds]


def test_a_carbon_edge_is_a_straight_soft_step_away_from_the_centre():
    box = 32
    edges = CarbonEdges(2000, box, 0.3, np.random.default_rng(3))
    film = edges.film(0, 2000)
    held = _held(edges.holds, film, 0.3)
    assert held.min() == 0.0 and held.max() == pytest.approx(1.0)
    # the molecule's side: the centre pixel and all within 0.2 of the box are ice
    yy, xx = np.indices((box, box)) - box // 2
    assert not held[:, np.hypot(yy, xx) < 0.2 * box - 1.5].any()
    # straight: the film along each image's edge direction depends on the distance alone
    i = np.flatnonzero(edges.holds)[0]
    along = np.cos(edges.angle[i]) * xx + np.sin(edges.angle[i]) * yy
    past = along - edges.distance[i]
    np.testing.assert_array_equal(film[i][past > 1.0], 1.0)
    np.testing.assert_array_equal(film[i][past < -1.0], 0.0)
    soft = np.abs(past) < 1.0
    np.testing.assert_allclose(film[i][soft], 0.5 + 0.5 * np.sin(past[soft] * np.pi / 2), atol=1e-6)


def test_carbon_edges_add_their_step_and_texture_to_the_same_noise(tmp_path):
    plain = _noise_of(tmp_path, NoiseModel())
    model = NoiseModel(carbon_edges=(0.5, 3.0))
    carbon = _noise_of(tmp_path, model)
    film = CarbonEdges(400, 32, 0.5, np.random.default_rng([4, 67])).film(0, 400)
    added = carbon - plain
    assert not added[film == 0].any()
    on = film == 1.0
    # the set's noise s.d. is 2: a step of 3 of them, and texture of CARBON_TEXTURE_SD of them
    assert added[on].mean() == pytest.approx(2.0 * 3.0, rel=0.05)
    assert added[on].std() == pytest.approx(2.0 * CARBON_TEXTURE_SD, rel=0.05)
    with pytest.raises(ValueError, match="carbon_edges"):
        NoiseModel(carbon_edges=(1.5, 3.0))


def test_an_ice_blob_is_a_dome_centred_outside_the_molecule():
    box = 32
    blobs = IceBlobs(2000, box, 0.3, np.random.default_rng(5))
    thick = blobs.thickness(0, 2000)
    held = _held(blobs.holds, thick, 0.3)
    assert held.min() == 0.0 and 0.5 < held.max() <= 1.0
    yy, xx = np.indices((box, box)) - box // 2
    # it reaches no nearer than 0.2 of the box to the centre: the molecule is clear of it
    assert not held[:, np.hypot(yy, xx) < 0.2 * box - 0.5].any()
    # a ball's projected thickness: sqrt(1 - (r / radius)^2) about its own centre
    i = np.flatnonzero(blobs.holds)[0]
    cx = blobs.distance[i] * np.cos(blobs.angle[i])
    cy = blobs.distance[i] * np.sin(blobs.angle[i])
    r = np.hypot(xx - cx, yy - cy) / blobs.radius[i]
    expected = np.sqrt(np.clip(1.0 - r**2, 0.0, None))
    np.testing.assert_allclose(thick[i], expected, atol=1e-6)
    assert (held.reshape(len(held), -1).max(axis=1) > 0).mean() > 0.5  # most reach into the box


def test_ice_blobs_add_their_thickness_and_texture_to_the_same_noise(tmp_path):
    plain = _noise_of(tmp_path, NoiseModel())
    carbon_only = _noise_of(tmp_path, NoiseModel(carbon_edges=(0.5, 3.0)))
    model = NoiseModel(carbon_edges=(0.5, 3.0), ice_blobs=(0.5, 4.0))
    both = _noise_of(tmp_path, model)
    thick = IceBlobs(400, 32, 0.5, np.random.default_rng([4, 73])).thickness(0, 400)
    added = both - carbon_only  # the blobs draw from their own streams: the rest is unchanged
    assert not added[thick == 0].any()
    thickest = thick > 0.95
    # the set's noise s.d. is 2: up to 4 of them at the thickest, texture of CARBON_TEXTURE_SD
    assert (added[thickest] / thick[thickest]).mean() == pytest.approx(2.0 * 4.0, rel=0.05)
    assert (added[thickest] / thick[thickest]).std() == pytest.approx(
        2.0 * CARBON_TEXTURE_SD, rel=0.1
    )
    assert not np.array_equal(plain, both)
    with pytest.raises(ValueError, match="ice_blobs"):
        NoiseModel(ice_blobs=(-0.5, 3.0))


def test_a_micrograph_edge_repeats_the_last_column_or_row_inside_across_its_strip():
    box, n = 16, 3000
    edges = MicrographEdges(n, box, 0.3, 0.4, np.random.default_rng(5))
    held = edges.cut.any(axis=1)
    assert held.mean() == pytest.approx(0.3, abs=0.03)
    assert edges.cut[held].all(axis=1).mean() == pytest.approx(0.2, abs=0.04)  # at a corner
    assert edges.width.min() == 1 and edges.width.max() == round(0.4 * box)
    before = np.random.default_rng(6).standard_normal((n, box, box)).astype(np.float32)
    after = before.copy()
    edges.fill(after[:1000], 0)  # in batches, as add_noise fills them
    edges.fill(after[1000:], 1000)
    np.testing.assert_array_equal(after[~held], before[~held])
    for i in np.flatnonzero(edges.cut[:, 0] & ~edges.cut[:, 1])[:50]:  # columns only
        w = edges.width[i, 0]
        if edges.high_side[i, 0]:
            strip, inside = slice(box - w, box), box - w - 1
        else:
            strip, inside = slice(0, w), w
        np.testing.assert_array_equal(after[i][:, strip], np.repeat(before[i][:, [inside]], w, 1))
        rest = np.ones(box, dtype=bool)
        rest[strip] = False
        np.testing.assert_array_equal(after[i][:, rest], before[i][:, rest])
    for i in np.flatnonzero(edges.cut.all(axis=1))[:50]:  # a corner: columns, then rows
        w = edges.width[i, 1]
        row = box - w - 1 if edges.high_side[i, 1] else w
        strip = slice(box - w, box) if edges.high_side[i, 1] else slice(0, w)
        np.testing.assert_array_equal(after[i][strip], np.repeat(after[i][[row]], w, 0))
    with pytest.raises(ValueError, match="micrograph_edges"):
        NoiseModel(micrograph_edges=(0.2, 0.7))


def test_micrograph_edges_are_filled_from_the_noise_the_rest_of_the_images_hold(tmp_path):
    plain = _noise_of(tmp_path, NoiseModel(ice_blobs=(0.3, 2.0)))
    cut = _noise_of(tmp_path, NoiseModel(ice_blobs=(0.3, 2.0), micrograph_edges=(0.5, 0.3)))
    edges = MicrographEdges(400, 32, 0.5, 0.3, np.random.default_rng([4, 83]))
    expected = plain.copy()
    edges.fill(expected, 0)  # the edges' own stream, filled last: the rest is unchanged
    np.testing.assert_array_equal(cut, expected)
    assert not np.array_equal(cut, plain)
