"""The images' Thon rings against the metadata's CTF: real images follow their CTF, a pixel size
written wrong is found at its factor, images without rings say nothing."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.particles.optics_settings import optics_settings
from cryosplat.particles.read import read_particles
from cryosplat.particles.thon_rings import (
    CLEAR_Z,
    ThonRingCheck,
    check_thon_rings,
    thon_ring_agreement,
)
from cryosplat.simulate.noise_stacks import NoiseStacksConfig, write_noise_particles

REAL = [
    "particles/empiar10076_7/empiar_10076_7.star",
    "particles/empiar10076_7/empiar_10076_7.cs",
    "particles/relion31_5/relion31.star",
    "particles/trpv1_10/trpv1_small_stack.local.star",
    "particles/betagal_17/sample_relion_data.star",
]


@pytest.mark.parametrize("name", REAL)
def test_real_images_follow_their_ctf_and_no_other_pixel_size(shared_data, name):
    check = check_thon_rings(read_particles(shared_data / name))
    assert check.verdict == "agree" and check.z_given >= CLEAR_Z
    assert check.best_scale == 1.0  # every other scale from 0.8 to 1.25 fits worse


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.2])
def test_a_pixel_size_written_wrong_is_found_at_its_factor(shared_data, factor):
    particles = read_particles(shared_data / REAL[0])
    wrong = particles.with_pixel_size(particles.pixel_size_angstrom * factor)
    check = check_thon_rings(wrong)
    assert check.verdict == "mismatch" and check.z_given < CLEAR_Z
    assert check.best_scale * factor == pytest.approx(1.0, abs=0.015)
    text = check.describe(wrong.pixel_size_angstrom)
    assert "do not follow" in text and f"{check.best_scale:g} times it" in text


def test_the_beta_galactosidase_31_star_is_caught(shared_data, capsys):
    """Its RELION 3.1 STAR gives 1.4 Å and a second optics group at 200 kV, where its RELION 3.0
    STAR gives 1.338 Å (README of ../shared/data: "a real inconsistency a parser should
    surface"): the rings say so."""
    check = check_thon_rings(
        read_particles(shared_data / "particles/betagal_17/sample_particles_relion31.star")
    )
    assert check.verdict == "mismatch" and check.z_given < 2
    assert (
        main(["info", str(shared_data / "particles/betagal_17/sample_particles_relion31.star")])
        == 0
    )
    assert (
        "warning: the images' Thon rings do not follow the metadata's CTF"
        in capsys.readouterr().out
    )


def test_each_optics_setting_of_the_beta_galactosidase_31_star_is_read_apart(shared_data):
    """Its two optics groups (1.4 Å at 300 kV and at 200 kV) read together fit no scale well;
    read apart, the 300 kV group's rings put its pixel at 1.33 Å (its RELION 3.0 STAR: 1.338 Å)
    and the 200 kV group's voltage or pixel are named as wrong too."""
    particles = read_particles(shared_data / "particles/betagal_17/sample_particles_relion31.star")
    check = check_thon_rings(particles)
    assert [s.name for s in check.settings] == ["opticsGroup1", "opticsGroup2"]
    first, second = (s.check for s in check.settings)
    assert first.n_images == 8 and second.n_images == 9
    assert first.own_verdict == second.own_verdict == "mismatch"
    assert first.best_scale * 1.4 == pytest.approx(1.338, abs=0.02)
    text = check.describe(particles.pixel_size_angstrom)
    assert "in 2 of 2 optics settings read apart" in text
    assert "opticsGroup1 (1.4 Å, 300 kV): do not follow it" in text and "(1.330 Å)" in text


def _two_groups(particles, factor: float):
    """The images twice over, as two optics groups; the second's pixel size ``factor`` times the
    first's."""
    n = len(particles)
    both = particles.subset(np.r_[0:n, 0:n])
    group = particles.optics[0]
    wrong = replace(group, name="wrong", pixel_size_angstrom=group.pixel_size_angstrom * factor)
    return replace(
        both, optics=[replace(group, name="right"), wrong], optics_group=np.repeat([0, 1], n)
    )


def test_one_optics_group_s_wrong_pixel_size_is_named_among_right_ones(shared_data):
    particles = read_particles(shared_data / REAL[0])  # 7 images, one optics group
    check = check_thon_rings(_two_groups(particles, 1.1))
    assert check.verdict == "mismatch"
    right, wrong = check.settings
    assert right.name == "right" and right.check.own_verdict == "agree"
    assert wrong.name == "wrong" and wrong.check.own_verdict == "mismatch"
    assert wrong.check.best_scale * 1.1 == pytest.approx(1.0, abs=0.02)
    text = check.describe(particles.pixel_size_angstrom)
    assert "in 1 of 2 optics settings read apart" in text and "wrong (" in text
    agreeing = check_thon_rings(_two_groups(particles, 1.0))  # one setting: read together
    assert agreeing.settings == () and agreeing.verdict == "agree"


def test_groups_that_share_their_optics_are_one_setting(shared_data):
    particles = read_particles(shared_data / REAL[0])
    same = _two_groups(particles, 1.0)
    setting, named = optics_settings(same)
    assert np.all(setting == 0) and [g.name for g in named] == ["right, wrong"]
    setting, named = optics_settings(_two_groups(particles, 1.1))
    assert setting.tolist() == [0] * 7 + [1] * 7 and [g.name for g in named] == ["right", "wrong"]


def test_images_without_rings_are_too_faint_to_judge(tmp_path, caplog):
    """Images of noise alone, CTF metadata beside them (as sets simulated at a low SNR, noise
    added after the CTF, nearly are): neither agreement nor a mismatch is claimed, and a run
    logs that."""
    star = write_noise_particles(tmp_path / "d", NoiseStacksConfig(200, 48, 2.0, per_stack=100))
    particles = read_particles(star)
    check = check_thon_rings(particles)
    assert check.verdict == "weak" and abs(check.z_given) < CLEAR_Z
    assert "too faint" in check.describe(particles.pixel_size_angstrom)
    args = ["--stage-steps", "2", "--stage-fractions", "1.0", "--n-gaussians", "20"]
    out = str(tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="cryosplat"):
        main(["reconstruct", str(star), "-o", out, *args, "--no-progress", "--accept-warnings"])
    assert "CTF check: the images' Thon rings are too faint" in caplog.text


def test_a_simulated_set_at_a_high_snr_follows_its_ctf(tiny_set):
    """The test set's signal is strong enough for its own rings; its defoci spread 1–2 µm, so they
    are read across images (rings that move with each image's defocus)."""
    check = check_thon_rings(read_particles(tiny_set))
    assert check.across_images and check.verdict == "agree"
    assert check.best_scale == pytest.approx(1.0, abs=0.026)  # box 24 holds few rings


def test_the_agreement_is_a_z_score():
    """Power that follows CTF² gives a large z, power independent of it about a standard normal
    one, and the verdicts read the scan."""
    rng = np.random.default_rng(0)
    radius = np.linspace(5, 60, 111)
    ctf2 = np.sin(0.004 * radius**2 + rng.uniform(0, 1, (200, 1))) ** 2
    noise = rng.exponential(1.0, ctf2.shape) * (1 + 50 / radius)  # coloured, as real noise is
    assert thon_ring_agreement(noise * (1 + ctf2), ctf2) > 10
    z = [thon_ring_agreement(rng.exponential(1.0, ctf2.shape), ctf2) for _ in range(20)]
    assert abs(np.mean(z)) < 1.0 and 0.5 < np.std(z) < 2.0
    scales = np.array([0.9, 1.0, 1.1])
    assert ThonRingCheck(10, 8.0, scales, np.array([1.0, 8.0, 2.0])).verdict == "agree"
    assert ThonRingCheck(10, 0.5, scales, np.array([1.0, 0.5, 7.0])).verdict == "mismatch"
    assert ThonRingCheck(10, 8.0, scales, np.array([9.0, 8.0, 2.0])).verdict == "agree"
    assert ThonRingCheck(10, 1.0, scales, np.array([4.0, 1.0, 2.0])).verdict == "weak"


def test_ice_seen_through_the_ctf_holds_rings_that_follow_it(tmp_path):
    """Blob-and-noise sets with ``ice_sd`` hold their CTF's rings (as real images do): the check
    agrees at the given pixel size; without ice they hold none; a negative ``ice_sd`` is refused."""
    config = NoiseStacksConfig(120, 64, 1.5, seed=2, ice_sd=0.6)
    check = check_thon_rings(read_particles(write_noise_particles(tmp_path / "ice", config)))
    assert check.verdict == "agree" and check.best_scale == 1.0
    plain = replace(config, ice_sd=0.0)
    check = check_thon_rings(read_particles(write_noise_particles(tmp_path / "plain", plain)))
    assert check.verdict == "weak"
    with pytest.raises(ValueError, match="ice_sd must be non-negative, got -1"):
        write_noise_particles(tmp_path / "bad", replace(config, ice_sd=-1.0))
