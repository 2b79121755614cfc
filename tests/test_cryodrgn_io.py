"""An .mrcs stack with cryoDRGN poses.pkl / ctf.pkl."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from cryosplat.core.errors import InputError
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import write_stack
from cryosplat.particles.cryodrgn import (
    read_cryodrgn_ctf,
    read_cryodrgn_poses,
    read_stack_with_pickles,
)
from cryosplat.particles.read import read_particles


def _dump(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)
    return path


def _ctf_table(n, box=16, pixel=2.0):
    rng = np.random.default_rng(3)
    return np.stack(
        [
            np.full(n, box),
            np.full(n, pixel),
            rng.uniform(1e4, 2e4, n),
            rng.uniform(1e4, 2e4, n),
            rng.uniform(-90, 90, n),
            np.full(n, 300.0),
            np.full(n, 2.7),
            np.full(n, 0.1),
            np.zeros(n),
        ],
        axis=1,
    ).astype(np.float32)


def test_stack_with_pickles(tmp_path, small_stack):
    stack, images = small_stack
    rot = random_rotations(6, 2)
    trans = np.random.default_rng(1).uniform(-0.05, 0.05, (6, 2))
    poses = _dump(tmp_path / "poses.pkl", (rot, trans))
    table = _ctf_table(6)
    ctf = _dump(tmp_path / "ctf.pkl", table)
    ps = read_particles(stack, poses=poses, ctf=ctf)
    assert len(ps) == 6 and ps.box == 16 and ps.pixel_size_angstrom == pytest.approx(2.0)
    np.testing.assert_allclose(ps.rotations, rot)
    np.testing.assert_allclose(ps.shifts_angstrom, trans * 16 * 2.0)
    np.testing.assert_allclose(ps.ctf.defocus_angle_degrees, table[:, 4])
    np.testing.assert_array_equal(ps.read_images([3, 1]), images[[3, 1]])
    assert ps.notes == []


def test_rotations_only_pickle(tmp_path, small_stack):
    stack, _ = small_stack
    poses = _dump(tmp_path / "rot.pkl", random_rotations(6, 0))
    ps = read_stack_with_pickles(stack, poses=poses)
    assert ps.ctf is None and np.all(ps.shifts_angstrom == 0)
    assert ps.pixel_size_angstrom == pytest.approx(2.0)


def test_real_ctf_pickle(shared_data):
    ctf, box, pixel = read_cryodrgn_ctf(shared_data / "metadata/ctf2.pkl")
    assert len(ctf) == 2019 and box == 180 and pixel == pytest.approx(2.95)
    assert np.all(ctf.voltage_kv == 200.0)
    rot, trans = read_cryodrgn_poses(shared_data / "metadata/pose.cs.pkl")
    assert rot.shape == (2019, 3, 3) and trans.shape == (2019, 2)


def test_length_mismatch(tmp_path, small_stack):
    stack, _ = small_stack
    poses = _dump(tmp_path / "poses.pkl", (random_rotations(5, 0), np.zeros((5, 2))))
    with pytest.raises(InputError, match=r"5 poses but the stack .* has 6 images"):
        read_stack_with_pickles(stack, poses=poses)
    ctf = _dump(tmp_path / "ctf.pkl", _ctf_table(6, box=32))
    with pytest.raises(InputError, match="column D says 32"):
        read_stack_with_pickles(stack, ctf=ctf)


def test_header_pixel_disagreement_is_noted(tmp_path, small_stack):
    stack, _ = small_stack
    ctf = _dump(tmp_path / "ctf.pkl", _ctf_table(6, pixel=2.5))
    ps = read_stack_with_pickles(stack, ctf=ctf)
    assert ps.pixel_size_angstrom == pytest.approx(2.5)
    assert len(ps.notes) == 1 and "says 2 Å but the metadata says 2.5 Å; using" in ps.notes[0]


def test_unknown_pixel_size(tmp_path):
    write_stack(tmp_path / "s.mrcs", np.zeros((2, 8, 8)), 0.0)
    with pytest.raises(InputError, match="pixel size is unknown"):
        read_stack_with_pickles(tmp_path / "s.mrcs")
