"""RELION Euler angles <-> matrices, and the relation of cryoDRGN's rotations to RELION's ``A``."""

from __future__ import annotations

import numpy as np
import pytest

from cryosplat.core.conventions import (
    coordinates_1d,
    euler_relion_to_matrix,
    matrix_to_euler_relion,
    matrix_to_rotvec,
    rotvec_to_matrix,
)

# RELION's Euler_angles2matrix written out by hand for special angles (rot, tilt, psi).
RELION_TABLE = [
    ((0, 0, 0), np.eye(3)),
    ((90, 0, 0), [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]),
    ((0, 0, 90), [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]),
    ((0, 90, 0), [[0, 0, -1], [0, 1, 0], [1, 0, 0]]),
    ((0, 180, 0), [[-1, 0, 0], [0, 1, 0], [0, 0, -1]]),
    ((90, 90, 0), [[0, 0, -1], [-1, 0, 0], [0, 1, 0]]),
    ((0, 90, 90), [[0, 1, 0], [0, 0, 1], [1, 0, 0]]),
]


def _rz_passive(t):
    c, s = np.cos(np.deg2rad(t)), np.sin(np.deg2rad(t))
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])


def _ry_passive(t):
    c, s = np.cos(np.deg2rad(t)), np.sin(np.deg2rad(t))
    return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])


@pytest.mark.parametrize(("angles", "expected"), RELION_TABLE)
def test_special_angles_match_relion_table(angles, expected):
    np.testing.assert_allclose(euler_relion_to_matrix(*angles), expected, atol=1e-12)


@pytest.mark.parametrize("angles", [(30, 60, 45), (-120, 33, 170), (10, 150, -80)])
def test_general_angles_are_the_zyz_product(angles):
    rot, tilt, psi = angles
    expected = _rz_passive(psi) @ _ry_passive(tilt) @ _rz_passive(rot)
    np.testing.assert_allclose(euler_relion_to_matrix(*angles), expected, atol=1e-12)


def test_30_60_45_values():
    # Computed by hand from RELION's element formulas.
    a = euler_relion_to_matrix(30, 60, 45)
    r2, r3 = np.sqrt(2.0), np.sqrt(3.0)
    expected = [
        [(r3 / 4 - 1 / 2) / r2, (1 / 4 + r3 / 2) / r2, -r3 / (2 * r2)],
        [(-r3 / 4 - 1 / 2) / r2, (-1 / 4 + r3 / 2) / r2, r3 / (2 * r2)],
        [3 / 4, r3 / 4, 1 / 2],
    ]
    np.testing.assert_allclose(a, expected, atol=1e-12)


def test_roundtrip_random_angles():
    rng = np.random.default_rng(1)
    angles = np.stack(
        [rng.uniform(-180, 180, 500), rng.uniform(0.5, 179.5, 500), rng.uniform(-180, 180, 500)],
        axis=1,
    )
    m = euler_relion_to_matrix(*angles.T)
    back = matrix_to_euler_relion(m)
    np.testing.assert_allclose(euler_relion_to_matrix(*back.T), m, atol=1e-10)
    np.testing.assert_allclose(back, angles, atol=1e-8)
    assert np.all((back[:, 1] >= 0) & (back[:, 1] <= 180))


@pytest.mark.parametrize("tilt", [0.0, 180.0])
def test_roundtrip_gimbal_lock(tilt):
    rng = np.random.default_rng(2)
    rot, psi = rng.uniform(-180, 180, 50), rng.uniform(-180, 180, 50)
    m = euler_relion_to_matrix(rot, np.full(50, tilt), psi)
    back = matrix_to_euler_relion(m)
    np.testing.assert_allclose(back[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(back[:, 1], tilt, atol=1e-9)
    np.testing.assert_allclose(euler_relion_to_matrix(*back.T), m, atol=1e-10)


def test_matrices_are_proper_rotations():
    rng = np.random.default_rng(3)
    m = euler_relion_to_matrix(*rng.uniform(-180, 180, (3, 100)))
    np.testing.assert_allclose(
        m @ np.swapaxes(m, -1, -2), np.broadcast_to(np.eye(3), m.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)


def test_cryodrgn_r_from_relion_equals_relion_matrix():
    # cryoDRGN's R_from_relion: S Rz(psi) Ry'(tilt) Rz(rot) S with active Rz, S = diag(1, -1, 1).
    def rz_active(t):
        return _rz_passive(t).T

    s = np.diag([1.0, -1.0, 1.0])
    rng = np.random.default_rng(4)
    for rot, tilt, psi in rng.uniform(-180, 180, (20, 3)):
        drgn = s @ rz_active(psi) @ _ry_passive(tilt) @ rz_active(rot) @ s
        np.testing.assert_allclose(drgn, euler_relion_to_matrix(rot, tilt, psi), atol=1e-12)


def test_rotvec_roundtrip():
    rng = np.random.default_rng(5)
    axes = rng.normal(size=(100, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    v = axes * rng.uniform(0, 3.0, (100, 1))
    np.testing.assert_allclose(matrix_to_rotvec(rotvec_to_matrix(v)), v, atol=1e-9)
    z90 = rotvec_to_matrix([0, 0, np.pi / 2])
    np.testing.assert_allclose(z90 @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_rotvec_of_half_turns_and_near_them():
    """Half turns (an image mirrored is the molecule turned by one) and turns within 10⁻⁹ rad
    of them keep their angle: read from the antisymmetric part alone they were no turn at all."""
    for axis in np.eye(3):
        half = 2 * np.outer(axis, axis) - np.eye(3)  # the half turn about the axis
        np.testing.assert_allclose(np.abs(matrix_to_rotvec(half)), np.pi * axis, atol=1e-12)
    rng = np.random.default_rng(6)
    axes = rng.normal(size=(300, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([np.full(100, np.pi), np.pi - rng.uniform(0, 1e-9, 100), [0.0] * 100])
    matrices = rotvec_to_matrix(axes * angles[:, None])
    vectors = matrix_to_rotvec(matrices)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), angles, atol=1e-12)
    np.testing.assert_allclose(rotvec_to_matrix(vectors), matrices, atol=1e-12)


def test_origin_is_at_box_half():
    assert coordinates_1d(4, 2.0).tolist() == [-4.0, -2.0, 0.0, 2.0]
    assert coordinates_1d(5, 1.0).tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
