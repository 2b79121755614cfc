"""The junk benchmark's copies (``benchmarks/bench_junk.py``): each kind of junk is what it says,
the genuine particles are left as they were."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_datasets import DatasetSpec, make_dataset  # noqa: E402
from bench_junk import junk_copy, resampled_map  # noqa: E402
from bench_variants import project_again  # noqa: E402

from cryosplat.io.mrc import read_map, write_map  # noqa: E402
from cryosplat.particles.read import read_particles  # noqa: E402


def test_a_map_resampled_to_its_own_grid_is_itself_and_coarser_keeps_its_centre(tmp_path):
    rng = np.random.default_rng(0)
    volume = np.zeros((24, 24, 24), dtype=np.float32)
    volume[8:16, 10:14, 9:15] = rng.uniform(1, 2, size=(8, 4, 6))
    write_map(tmp_path / "m.mrc", volume, 2.0)
    np.testing.assert_array_equal(resampled_map(tmp_path / "m.mrc", 24, 2.0), volume)
    coarse = resampled_map(tmp_path / "m.mrc", 16, 4.0)  # half the voxels, in a smaller box
    assert coarse.shape == (16, 16, 16)

    def centre_angstrom(v, pixel):
        """The centre of mass along z, y, x (Å from the box's centre voxel)."""
        k = np.arange(v.shape[0]) - v.shape[0] // 2
        return (
            np.array([(v.sum(axis=a) * k).sum() / v.sum() for a in ((1, 2), (0, 2), (0, 1))])
            * pixel
        )

    # the centre of mass moves by at most a coarse voxel along each axis
    assert np.all(np.abs(centre_angstrom(volume, 2.0) - centre_angstrom(coarse, 4.0)) <= 4.0)
    assert coarse.sum() * 8 == pytest.approx(volume.sum(), rel=0.05)  # the mass, per voxel


def test_a_junk_copy_holds_each_kind_and_leaves_the_genuine_images(
    tmp_path, relion_available, shared_data
):
    spec = DatasetSpec("j", "maps/EMD-3197.map", 20, 11.4, 400, 1.0, seed=9)
    data = make_dataset(spec, tmp_path, log=lambda _: None)
    star, kinds = junk_copy(data, tmp_path / "copy", 0.1, 0.05, 0.2)
    assert np.bincount(kinds, minlength=4).tolist() == [260, 40, 20, 80]
    given, copied = read_particles(data.star), read_particles(star)
    before, after = (p.read_images(np.arange(400)) for p in (given, copied))
    genuine, other = kinds == 0, kinds == 3
    np.testing.assert_array_equal(after[genuine], before[genuine])
    np.testing.assert_array_equal(copied.rotations[genuine], given.rotations[genuine])
    np.testing.assert_array_equal(copied.rotations[other], given.rotations[other])  # own poses
    # the truth's noise-free images: the genuine ones hold them, the other molecule's do not
    write_map(tmp_path / "truth.mrc", read_map(data.truth)[0], spec.pixel_size_angstrom)
    clean = project_again(data, np.arange(400), tmp_path / "truth.mrc", 20, tmp_path)
    clean = clean.read(np.arange(400))

    def correlation(rows):
        a, b = after[rows].reshape(rows.sum(), -1), clean[rows].reshape(rows.sum(), -1)
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        return np.mean((a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1)))

    assert correlation(genuine) > 0.6 and correlation(other) < correlation(genuine) - 0.3
    # the same signal in the other molecule's images: the same variance, give or take
    assert after[other].var() == pytest.approx(before[other].var(), rel=0.15)
