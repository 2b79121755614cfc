"""The images' CTF state (raw, phase-flipped, premultiplied) against the metadata's: the state as
written fits best, a flag lost or set wrongly is named, and a reconstruction stops on it."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from cryosplat.cli.main import main
from cryosplat.core.ctf import CTF_IN_IMAGES, ctf_from_params, electron_wavelength_angstrom
from cryosplat.core.errors import InputError
from cryosplat.particles.preloaded import preloaded
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.ctf_state_check import (
    CLEAR_MARGIN,
    STATES,
    CtfStateCheck,
    check_ctf_state,
    first_zero_shell,
)
from cryosplat.reconstruct.pose_check import apply_pose_check
from tests.conftest import two_settings


@pytest.fixture(scope="module")
def tiny(tiny_set):
    return read_particles(tiny_set)


def _flagged(particles, code: int):
    """The same images, the metadata saying they hold state ``code`` (a converter's slip)."""
    return replace(particles, ctf_in_images=np.full(len(particles), code), notes=[], warnings=[])


def test_the_states_are_the_codes_in_words():
    assert len(STATES) == len(CTF_IN_IMAGES)


@pytest.mark.parametrize("amplitude_contrast", [None, 0.0])
def test_the_first_zero_is_where_the_ctf_phase_reaches_pi(tiny, amplitude_contrast):
    """``χ(k) + atan(Q/√(1−Q²)) = π`` solved for ``k`` at the larger defocus (astigmatism puts
    the nearest zero along it): the nearest pixel past it, within a pixel's diagonal; also with
    ``Q = 0``, which makes the CTF 0 at the zero frequency."""
    one = tiny.subset([0])
    if amplitude_contrast is not None:
        one = replace(one, ctf=replace(one.ctf, amplitude_contrast=np.full(1, amplitude_contrast)))
    ctf = one.ctf
    lam = electron_wavelength_angstrom(float(ctf.voltage_kv[0]))
    defocus = max(float(ctf.defocus_u_angstrom[0]), float(ctf.defocus_v_angstrom[0]))
    q = float(ctf.amplitude_contrast[0])
    a = 0.5 * math.pi * float(ctf.cs_mm[0]) * 1e7 * lam**3
    b = math.pi * lam * defocus
    c = math.pi - math.atan(q / math.sqrt(1 - q * q))
    k2 = (b - math.sqrt(b * b - 4 * a * c)) / (2 * a)
    expected = math.sqrt(k2) * one.box * one.pixel_size_angstrom
    assert expected <= first_zero_shell(one) < expected + math.sqrt(2)


def test_the_state_as_written_fits_best(tiny, tiny_set, capsys):
    check = check_ctf_state(tiny)
    assert check.verdict == "agree" and check.written == "raw" and check.best == "raw"
    assert check.written_score >= max(check.scores[1:]) + CLEAR_MARGIN
    assert check.first == math.ceil(first_zero_shell(tiny))
    assert main(["info", str(tiny_set)]) == 0
    assert "CTF state:    the images hold their CTF as the metadata say (raw)" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize("code", [1, 2])
def test_a_wrong_flag_is_named(tiny, code):
    check = check_ctf_state(_flagged(tiny, code))
    assert check.verdict == "mismatch" and check.best == "raw" and check.written == STATES[code]
    assert f"better read as raw than as the metadata say ({STATES[code]})" in check.describe()


def test_mixed_states_are_read_as_written(tiny):
    codes = np.zeros(len(tiny), dtype=np.int64)
    codes[::2] = 1
    check = check_ctf_state(replace(tiny, ctf_in_images=codes))
    assert check.written == "mixed" and check.verdict == "mismatch"
    assert check.written_score < check.scores[0] - CLEAR_MARGIN


def test_the_verdicts():
    def made(written_score, scores):
        return CtfStateCheck(3000, 48, 12, "raw", written_score, scores)

    assert made(0.05, (0.05, 0.08, 0.02)).verdict == "weak"
    assert made(0.50, (0.50, 0.54, 0.3)).verdict == "agree"
    assert made(0.20, (0.20, 0.60, 0.55)).verdict == "mismatch"
    assert "could not be told" in made(0.05, (0.05, 0.08, 0.02)).describe()


def test_no_check_without_shells_past_the_first_zero_or_without_poses(tiny):
    near_focus = replace(
        tiny.ctf,
        defocus_u_angstrom=np.full(len(tiny), 500.0),
        defocus_v_angstrom=np.full(len(tiny), 500.0),
    )
    assert check_ctf_state(replace(tiny, ctf=near_focus)) is None  # its first zero past Nyquist
    assert check_ctf_state(tiny.subset(range(10))) is None  # too few to judge
    assert check_ctf_state(replace(tiny, rotations=None)) is None


def test_a_reconstruction_stops_on_a_wrong_flag_unless_accepted(tiny):
    """``--pose-check on`` runs both checks on one sample; a wrong CTF state stops the run
    before any work, or is a warning with ``--accept-warnings``."""
    with pytest.raises(InputError, match="CTF state check: .*better read as raw.*--accept-warn"):
        apply_pose_check(_flagged(tiny, 1), "on")
    accepted = _flagged(tiny, 1)
    assert apply_pose_check(accepted, "on", accept_warnings=True).verdict == "agree"
    assert any("better read as raw" in w and "(accepted)" in w for w in accepted.warnings)
    checked = replace(tiny, notes=[], warnings=[])
    apply_pose_check(checked, "on")
    assert any(n.startswith("CTF state check: the images hold") for n in checked.notes)


def test_one_setting_s_wrong_flag_is_named_where_the_whole_set_fits_no_one_state(tiny):
    """A merged set: the first setting's images phase-flipped and flagged so, the second's raw
    but flagged phase-flipped too (its source's flag set wrongly). Read whole, neither state fits
    every image; read setting by setting, the second's images are named as raw."""
    merged = preloaded(two_settings(tiny))
    first = merged.optics_group == 0
    stack = merged.stacks[0]
    box = merged.box
    ctf = ctf_from_params(merged.ctf, box, merged.pixel_size_angstrom, dtype=torch.float64)
    for row in np.flatnonzero(first):
        position = int(np.searchsorted(stack.indices, merged.image_index[row]))
        image = np.fft.ifftshift(stack.images[position].astype(np.float64))
        spectrum = np.fft.fftshift(np.fft.fft2(image)) * np.sign(ctf[row].numpy())
        stack.images[position] = np.fft.fftshift(
            np.fft.ifft2(np.fft.ifftshift(spectrum)).real
        ).astype(np.float32)
    flagged = replace(merged, ctf_in_images=np.ones(len(merged), dtype=np.int64))
    check = check_ctf_state(flagged)
    assert check.verdict == "mismatch"
    setting = check.misread_setting
    assert setting.name == "second" and STATES[setting.best] == "raw"
    assert (
        "the images of optics setting second (60 of the sample's particles) fit their CTF "
        "better read as raw" in check.describe()
    )
    right = replace(flagged, ctf_in_images=np.where(first, 1, 0))  # each setting as it is
    assert check_ctf_state(right).verdict == "agree"
