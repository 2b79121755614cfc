"""The axis of the images' astigmatic Thon rings against the metadata's: real images follow their
astigmatism as written, each slip (angle negated, U and V swapped, both) is named, images without
rings say nothing."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.particles.astigmatism_check import (
    CLEAR_T,
    VARIANTS,
    AstigmatismCheck,
    check_astigmatism,
    with_slip,
)
from cryosplat.particles.read import read_particles
from cryosplat.particles.star_tables import write_star_defocus
from cryosplat.particles.thon_rings import thon_ring_agreement
from cryosplat.simulate.noise_stacks import NoiseStacksConfig, write_noise_particles
from tests.conftest import two_settings

REAL = [
    "particles/empiar10076_7/empiar_10076_7.star",
    "particles/empiar10076_7/empiar_10076_7.cs",
    "particles/relion31_5/relion31.star",
    "particles/betagal_17/sample_relion_data.star",
]
NEGATED, SWAPPED, BOTH = VARIANTS


def _slipped(particles, slip: str):
    """The set with its metadata's astigmatism slipped (the images as they are)."""
    return replace(particles, ctf=with_slip(particles.ctf, slip))


@pytest.mark.parametrize("name", REAL)
def test_real_images_follow_their_astigmatism_as_written(shared_data, name):
    """The sign of RELION's astigmatism angle, read from real images: every slip fits their rings
    worse than the metadata as written (a slip of our convention would turn every sign)."""
    check = check_astigmatism(read_particles(shared_data / name))
    assert check.verdict != "mismatch" and min(check.t) > 0, check.t


def test_real_images_name_defoci_written_the_other_way_round(shared_data):
    """EMPIAR-10076 (7 images of box 320, astigmatism 385 Å at 5°): its rings tell U from V, not
    the angle's sign (5° from the x axis: negated, the axis moves by 10°)."""
    particles = read_particles(shared_data / REAL[0])
    check = check_astigmatism(particles)
    assert check.verdict == "agree" and check.readings[SWAPPED] >= CLEAR_T
    slipped = check_astigmatism(_slipped(particles, SWAPPED))
    assert slipped.verdict == "mismatch" and slipped.readings[SWAPPED] <= -CLEAR_T
    np.testing.assert_allclose(slipped.t[1], -check.t[1], atol=0.5)


def _ice_set(folder, n: int = 150, box: int = 96, seed: int = 0, ice_sd: float = 0.6):
    """Blob-and-noise images that also hold ice seen through each particle's astigmatic CTF
    (white noise filtered by :func:`~cryosplat.core.ctf.compute_ctf`, the reconstruction's CTF),
    with the metadata drawn for them."""
    config = NoiseStacksConfig(
        n, box, 1.5, seed=seed, ice_sd=ice_sd, astigmatism_max_angstrom=1500.0
    )
    return write_noise_particles(folder, config)


@pytest.fixture(scope="module")
def ice_star(tmp_path_factory):
    return _ice_set(tmp_path_factory.mktemp("astigmatism") / "ice")


def test_images_follow_the_astigmatism_the_reconstruction_applies(ice_star):
    """The check reads the CTF's axis as :func:`~cryosplat.core.ctf.compute_ctf` (the
    reconstruction's CTF) draws it: as written agrees, every slip is worse."""
    check = check_astigmatism(read_particles(ice_star))
    assert check.verdict == "agree" and min(check.t) >= CLEAR_T, check.t
    assert "follow the astigmatism as written" in check.describe()


@pytest.mark.parametrize("slip", VARIANTS)
def test_each_slip_is_named(ice_star, slip):
    particles = _slipped(read_particles(ice_star), slip)
    check = check_astigmatism(particles)
    assert check.verdict == "mismatch" and check.best_slip == slip, check.readings
    text = check.describe()
    assert f"follow the CTF with {slip}, not its astigmatism as written" in text


def test_a_slipped_set_is_named_by_info_and_reconstruct(ice_star, tmp_path, capsys, caplog):
    slipped = _slipped(read_particles(ice_star), SWAPPED)
    star = ice_star.parent / "swapped.star"  # beside the stacks its image names point at
    write_star_defocus(ice_star, np.arange(len(slipped)), slipped.ctf, star)
    assert main(["info", str(star)]) == 0
    assert "warning: the images' Thon rings follow the CTF with defocus U and V swapped" in (
        capsys.readouterr().out
    )
    args = ["--stage-steps", "2", "--stage-fractions", "1.0", "--n-gaussians", "20"]
    out = str(tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="cryosplat"):
        main(["reconstruct", str(star), "-o", out, *args, "--no-progress", "--accept-warnings"])
    assert "warning: the images' Thon rings follow the CTF with defocus U and V swapped" in (
        caplog.text
    )


def test_images_without_rings_are_too_faint_to_judge(tmp_path):
    """White noise beside astigmatic metadata: no verdict either way."""
    star = _ice_set(tmp_path / "ice", n=100, box=64, seed=3, ice_sd=0.0)
    check = check_astigmatism(read_particles(star))
    assert check.verdict == "weak" and max(abs(t) for t in check.t) < CLEAR_T
    assert "too faint" in check.describe()


def test_no_astigmatism_no_check(tiny_set):
    particles = read_particles(tiny_set)
    flat = replace(particles.ctf, defocus_v_angstrom=particles.ctf.defocus_u_angstrom)
    assert check_astigmatism(replace(particles, ctf=flat)) is None
    assert check_astigmatism(replace(particles, ctf=None)) is None


def test_the_agreement_is_a_z_score():
    """``t`` (the Thon-ring z against the difference of the two CTF²): power that follows the CTF
    as written gives a large one, as slipped a large negative one,
    power independent of both about a standard normal one; the verdicts read the readings."""
    rng = np.random.default_rng(0)
    radius = np.linspace(5, 60, 111)
    phase = rng.uniform(0, 1, (200, 12, 1))
    given = np.sin(0.004 * radius**2 * (1 + 0.05 * np.cos(np.linspace(0, np.pi, 12)))[:, None])
    slipped = np.sin(0.004 * radius**2 * (1 - 0.05 * np.cos(np.linspace(0, np.pi, 12)))[:, None])
    given, slipped = np.sin(given + phase) ** 2, np.sin(slipped + phase) ** 2
    noise = rng.exponential(1.0, given.shape) * (1 + 50 / radius)
    difference = given - slipped
    assert thon_ring_agreement(noise * (1 + given), difference) > 10
    assert thon_ring_agreement(noise * (1 + slipped), difference) < -10
    t = [thon_ring_agreement(rng.exponential(1.0, given.shape), difference) for _ in range(20)]
    assert abs(np.mean(t)) < 1.0 and 0.5 < np.std(t) < 2.0
    assert AstigmatismCheck(10, 500.0, (1.0, 8.0, 7.0)).verdict == "agree"
    assert AstigmatismCheck(10, 500.0, (1.0, -8.0, 7.0)).verdict == "mismatch"
    assert AstigmatismCheck(10, 500.0, (-1.0, 8.0, 7.0)).verdict == "weak"
    assert AstigmatismCheck(10, 500.0, (1.0, 4.0, 3.0)).verdict == "weak"


def _two_sources(particles, slip_second: str | None):
    """The set as a merge of two sources (:func:`tests.conftest.two_settings`), the second's
    metadata written with ``slip_second``."""
    merged = two_settings(particles)
    if slip_second is None:
        return merged
    second, ctf = merged.optics_group == 1, merged.ctf
    slipped = with_slip(ctf, slip_second)
    fields = ("defocus_u_angstrom", "defocus_v_angstrom", "defocus_angle_degrees")
    ctf = replace(
        ctf, **{f: np.where(second, getattr(slipped, f), getattr(ctf, f)) for f in fields}
    )
    return replace(merged, ctf=ctf)


def test_one_source_s_slip_is_named_among_right_ones(ice_star):
    """Half the images slipped fit neither reading read together; read apart, the slipped
    source is named, the other agrees."""
    check = check_astigmatism(_two_sources(read_particles(ice_star), SWAPPED))
    assert check.verdict == "mismatch" and check.own_verdict != "mismatch", check.t
    (first, right), (second, wrong) = check.groups
    assert (first, second) == ("first", "second")
    assert right.own_verdict == "agree" and wrong.own_verdict == "mismatch"
    assert wrong.best_slip == SWAPPED
    text = check.describe()
    assert "in 1 of 2 optics groups read apart: second: defocus U and V swapped" in text
    assert "cryosplat amend --astigmatism-as defocus-u-and-v-swapped --optics-group second" in text
    agreeing = check_astigmatism(_two_sources(read_particles(ice_star), None))
    assert agreeing.verdict == "agree" and len(agreeing.groups) == 2
