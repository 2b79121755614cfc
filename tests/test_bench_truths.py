"""The benchmark's truths made from maps: put whole into a larger box, the named point at the
centre (``benchmarks/bench_truths.placed_in_box``), copies in a row (``tandem_map``), sharpened
as post-processed maps are deposited (``bfactor_filtered``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_truths import (  # noqa: E402
    EDGE_FADE_VOXELS,
    bfactor_filtered,
    placed_in_box,
    tandem_map,
    write_truth,
)


def test_the_named_point_lands_on_the_centre_and_the_faces_fade():
    volume = np.ones((12, 12, 12))
    volume[6, 4, 3] = 10.0  # z, y, x
    voxel = 2.0
    placed = placed_in_box(volume, voxel, 32, (3 * voxel, 4 * voxel, 6 * voxel), Path("m"))
    assert placed.shape == (32, 32, 32)
    assert placed[16, 16, 16] == pytest.approx(10.0)
    # the map occupies z 10..21, y 12..23, x 13..24; zero outside it
    inside = np.zeros_like(placed, dtype=bool)
    inside[10:22, 12:24, 13:25] = True
    assert not placed[~inside].any()
    # full weight from EDGE_FADE_VOXELS in, less at the faces
    assert placed[10 + EDGE_FADE_VOXELS, 18, 18] == pytest.approx(1.0)
    assert 0 < placed[10, 18, 18] < 0.5


def test_a_map_that_would_not_fit_whole_is_refused():
    volume = np.ones((12, 12, 12))
    with pytest.raises(RuntimeError, match="does not fit whole"):
        placed_in_box(volume, 1.0, 16, (0.0, 6.0, 6.0), Path("m"))
    with pytest.raises(RuntimeError, match="does not fit whole"):
        placed_in_box(volume, 1.0, 12, (6.0, 6.0, 6.0), Path("m"))


def test_a_tandem_puts_turned_copies_in_a_row_along_x():
    volume = np.full((20, 20, 20), -0.1)  # solvent below zero, taken off
    volume[10, 12, 10] = 0.9  # z, y, x: 2 voxels off the centre along y
    rod = tandem_map(volume, 1.0, 40, (3, 12), Path("m"))
    assert rod.shape == (40, 40, 40)
    # each copy's centre at x = 20 - 12, 20, 20 + 12; the point turned 90° about x each time
    assert rod[20, 22, 8] == pytest.approx(1.0)  # as it is
    assert rod[18, 20, 20] == pytest.approx(1.0)  # turned 90° about x: y +2 -> z -2
    assert rod[20, 18, 32] == pytest.approx(1.0)  # 180°: y +2 -> y -2
    assert rod.sum() == pytest.approx(3.0)
    with pytest.raises(RuntimeError, match="does not hold"):
        tandem_map(volume, 1.0, 40, (3, 2), Path("m"))  # a central cube of 36 from a box of 20


def test_a_negative_bfactor_lifts_each_shell_by_exp_of_its_k_squared():
    rng = np.random.default_rng(3)
    volume = rng.standard_normal((16, 16, 16)).astype(np.float32) + 2.0
    pixel, bfactor = 4.0, -200.0
    sharp = bfactor_filtered(volume, pixel, bfactor)
    assert sharp.mean() == pytest.approx(volume.mean(), rel=1e-5)  # the zero frequency kept
    # one coefficient, 3 voxels out along x: |k| = 3 / (16 · 4 Å)
    k2 = (3 / (16 * pixel)) ** 2
    ratio = np.fft.fftn(sharp)[0, 0, 3] / np.fft.fftn(volume)[0, 0, 3]
    assert ratio.real == pytest.approx(np.exp(-bfactor * k2 / 4), rel=1e-4)
    assert abs(ratio.imag) < 1e-4
    back = bfactor_filtered(sharp, pixel, -bfactor)
    np.testing.assert_allclose(back, volume, atol=1e-4)
    with pytest.raises(ValueError, match="not finite"):
        bfactor_filtered(volume, pixel, float("nan"))


def test_a_truth_bfactor_filters_a_map_and_is_refused_for_atoms(tmp_path):
    from cryosplat.io.mrc import read_map, write_map

    rng = np.random.default_rng(4)
    volume = rng.standard_normal((16, 16, 16)).astype(np.float32)
    source = tmp_path / "in.mrc"
    write_map(source, volume, 3.0)
    write_truth(source, tmp_path / "t.mrc", 16, 3.0, bfactor_angstrom2=-100.0)
    written, voxel = read_map(tmp_path / "t.mrc")
    assert voxel == pytest.approx(3.0)
    np.testing.assert_allclose(written, bfactor_filtered(volume, 3.0, -100.0), atol=1e-5)
    with pytest.raises(ValueError, match="tandem"):
        write_truth(source, tmp_path / "x.mrc", 16, 3.0, tandem=(2, 4), bfactor_angstrom2=-1.0)
    with pytest.raises(ValueError, match="atoms take"):
        write_truth(tmp_path / "model.cif", tmp_path / "y.mrc", 16, 3.0, bfactor_angstrom2=-1.0)
