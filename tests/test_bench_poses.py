"""The pose benchmark's helpers (``benchmarks/bench_poses.py``): the poses' errors against
``relion_project``'s input, row by row, and the set's STAR with the true poses."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_poses import pose_errors, with_true_poses  # noqa: E402

from cryosplat.core.conventions import matrix_to_euler_relion, rotvec_to_matrix  # noqa: E402
from cryosplat.io.star import read_star, write_star  # noqa: E402
from cryosplat.particles.read import read_particles  # noqa: E402
from tests.conftest import simulate_tiny  # noqa: E402


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    from cryosplat.model.gaussians import GaussianModel

    folder = tmp_path_factory.mktemp("bench_poses")
    truth = GaussianModel.random(20, 24, 4.0, seed=2, radius_fraction=0.2, scale_angstrom=5.0)
    return simulate_tiny(folder, truth, n_particles=40)


def test_pose_errors_are_the_turns_and_shift_moves_against_the_truth(small_set, tmp_path):
    blocks = {name: dict(block.columns) for name, block in read_star(small_set).items()}
    truth_star = tmp_path / "in.star"  # as relion_project reads it: no image names
    unnamed = {k: v for k, v in blocks["particles"].items() if k != "rlnImageName"}
    write_star(truth_star, {**blocks, "particles": unnamed})
    assert pose_errors(small_set, truth_star) == (0.0, 0.0)
    particles = read_particles(small_set)
    turned = rotvec_to_matrix(np.tile(np.radians([0.0, 3.0, 4.0]), (40, 1)))
    angles = matrix_to_euler_relion(turned @ particles.rotations)
    for i, column in enumerate(("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")):
        blocks["particles"][column] = [f"{v:.6f}" for v in angles[:, i]]
    shifts = particles.shifts_angstrom + [3.0, 4.0]
    for i, column in enumerate(("rlnOriginXAngst", "rlnOriginYAngst")):
        blocks["particles"][column] = [f"{v:.6f}" for v in shifts[:, i]]
    wrong = tmp_path / "wrong.star"
    write_star(wrong, blocks)
    angle, shift = pose_errors(wrong, truth_star)
    assert angle == pytest.approx(5.0, abs=1e-3) and shift == pytest.approx(5.0, abs=1e-4)
    # the true poses written back into the wrong STAR: no error left, the images as named
    back = with_true_poses(wrong, truth_star, tmp_path / "true.star")
    assert pose_errors(back, truth_star) == pytest.approx((0.0, 0.0), abs=1e-4)
    assert (
        read_star(back)["particles"].columns["rlnImageName"] == blocks["particles"]["rlnImageName"]
    )
