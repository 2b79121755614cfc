"""The benchmark sets' noise models (``benchmarks/bench_noise``): the background ramps, and that
each part of the noise draws from its own stream."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_noise import add_noise, background_ramps  # noqa: E402

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
    add_noise(stack, tmp_path / "b.mrcs", 3.0, 2.0, seed=9, ramp_sd=0.5)
    a = MRCStack(tmp_path / "a.mrcs").read(np.arange(6))
    b = MRCStack(tmp_path / "b.mrcs").read(np.arange(6))
    ramps = background_ramps(6, 16, 0.5, np.random.default_rng([9, 13]))
    np.testing.assert_allclose(b - a, 3.0 * ramps, atol=1e-4)
