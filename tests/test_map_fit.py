"""Maps turned and moved onto a reference (:mod:`cryosplat.validation.map_fit`, ``cryosplat fsc
--fit``): a known turn and shift found again, the moved map's FSC kept to near Nyquist, a map of
the other hand named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import read_map, read_map_origin_xyz, write_map
from cryosplat.validation.fsc import fsc
from cryosplat.validation.map_fit import (
    MapFit,
    fit_onto_reference,
    move_map,
    super_fibonacci_rotations,
)

BOX, PIXEL = 40, 3.0


def _molecule(box: int = BOX) -> np.ndarray:
    """An asymmetric, chiral molecule: blobs 1.5-2.5 voxels wide along a random walk of steps of
    2.5 voxels (a chain's worth of turns, no symmetry and no mirror plane), centred."""
    rng = np.random.default_rng(3)
    steps = rng.normal(size=(30, 3))
    path = np.cumsum(2.5 * steps / np.linalg.norm(steps, axis=1, keepdims=True), axis=0)
    path -= path.mean(axis=0)
    path *= min(1.0, box / 3 / np.abs(path).max())  # within a third of the box of its centre
    axis = np.arange(box) - box // 2
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).astype(np.float64)
    volume = np.zeros((box,) * 3)
    for centre in path:
        width = rng.uniform(1.5, 2.5)
        volume += rng.uniform(0.5, 1.5) * np.exp(-((grid - centre) ** 2).sum(-1) / (2 * width**2))
    return volume.astype(np.float32)


def _moved(volume, rotation, shift_angstrom):
    return move_map(volume, MapFit(rotation, np.asarray(shift_angstrom), 0, 0, 0), PIXEL)


def _angle_between(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))))


def test_the_search_rotations_are_rotations_spread_over_every_turn():
    rotations = super_fibonacci_rotations(4000)
    assert np.allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(rotations), 1.0)
    traces = np.einsum("nij,mij->nm", random_rotations(200, 1), rotations)  # trace(Aᵀ B)
    nearest = np.degrees(np.arccos(np.clip((traces.max(axis=1) - 1) / 2, -1, 1)))
    assert nearest.max() < 15.0  # every turn within 15° of one tried


def test_an_unmoved_map_is_kept_and_a_turn_there_and_back_keeps_its_fsc():
    volume = _molecule()
    assert np.allclose(_moved(volume, np.eye(3), [0, 0, 0]), volume, atol=1e-4)
    rotation, shift = random_rotations(1, 5)[0], np.array([4.0, -2.5, 3.0])
    there = _moved(volume, rotation, shift)
    back = _moved(there, rotation.T, -rotation.T @ shift)
    curve = fsc(back, volume)
    assert fsc(there, volume)[BOX // 4] < 0.5  # moved, it is another map
    assert curve[1 : int(0.6 * BOX / 2)].min() > 0.99  # where the blobs hold signal


def test_a_known_turn_and_shift_are_found_and_the_other_hand_and_contrast_named():
    """The reference turned by over 90° about a skew axis and moved by 14 Å is fitted back to
    within a degree and a third of a voxel; its mirror image is named as of the other hand, its
    negative fitted as well and named as of inverted contrast."""
    reference = _molecule()
    rotation, shift = random_rotations(1, 8)[0], np.array([9.0, -6.0, 8.0])
    assert _angle_between(rotation, np.eye(3)) > 90
    moved = _moved(reference, rotation, shift)
    mirror = _moved(reference[::-1].copy(), rotation, shift)
    fitted = fit_onto_reference(
        [reference, moved, mirror, -moved, moved],
        ["ref", "moved", "mirror", "inverted", "model"],
        [0, 1, 1, 1, 0],
        PIXEL,
    )
    assert fitted.fits[0] is None and fitted.fits[4] is None and fitted.volumes[4] is moved
    fit = fitted.fits[1]
    assert _angle_between(fit.rotation, rotation.T) < 1.0
    assert np.linalg.norm(fit.shift_angstrom - (-rotation.T @ shift)) < PIXEL / 3
    assert fit.correlation > 0.99 > 0.5 > fit.correlation_before
    assert fit.mirrored_correlation < fit.correlation and fit.contrast == 1
    assert fsc(fitted.volumes[1], reference)[1 : int(0.6 * BOX / 2)].min() > 0.99
    assert fitted.notes[0].startswith("moved: fitted onto ref: turned ")
    assert not any(n.startswith("warning: moved") for n in fitted.notes)
    assert any(
        n.startswith("warning: mirror: its mirror image fits ref better") for n in fitted.notes
    )
    inverted = fitted.fits[3]
    assert inverted.contrast == -1 and _angle_between(inverted.rotation, rotation.T) < 1.0
    assert fsc(fitted.volumes[3], reference)[1:8].max() < -0.99  # moved, its sign as given
    assert any(
        n.startswith("warning: inverted: fits ref with its contrast inverted") for n in fitted.notes
    )
    assert fsc(fitted.volumes[1], reference)[1 : int(0.6 * BOX / 2)].min() > 0.99
    assert fitted.notes[0].startswith("moved: fitted onto ref: turned ")
    assert not any(n.startswith("warning: moved") for n in fitted.notes)
    assert any(
        n.startswith("warning: mirror: its mirror image fits ref better") for n in fitted.notes
    )


def test_the_command_fits_each_map_and_records_the_fit(tmp_path, capsys):
    reference = _molecule(32)
    rotation, shift = random_rotations(1, 9)[0], np.array([-5.0, 4.0, 6.0])
    ref, moved = tmp_path / "ref.mrc", tmp_path / "moved.mrc"
    write_map(ref, reference, PIXEL, origin_angstrom=[12.0, -3.0, 6.0])
    write_map(moved, _moved(reference, rotation, shift), PIXEL)
    out = tmp_path / "cmp.json"
    args = ["fsc", str(ref), str(moved), "--fit", "--no-mask", "-o", str(out)]
    fitted = tmp_path / "cmp_fitted_1_moved.mrc"
    fitted.write_text("an earlier output")
    assert main(args) == 2 and "cmp_fitted_1_moved.mrc exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert f"{moved}: fitted onto {ref}: turned" in capsys.readouterr().out
    entry = json.loads(out.read_text())["maps"][0]
    turn = _angle_between(rotation, np.eye(3))
    assert entry["fit"]["angle_degrees"] == pytest.approx(turn, abs=1)
    assert min(entry["fsc"][1:9]) > 0.99
    volume, voxel = read_map(fitted)  # on the reference's grid, where ChimeraX overlays it
    assert voxel == pytest.approx(PIXEL) and fsc(volume, reference)[1:9].min() > 0.99
    assert np.allclose(read_map_origin_xyz(fitted), [12.0, -3.0, 6.0])
