"""Local resolution: windows of the map's halves read at 0.143 against the truth's FSC with the map
in the same windows; what halves that share errors read; the written volume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cryosplat.io.mrc import read_map
from cryosplat.validation.fsc import crossing_shell, resolution_at
from cryosplat.validation.local_resolution import (
    local_resolution,
    window_box,
    window_fscs,
    window_radius_px,
)

BOX, PIXEL, RADIUS = 48, 2.0, 8.0


def _molecule(rng: np.random.Generator) -> np.ndarray:
    """Blobs in a ball of radius 16 voxels: sharp (σ 0.8 voxel) where x < D/2, blurred (σ 3)
    beyond, so the half at low x holds finer detail."""
    z, y, x = np.meshgrid(*[np.arange(BOX)] * 3, indexing="ij")
    vol = np.zeros((BOX,) * 3)
    for _ in range(400):
        c = rng.uniform(BOX / 2 - 16, BOX / 2 + 16, 3)
        if np.linalg.norm(c - BOX / 2) > 16:
            continue
        s = 0.8 if c[2] < BOX / 2 else 3.0
        vol += np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * s * s))
    return vol


def _case(noise_sd: float, shared: float, seed: int = 0):
    """The truth, two halves (truth + an error ``shared`` of which both carry), and the
    molecule's mask."""
    rng = np.random.default_rng(seed)
    truth = _molecule(rng)
    common = rng.normal(size=truth.shape) * noise_sd * shared
    halves = [
        torch.as_tensor(truth + common + rng.normal(size=truth.shape) * noise_sd) for _ in "AB"
    ]
    smooth = torch.nn.functional.avg_pool3d(torch.as_tensor(truth)[None, None], 5, 1, 2)[0, 0]
    return truth, halves, (smooth.numpy() > 0.05).astype(np.float32)


def _truth_in_windows(local, truth, halves) -> np.ndarray:
    """Where the map (the halves' mean) correlates with the truth by 0.5 in each window."""
    made, t = 0.5 * (halves[0] + halves[1]), torch.as_tensor(truth)
    curves = window_fscs((made, t), local.centres_px, RADIUS)
    return np.array([resolution_at(c, 0.5, window_box(RADIUS), 2.0) for c in curves])


@pytest.mark.parametrize("noise_sd", [0.1, 0.2])
def test_windows_read_the_truths_resolution_where_the_halves_err_independently(noise_sd):
    truth, halves, mask = _case(noise_sd, 0.0)
    local = local_resolution(tuple(halves), mask, PIXEL, RADIUS)
    inside = mask[tuple(local.centres_px.T)] > 0.5
    reported = local.resolution_angstrom[inside]
    expected = _truth_in_windows(local, truth, halves)[inside]
    assert np.median(np.abs(reported / expected - 1)) < 0.1  # measured 0.013, 0.016
    x = local.centres_px[inside, 2]
    sharp, blurred = x < BOX / 2 - 4, x > BOX / 2 + 4
    assert np.median(expected[sharp]) < np.median(expected[blurred])  # the truth's order
    assert np.median(reported[sharp]) < 0.97 * np.median(reported[blurred])


def test_halves_that_share_an_error_read_finer_than_the_truth():
    """What the estimator cannot see (the reason the map's resolution is the cross-validated
    one): an error both halves carry raises their FSC, not the map's agreement with the truth."""
    truth, halves, mask = _case(0.3, 1.0)
    local = local_resolution(tuple(halves), mask, PIXEL, RADIUS)
    inside = mask[tuple(local.centres_px.T)] > 0.5
    expected = _truth_in_windows(local, truth, halves)[inside]
    assert np.median(local.resolution_angstrom[inside] / expected - 1) < -0.2  # measured -0.30


def test_the_volume_spreads_the_windows_and_the_radius_follows_the_resolution():
    truth, halves, mask = _case(0.1, 0.0)
    local = local_resolution(tuple(halves), mask, PIXEL, RADIUS)
    at_centres = local.volume[tuple(local.centres_px.T)]
    np.testing.assert_allclose(at_centres, local.resolution_angstrom, rtol=1e-5)
    assert local.volume.shape == (BOX,) * 3 and np.isfinite(local.volume).all()
    low, median, high = local.percentiles(mask)
    assert low <= median <= high
    assert window_radius_px(3.0, 1.0, 256) == 12.0
    assert window_radius_px(3.0, 1.5, 96) == 8.0  # never under 8 voxels
    assert window_radius_px(40.0, 2.0, 64) == 16.0  # never over a quarter of the box
    with pytest.raises(ValueError, match="radius_px must be at least 2"):
        local_resolution(tuple(halves), mask, PIXEL, 1.0)


def test_a_curve_under_the_threshold_at_the_zero_frequency_has_no_resolution():
    """A window of solvent whose halves disagree even in their means reads no resolution (it
    read an interpolated 'crossing' far past Nyquist before)."""
    assert crossing_shell(np.array([-0.01, 0.0, 0.0]), 0.5) == 0.0
    assert resolution_at(np.array([-0.01, 0.0, 0.0]), 0.5, 24, 1.5) == float("inf")
    solvent = np.array([-0.2, 0.6, 0.1])  # the means disagree: read as a window, no resolution
    assert resolution_at(solvent, 0.5, 24, 1.5, zero_frequency_counts=True) == float("inf")


def test_windows_that_read_nothing_are_counted_not_taken_as_resolutions():
    """Where the halves share nothing (here: independent noise over the molecule's high-x
    side) a window reads no resolution; it holds its box in the map, but the percentiles are
    those of the windows that read one, and the windows without are counted."""
    truth, halves, mask = _case(0.1, 0.0)
    rng = np.random.default_rng(3)
    x = torch.arange(BOX)[None, None, :].expand(BOX, BOX, BOX)
    far = x > BOX / 2 + 4
    halves = [torch.where(far, torch.as_tensor(rng.normal(size=(BOX,) * 3)), h) for h in halves]
    local = local_resolution(tuple(halves), mask, PIXEL, RADIUS)
    none, windows = local.without_reading(mask)
    assert 0 < none < windows
    size = window_box(RADIUS) * PIXEL
    np.testing.assert_allclose(local.resolution_angstrom[local.no_reading], size)
    low, median, high = local.percentiles(mask)
    inside = mask[tuple(local.centres_px.T)] > 0.5
    read = local.resolution_angstrom[inside & ~local.no_reading]
    assert high == pytest.approx(np.percentile(read, 95)) and high < size


def test_a_run_writes_its_local_resolution(tiny_set, tmp_path):
    from cryosplat.cli.main import main

    out = tmp_path / "run"
    steps = ["--stage-fractions", "0.5,1.0", "--stage-steps", "20,20", "--no-progress"]
    args = ["reconstruct", str(tiny_set), "-o", str(out), *steps, "--keep-checkpoints"]
    assert main(args) == 0
    volume, pixel = read_map(out / "local_resolution.mrc")
    assert pixel == pytest.approx(read_map(out / "map.mrc")[1]) and volume.shape == (24,) * 3
    entry = json.loads((out / "fsc.json").read_text())["local_resolution"]
    assert len(entry["centres_px"]) == len(entry["resolution_angstrom"]) > 0
    assert min(entry["resolution_angstrom"]) >= 2 * pixel - 1e-6
    summary = json.loads((out / "run.json").read_text())["summary"]
    assert summary["local_resolution_5_50_95_angstrom"] == entry["percentiles_5_50_95_angstrom"]
    # With a mask of its own, the windows lie where that mask does (the outputs made again).
    from cryosplat.io.mrc import write_map

    corner = np.zeros((24,) * 3, dtype=np.float32)
    corner[4:10, 4:10, 4:10] = 1.0
    write_map(tmp_path / "corner.mrc", corner, pixel)
    assert main([*args, "--resume", "--mask", str(tmp_path / "corner.mrc")]) == 0
    centres = np.array(json.loads((out / "fsc.json").read_text())["local_resolution"]["centres_px"])
    assert len(centres) and (centres.min() >= 0) and (centres.max() <= 14)


def test_centres_outside_the_molecule_take_their_read_neighbours_values():
    from cryosplat.validation.local_resolution import _fill_nearest

    values = np.full((5, 5, 5), np.nan)
    known = np.zeros((5, 5, 5), dtype=bool)
    values[0, 0, 0], known[0, 0, 0] = 4.0, True
    np.testing.assert_array_equal(_fill_nearest(values, known), 4.0)
    values[0, 0, 2], known[0, 0, 2] = 6.0, True
    filled = _fill_nearest(values, known)
    assert filled[0, 0, 1] == 5.0 and filled[0, 0, 4] == 6.0 and filled[4, 4, 0] == 4.0
    assert np.isnan(_fill_nearest(values, np.zeros_like(known))).sum() == 0
