"""The symmetry check: data that hold a point group in RELION's orientation pass, a wrong group or
poses that put the axes elsewhere stop the run before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_statistics import simulate_particles, write_star_of

from cryosplat.cli.main import main
from cryosplat.core.errors import InputError
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.halves import split_halves
from cryosplat.reconstruct.grid.gather import AccumulateConfig
from cryosplat.reconstruct.grid.symmetry_check import (
    MIN_AGREEMENT,
    apply_symmetry_check,
    check_symmetry,
)

BOX, PIXEL = 24, 3.0
QUARTER_TURN_ABOUT_X = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])


@pytest.fixture(scope="module")
def c4_set(tmp_path_factory):
    """400 images of a C4-symmetric model (4-fold along z, as RELION orients C4)."""
    folder = tmp_path_factory.mktemp("c4")
    truth = GaussianModel.random(
        6,
        BOX,
        PIXEL,
        seed=5,
        radius_fraction=0.3,
        scale_angstrom=PIXEL,
        dtype=torch.float64,
        symmetry="C4",
    )
    particles, _, _ = simulate_particles(folder, n=400, box=BOX, pixel=PIXEL, truth=truth)
    return particles


def _check(particles, symmetry):
    halves = split_halves(particles, 0, use_random_subset=False)[:2]
    return check_symmetry(particles, halves, symmetry, AccumulateConfig())


def test_the_group_the_data_hold_passes_and_others_do_not(c4_set):
    held = _check(c4_set, "C4")
    assert held is not None and held.held and held.agreement > 0.9
    assert len(held.shells) >= 2 and min(held.shells) >= 2
    assert _check(c4_set, "C2").held  # a subgroup is held too
    for wrong in ("C3", "D4", "O"):
        result = _check(c4_set, wrong)
        assert result is not None and not result.held, wrong
        assert result.agreement < MIN_AGREEMENT
    assert _check(c4_set, "C1") is None  # nothing to check


def test_poses_with_the_axis_elsewhere_fail(c4_set):
    """The same images with every pose composed with a quarter turn about x: the map the poses
    describe has its 4-fold along y, not RELION's z."""
    from dataclasses import replace

    turned = replace(c4_set, rotations=c4_set.rotations @ QUARTER_TURN_ABOUT_X.T)
    result = _check(turned, "C4")
    assert result is not None and not result.held
    assert "do not hold C4" in result.describe()


def test_a_run_refuses_data_without_the_group_unless_accepted(c4_set, tmp_path):
    halves = split_halves(c4_set, 0, use_random_subset=False)[:2]
    with pytest.raises(InputError, match="do not hold C3.*--accept-warnings"):
        apply_symmetry_check(c4_set, halves, "C3", AccumulateConfig())
    result = apply_symmetry_check(c4_set, halves, "C3", AccumulateConfig(), accept_warnings=True)
    assert result is not None and any("C3" in w for w in c4_set.warnings)
    star = write_star_of(c4_set, tmp_path / "p.star")
    out = tmp_path / "run"
    assert main(["reconstruct", str(star), "-o", str(out), "--sym", "C3", "--no-progress"]) != 0
    assert not out.exists()  # refused before any folder


def test_too_little_signal_is_not_judged(tmp_path):
    particles, _, _ = simulate_particles(tmp_path, n=40, box=BOX, pixel=PIXEL, noise=30.0)
    assert _check(particles, "C4") is None
