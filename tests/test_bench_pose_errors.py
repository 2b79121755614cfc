"""Poses recorded with errors for the benchmark sets (``benchmarks/bench_pose_errors.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_datasets import DatasetSpec, make_dataset  # noqa: E402
from bench_pose_errors import recorded_poses, small_rotations  # noqa: E402

from cryosplat.core.conventions import euler_relion_to_matrix, matrix_to_rotvec  # noqa: E402
from cryosplat.core.rotations import random_rotations  # noqa: E402
from cryosplat.io.mrc import MRCStack  # noqa: E402
from cryosplat.io.star import read_star  # noqa: E402


def _angles_degrees(rotations: np.ndarray) -> np.ndarray:
    cos = (np.trace(rotations, axis1=1, axis2=2) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_small_rotations_are_rotations_of_the_asked_rms_angle():
    turns = small_rotations(20_000, 2.0, np.random.default_rng(3))
    eye = np.broadcast_to(np.eye(3), turns.shape)
    np.testing.assert_allclose(turns @ turns.transpose(0, 2, 1), eye, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(turns), 1.0, atol=1e-12)
    angles = _angles_degrees(turns)
    assert np.sqrt(np.mean(angles**2)) == pytest.approx(2.0, rel=0.02)
    # isotropic: each component of the rotation vector (axis × angle) has a third of the
    # squared angle and mean zero
    vectors = np.degrees(matrix_to_rotvec(turns))
    np.testing.assert_allclose(np.mean(vectors**2, axis=0), 4.0 / 3.0, rtol=0.05)
    np.testing.assert_allclose(np.mean(vectors, axis=0), 0.0, atol=0.03)


def test_recorded_poses_turn_each_view_by_the_error_and_move_each_shift():
    true = random_rotations(5_000, 11)
    shifts = np.random.default_rng(1).normal(scale=3.0, size=(5_000, 2))
    turned, moved = recorded_poses(true, shifts, 1.5, 2.0, seed=7)
    relative = turned @ true.transpose(0, 2, 1)
    rms = np.sqrt(np.mean(_angles_degrees(relative) ** 2))
    assert rms == pytest.approx(1.5, rel=0.04)
    assert np.std(moved - shifts) == pytest.approx(2.0, rel=0.04)
    again = recorded_poses(true, shifts, 1.5, 2.0, seed=7)
    np.testing.assert_array_equal(again[0], turned)
    other = recorded_poses(true, shifts, 1.5, 2.0, seed=8)
    assert not np.allclose(other[0], turned)


def test_no_error_leaves_the_poses_as_they_are():
    true = random_rotations(50, 2)
    shifts = np.ones((50, 2))
    turned, moved = recorded_poses(true, shifts, 0.0, 0.0, seed=0)
    np.testing.assert_allclose(turned, true, atol=1e-15)
    np.testing.assert_array_equal(moved, shifts)


@pytest.mark.parametrize("rms, shift", [(-1.0, 0.0), (0.0, -0.5)])
def test_a_negative_error_is_refused(rms, shift):
    with pytest.raises(ValueError, match="must be >= 0"):
        recorded_poses(random_rotations(3, 0), np.zeros((3, 2)), rms, shift, seed=0)


def _poses(star: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    block = read_star(star)["particles"]
    column = block.get_float
    rotations = euler_relion_to_matrix(
        column("rlnAngleRot"), column("rlnAngleTilt"), column("rlnAnglePsi")
    )
    shifts = np.stack([column("rlnOriginXAngst"), column("rlnOriginYAngst")], 1)
    return rotations, shifts, block.columns


def test_a_set_with_pose_errors_projects_the_true_poses(tmp_path, relion_available, shared_data):
    exact = DatasetSpec("exact", "maps/EMD-3197.map", 20, 11.4, 400, 1.0, seed=9)
    posed = DatasetSpec(
        "posed",
        "maps/EMD-3197.map",
        20,
        11.4,
        400,
        1.0,
        seed=9,
        pose_error_degrees=2.0,
        shift_error_angstrom=1.5,
    )
    a, b = (
        make_dataset(exact, tmp_path, log=lambda _: None),
        make_dataset(posed, tmp_path, log=lambda _: None),
    )
    # the same images: projected with the true poses, the same noise
    images = [MRCStack(d.folder / "particles.mrcs").read(np.arange(400)) for d in (a, b)]
    np.testing.assert_array_equal(images[0], images[1])
    true_rot, true_shift, _ = _poses(a.folder / "in.star")
    given_rot, given_shift, exact_columns = _poses(a.star)
    np.testing.assert_allclose(given_rot, true_rot, atol=1e-5)
    np.testing.assert_allclose(given_shift, true_shift, atol=1e-5)
    rot, shift, posed_columns = _poses(b.star)
    rms = np.sqrt(np.mean(_angles_degrees(rot @ true_rot.transpose(0, 2, 1)) ** 2))
    assert rms == pytest.approx(2.0, rel=0.12)
    assert np.std(shift - true_shift) == pytest.approx(1.5, rel=0.12)
    for name in ("rlnDefocusU", "rlnDefocusV", "rlnRandomSubset", "rlnImageName"):
        assert posed_columns[name] == exact_columns[name], name
