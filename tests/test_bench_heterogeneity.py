"""Particles in two states for the benchmark sets (``benchmarks/bench_heterogeneity.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_datasets import DatasetSpec, make_dataset  # noqa: E402
from bench_heterogeneity import (  # noqa: E402
    MissingPart,
    holds_part,
    mean_state,
    part_weight,
    without_part,
)

from cryosplat.io.mrc import MRCStack, read_map  # noqa: E402


def test_the_ball_is_whole_inside_empty_outside_and_soft_between():
    part = MissingPart((10.0, 12.0, 8.0), 8.0, 0.5, edge_angstrom=4.0)
    w = part_weight(24, 2.0, part)  # [z, y, x]
    assert w[8, 12, 10] == pytest.approx(1.0)
    assert w[8, 12, 10 + 2] == pytest.approx(1.0)  # 4 Å: inside radius - edge / 2
    assert w[8, 12, 10 + 4] == pytest.approx(0.5)  # 8 Å: on the radius
    assert w[8, 12, 10 + 6] == pytest.approx(0.0)  # 12 Å: past radius + edge / 2
    assert w.min() >= 0.0 and w.max() <= 1.0


def test_the_states_and_their_mean():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(16, 16, 16)).astype(np.float32)
    part = MissingPart((8.0, 8.0, 8.0), 6.0, 0.7, edge_angstrom=2.0)
    w = part_weight(16, 1.0, part)
    absent = without_part(volume, 1.0, part)
    np.testing.assert_allclose(absent, volume * (1 - w), rtol=1e-6, atol=1e-6)
    # the mean of the states, weighted by the share that holds the part
    np.testing.assert_allclose(
        mean_state(volume, 1.0, part), 0.7 * volume + 0.3 * absent, rtol=1e-5, atol=1e-5
    )
    assert absent[8, 8, 8] == 0.0 and absent[0, 0, 0] == volume[0, 0, 0]


def test_which_particles_hold_the_part_is_seeded_and_exact():
    part = MissingPart((0.0, 0.0, 0.0), 5.0, 0.6)
    a, b = holds_part(1000, part, 3), holds_part(1000, part, 3)
    np.testing.assert_array_equal(a, b)
    assert a.sum() == 600
    assert not np.array_equal(a, holds_part(1000, part, 4))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (((0.0, 0.0, 0.0), 0.0, 0.5), "radius"),
        (((0.0, 0.0, 0.0), 5.0, 1.0), "present_fraction"),
        (((0.0, 0.0, 0.0), 5.0, 0.0), "present_fraction"),
    ],
)
def test_a_bad_part_is_refused_naming_the_value(args, match):
    with pytest.raises(ValueError, match=match):
        MissingPart(*args)


def test_a_set_in_two_states_projects_each_particle_in_its_own(
    tmp_path, relion_available, shared_data
):
    part = MissingPart((10.0, 10.0, 10.0), 40.0, 0.6)
    one = DatasetSpec("one", "maps/EMD-3197.map", 20, 11.4, 200, 1e12, seed=9)
    two = DatasetSpec("two", "maps/EMD-3197.map", 20, 11.4, 200, 1e12, seed=9, missing_part=part)
    a, b = (make_dataset(s, tmp_path, log=lambda _: None) for s in (one, two))
    whole, pixel = read_map(a.truth)
    np.testing.assert_allclose(read_map(b.truth)[0], mean_state(whole, pixel, part), atol=1e-5)
    np.testing.assert_allclose(read_map(b.folder / "state_present.mrc")[0], whole, atol=1e-6)
    images = [MRCStack(d.folder / "particles.mrcs").read(np.arange(200)) for d in (a, b)]
    holding = holds_part(200, part, 9)
    scale = np.abs(images[0]).max()
    # the particles that hold the part are the whole map's projections (the noise is 1e-6 of
    # the signal); the others lack its density
    np.testing.assert_allclose(images[1][holding], images[0][holding], atol=1e-4 * scale)
    missing = np.abs(images[1][~holding] - images[0][~holding]).max(axis=(1, 2))
    assert np.all(missing > 0.05 * scale)
    assert (b.folder / "particles.star").read_text() == (a.folder / "particles.star").read_text()


def test_two_states_need_relion_project(tmp_path):
    part = MissingPart((10.0, 10.0, 10.0), 20.0, 0.5)
    spec = DatasetSpec(
        "x", "models/8zpm.cif", 32, 2.0, 10, 0.1, simulator="cryosplat", missing_part=part
    )
    with pytest.raises(ValueError, match="missing_part .* need the relion_project simulator"):
        make_dataset(spec, tmp_path, log=lambda _: None)
