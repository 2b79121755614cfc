"""A domain that moves from particle to particle, for the benchmark sets
(``benchmarks/bench_flexibility.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_datasets import DatasetSpec, make_dataset  # noqa: E402
from bench_flexibility import (  # noqa: E402
    MovingPart,
    mean_of_states,
    particle_states,
    state_angles,
    turned_state,
    turned_states,
)
from bench_heterogeneity import MissingPart  # noqa: E402

from cryosplat.io.mrc import MRCStack, read_map  # noqa: E402


def _part(**other) -> MovingPart:
    settings = dict(
        centre_voxel=(24.0, 16.0, 16.0),
        radius_angstrom=6.0,
        hinge_voxel=(16.0, 16.0, 16.0),
        axis=(0.0, 0.0, 1.0),
        sd_degrees=10.0,
        edge_angstrom=2.0,
    )
    return MovingPart(**{**settings, **other})


def test_the_ball_turns_about_the_hinge_and_the_rest_stays():
    volume = np.zeros((32, 32, 32), dtype=np.float32)  # [z, y, x]
    volume[16, 16, 24] = 1.0  # in the ball: x 24, 8 voxels from the hinge along x
    volume[16, 16, 8] = 2.0  # outside it
    turned = turned_state(volume, 1.0, _part(), 90.0)
    # +90° about +z takes +x to +y
    assert turned[16, 24, 16] == pytest.approx(1.0, abs=1e-6)
    assert turned[16, 16, 24] == pytest.approx(0.0, abs=1e-6)
    assert turned[16, 16, 8] == pytest.approx(2.0, abs=1e-6)
    assert turned.sum() == pytest.approx(3.0, abs=1e-5)
    np.testing.assert_allclose(turned_state(volume, 1.0, _part(), 0.0), volume, atol=1e-6)


def test_the_angles_stand_for_the_normal_in_equal_shares():
    angles = state_angles(_part(states=7))
    assert len(angles) == 7 and angles[3] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(angles, -angles[::-1], atol=1e-12)
    assert np.all(np.diff(angles) > 0)
    assert 0.85 < angles.std() / 10.0 < 0.95
    assert 0.97 < state_angles(_part(states=41)).std() / 10.0 < 1.0


def test_the_states_are_equal_shares_drawn_from_the_sets_stream():
    part = _part(states=7)
    a, b = particle_states(1000, part, 3), particle_states(1000, part, 3)
    np.testing.assert_array_equal(a, b)
    counts = np.bincount(a, minlength=7)
    assert counts.max() - counts.min() <= 1
    assert not np.array_equal(a, particle_states(1000, part, 4))


def test_the_truth_is_the_mean_of_the_states():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(20, 20, 20)).astype(np.float32)
    part = _part(centre_voxel=(14.0, 10.0, 10.0), hinge_voxel=(10.0, 10.0, 10.0), states=3)
    states = turned_states(volume, 1.0, part)
    assert list(states) == ["0", "1", "2"]
    np.testing.assert_allclose(states["1"], volume, atol=1e-6)  # the middle state: no turn
    expected = np.mean([turned_state(volume, 1.0, part, a) for a in state_angles(part)], axis=0)
    np.testing.assert_allclose(mean_of_states(states), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("other", "match"),
    [
        ({"radius_angstrom": 0.0}, "radius"),
        ({"sd_degrees": 0.0}, "sd_degrees"),
        ({"states": 1}, "states"),
        ({"axis": (0.0, 0.0, 0.0)}, "axis"),
    ],
)
def test_a_bad_moving_part_is_refused_naming_the_value(other, match):
    with pytest.raises(ValueError, match=match):
        _part(**other)


def test_a_set_with_a_moving_part_projects_each_particle_in_its_state(
    tmp_path, relion_available, shared_data
):
    part = MovingPart((14.0, 10.0, 10.0), 30.0, (10.0, 10.0, 10.0), (0.0, 0.0, 1.0), 20.0, 3)
    one = DatasetSpec("one", "maps/EMD-3197.map", 20, 11.4, 200, 1e12, seed=9)
    moving = DatasetSpec(
        "moving", "maps/EMD-3197.map", 20, 11.4, 200, 1e12, seed=9, moving_part=part
    )
    a, b = (make_dataset(s, tmp_path, log=lambda _: None) for s in (one, moving))
    whole, pixel = read_map(a.truth)
    states = turned_states(whole, pixel, part)
    np.testing.assert_allclose(read_map(b.truth)[0], mean_of_states(states), atol=1e-5)
    np.testing.assert_allclose(read_map(b.folder / "state_0.mrc")[0], states["0"], atol=1e-6)
    images = [MRCStack(d.folder / "particles.mrcs").read(np.arange(200)) for d in (a, b)]
    which = particle_states(200, part, 9)
    scale = np.abs(images[0]).max()
    # the unturned state's particles are the rigid map's projections (the noise is 1e-6 of the
    # signal); the turned ones differ
    np.testing.assert_allclose(images[1][which == 1], images[0][which == 1], atol=1e-4 * scale)
    turned = np.abs(images[1][which != 1] - images[0][which != 1]).max(axis=(1, 2))
    assert np.all(turned > 0.02 * scale)
    assert (b.folder / "particles.star").read_text() == (a.folder / "particles.star").read_text()


def test_a_moving_part_needs_relion_project_and_no_missing_part(tmp_path):
    part = _part()
    spec = DatasetSpec(
        "x", "models/8zpm.cif", 32, 2.0, 10, 0.1, simulator="cryosplat", moving_part=part
    )
    with pytest.raises(ValueError, match="moving_part .* need the relion_project simulator"):
        make_dataset(spec, tmp_path, log=lambda _: None)
    both = DatasetSpec(
        "y",
        "maps/EMD-3197.map",
        20,
        11.4,
        10,
        0.1,
        moving_part=part,
        missing_part=MissingPart((10.0, 10.0, 10.0), 20.0, 0.5),
    )
    with pytest.raises(ValueError, match="missing_part and moving_part"):
        make_dataset(both, tmp_path, log=lambda _: None)
