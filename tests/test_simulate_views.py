"""Preferred-orientation views for simulations: the share in each cone, its spread and axis,
rotations, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.core.errors import InputError
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import write_map
from cryosplat.particles.read import read_particles
from cryosplat.simulate.simulation import SimulationConfig, draw_metadata
from cryosplat.simulate.views import PreferredViews, preferred_rotations, sample_views


def _tilt_degrees(rotations: np.ndarray) -> np.ndarray:
    """Angle between the beam (``A⁻¹ z``) and the map's z axis: RELION's tilt."""
    return np.degrees(np.arccos(np.clip(rotations[:, 2, 2], -1.0, 1.0)))


def test_share_within_cone_matches_fraction_plus_uniform_part():
    views = PreferredViews(0.8, 20.0)
    rotations = preferred_rotations(20_000, views, np.random.default_rng(1))
    share = float(np.mean(_tilt_degrees(rotations) <= 20.0))
    expected = 0.8 + 0.2 * (1 - math.cos(math.radians(20.0))) / 2
    assert views.share_within_cone() == pytest.approx(expected)
    assert share == pytest.approx(expected, abs=0.01)  # binomial s.d. 0.003


def test_preferred_directions_uniform_on_the_cap_and_angles_uniform():
    rotations = preferred_rotations(20_000, PreferredViews(1.0, 30.0), np.random.default_rng(2))
    cos_tilt = rotations[:, 2, 2]
    assert cos_tilt.min() >= math.cos(math.radians(30.0)) - 1e-12
    # uniform on the cap: cos(tilt) uniform on [cos 30°, 1], mean at its middle
    assert cos_tilt.mean() == pytest.approx((1 + math.cos(math.radians(30.0))) / 2, abs=0.002)
    # the azimuth of the beam direction (third row of A) is uniform: no preferred side
    beam = rotations[:, 2, :]
    azimuth = np.arctan2(beam[:, 1], beam[:, 0])
    assert abs(np.mean(np.cos(azimuth))) < 0.03 and abs(np.mean(np.sin(azimuth))) < 0.03


def test_rotations_are_proper_and_shuffled():
    rotations = preferred_rotations(500, PreferredViews(0.5, 10.0), np.random.default_rng(3))
    eye = np.einsum("nij,nkj->nik", rotations, rotations)
    assert np.allclose(eye, np.eye(3), atol=1e-10)
    assert np.allclose(np.linalg.det(rotations), 1.0)
    inside = _tilt_degrees(rotations) <= 10.0
    assert inside[:250].mean() < 0.8 and inside[250:].mean() < 0.8  # not the cone first


def test_no_preferred_share_is_uniform_and_draws_are_reproducible():
    uniform = preferred_rotations(20_000, PreferredViews(0.0, 20.0), np.random.default_rng(4))
    assert np.mean(np.cos(np.radians(_tilt_degrees(uniform)))) == pytest.approx(0.0, abs=0.02)
    a = sample_views(50, np.random.default_rng(5), preferred=PreferredViews(0.7, 15.0))
    b = sample_views(50, np.random.default_rng(5), preferred=PreferredViews(0.7, 15.0))
    assert np.array_equal(a, b)
    # without preferred views the uniform draw is the one simulations always made
    assert np.array_equal(
        sample_views(7, np.random.default_rng(6)), random_rotations(7, np.random.default_rng(6))
    )


def test_draw_metadata_uses_preferred_views():
    config = SimulationConfig(
        n_particles=2_000, box=32, pixel_size_angstrom=2.0, preferred_views=PreferredViews(0.9, 15)
    )
    meta = draw_metadata(config, np.random.default_rng(7))
    assert np.mean(_tilt_degrees(meta.rotations) <= 15.0) > 0.85


@pytest.mark.parametrize(
    "fraction, cone", [(-0.1, 20.0), (1.5, 20.0), (0.5, 0.0), (0.5, 91.0), (0.5, float("nan"))]
)
def test_bad_preferred_views_refused_naming_the_value(fraction, cone):
    with pytest.raises(ValueError, match="preferred-view"):
        PreferredViews(fraction, cone)


@pytest.mark.parametrize("text", ["0.8", "0.8,20,3", "a,b", ""])
def test_parse_refuses_malformed_text(text):
    with pytest.raises(ValueError, match="FRACTION,DEGREES"):
        PreferredViews.parse(text)
    assert PreferredViews.parse(" 0.8 , 20 ") == PreferredViews(0.8, 20.0)


def test_views_file_and_preferred_views_together_refused(tmp_path):
    config = SimulationConfig(
        n_particles=10,
        box=32,
        pixel_size_angstrom=2.0,
        views=tmp_path / "v.star",
        preferred_views=PreferredViews(0.8, 20.0),
    )
    with pytest.raises(InputError, match="not both"):
        config.validate()
    with pytest.raises(InputError, match="not both"):
        sample_views(3, np.random.default_rng(0), tmp_path / "v.star", PreferredViews(0.8, 20))


def test_cli_refuses_bad_preferred_views(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(
            ["simulate", "x.cif", "-o", str(tmp_path / "o"), "-n", "5", "--preferred-views", "2,20"]
        )
    assert exc.value.code == 2
    assert "preferred-view fraction must be in [0, 1], got 2.0" in capsys.readouterr().err


def _beam(rotations: np.ndarray) -> np.ndarray:
    """Each view's beam direction in the map, ``A⁻¹ z`` (the third row of ``A``)."""
    return rotations[:, 2, :]


def test_cone_about_another_view_holds_its_share_about_that_views_beam():
    side = PreferredViews(0.6, 15.0, axis_tilt_degrees=90.0, axis_rot_degrees=0.0)
    rotations = preferred_rotations(20_000, side, np.random.default_rng(8))
    # RELION's view (rot 0°, tilt 90°) looks along the map's x axis
    angle = np.degrees(np.arccos(np.clip(np.abs(_beam(rotations)[:, 0]), -1.0, 1.0)))
    assert np.mean(angle <= 15.0) == pytest.approx(side.share_within_cone(), abs=0.01)
    # and no longer about z: the cone about z holds only uniform views
    assert np.mean(_tilt_degrees(rotations) <= 15.0) < 0.03
    eye = np.einsum("nij,nkj->nik", rotations, rotations)
    assert np.allclose(eye, np.eye(3), atol=1e-10)
    assert np.allclose(np.linalg.det(rotations), 1.0)


def test_two_cones_each_hold_their_share_and_the_rest_is_uniform():
    top, side = PreferredViews(0.45, 12.0), PreferredViews(0.4, 12.0, 90.0, 90.0)  # z, then y
    rotations = preferred_rotations(20_000, [top, side], np.random.default_rng(9))
    beam = np.abs(_beam(rotations))
    cap = (1 - math.cos(math.radians(12.0))) / 2
    near = [np.degrees(np.arccos(np.clip(beam[:, i], -1, 1))) <= 12.0 for i in (2, 1)]
    assert np.mean(near[0]) == pytest.approx(0.45 + 0.15 * 2 * cap, abs=0.01)
    assert np.mean(near[1]) == pytest.approx(0.40 + 0.15 * 2 * cap, abs=0.01)
    # the uniform rest: along x (in neither cone) the beam's |cos| is uniform, mean 1/2 of that
    # share's, with the cones' views near 0 there
    assert np.mean(np.degrees(np.arccos(np.clip(beam[:, 0], -1, 1))) <= 12.0) < 0.01
    # one cone given alone draws as before (the single-cone data sets stay the same)
    single = preferred_rotations(100, top, np.random.default_rng(10))
    assert np.array_equal(single, preferred_rotations(100, [top], np.random.default_rng(10)))


def test_shares_over_one_refused_naming_them():
    cones = [PreferredViews(0.7, 10.0), PreferredViews(0.5, 10.0, 90.0, 0.0)]
    with pytest.raises(ValueError, match="sum to at most 1, got 0.7 \\+ 0.5 = 1.2"):
        preferred_rotations(10, cones, np.random.default_rng(0))
    config = SimulationConfig(
        n_particles=10, box=32, pixel_size_angstrom=2.0, preferred_views=tuple(cones)
    )
    with pytest.raises(InputError, match="sum to at most 1"):
        config.validate()
    with pytest.raises(ValueError, match="axis tilt must be in \\[0, 180\\]"):
        PreferredViews(0.5, 10.0, 200.0, 0.0)


def test_parse_takes_an_axis_and_the_cli_repeats_the_option(tmp_path):
    assert PreferredViews.parse("0.4,12,90,30") == PreferredViews(0.4, 12.0, 90.0, 30.0)
    volume = np.zeros((16, 16, 16), dtype=np.float32)
    volume[6:10, 7:9, 5:11] = 1.0
    write_map(tmp_path / "m.mrc", volume, 3.0)
    out = tmp_path / "sim"
    code = main(
        ["simulate", str(tmp_path / "m.mrc"), "-o", str(out), "-n", "400", "--quiet"]
        + ["--preferred-views", "0.5,10", "--preferred-views", "0.4,10,90,0", "--snr", "inf"]
    )
    assert code == 0
    rotations = np.asarray(read_particles(out / "particles.star").rotations)
    beam = np.abs(_beam(rotations))
    assert np.mean(beam[:, 2] >= math.cos(math.radians(10.0))) > 0.45
    assert np.mean(beam[:, 0] >= math.cos(math.radians(10.0))) > 0.35
