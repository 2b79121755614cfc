"""The poses as written against a converter's common slips: the written ones fit best, and a set
written with a slip is named by it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.core.conventions import euler_relion_to_matrix, matrix_to_euler_relion
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.sample_maps import judged_shells, reading_verdict, shuffled_poses
from cryosplat.reconstruct.pose_check import (
    CLEAR_MARGIN,
    UNRELATED_MARGIN,
    VARIANTS,
    PoseCheck,
    apply_pose_check,
    check_pose_conventions,
    read_as,
)
from tests.conftest import two_settings


@pytest.fixture(scope="module")
def tiny(tiny_set):
    return read_particles(tiny_set)


def test_the_poses_as_written_fit_best(tiny, tiny_set, capsys):
    check = check_pose_conventions(tiny)
    assert check.verdict == "agree" and check.best == "as written"
    assert check.scores[0] >= max(check.scores[1:-1]) + CLEAR_MARGIN  # sign, axis and order slips
    assert check.scores[0] > check.scores[-1]  # halved: shifts of 2 Å s.d. cost less
    assert main(["info", str(tiny_set)]) == 0
    assert "poses:        the poses fit the images best as written" in capsys.readouterr().out


@pytest.mark.parametrize(
    "slip",
    [
        "rotations inverted",
        "shifts negated",
        "rot and psi swapped",
        "rot and psi swapped and rotations inverted",
    ],
)
def test_a_slip_is_named(tiny, slip):
    check = check_pose_conventions(read_as(tiny, slip))
    assert check.verdict == "mismatch" and check.best == slip
    assert f"better with their {slip} than as written" in check.describe()


def test_slips_undo_themselves_and_the_verdicts(tiny):
    for name in VARIANTS[:-1]:
        again = read_as(read_as(tiny, name), name)
        assert np.allclose(again.rotations, tiny.rotations, rtol=0, atol=1e-12)  # Euler angles
        assert (again.shifts_angstrom == tiny.shifts_angstrom).all()
    swapped = read_as(tiny, "rot and psi swapped")
    assert not np.allclose(swapped.rotations, tiny.rotations, atol=0.1)
    rot, tilt, psi = matrix_to_euler_relion(tiny.rotations).T
    assert np.allclose(swapped.rotations, euler_relion_to_matrix(psi, tilt, rot), atol=1e-12)
    halved = read_as(tiny, "shifts halved", np.arange(len(tiny)) < 10)
    assert (halved.shifts_angstrom[:10] == tiny.shifts_angstrom[:10] / 2).all()
    assert (halved.shifts_angstrom[10:] == tiny.shifts_angstrom[10:]).all()
    assert (halved.rotations == tiny.rotations).all()
    for scores, verdict in (
        ((0.05, 0.02, 0.04, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05), "weak"),
        ((0.5, 0.53, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.5), "agree"),
        ((0.3, 0.5, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.3), "mismatch"),
    ):
        assert PoseCheck(10, 48, scores, 12).verdict == verdict
    assert check_pose_conventions(tiny.subset(range(10))) is None  # too few to judge


@pytest.mark.parametrize("factor", [2.0, 4.0])
def test_shifts_written_too_large_are_named_as_halved(tiny, factor):
    """Origins in Å read as pixels of 2 or 4 Å (or in pixels of a stack binned since): every
    shift too large by that factor."""
    inflated = replace(tiny, shifts_angstrom=tiny.shifts_angstrom * factor)
    check = check_pose_conventions(inflated)
    assert check.verdict == "mismatch" and check.best == "shifts halved", check.describe()
    assert "with their shifts halved than as written" in check.describe()
    assert "shifts in the wrong unit" in check.describe()


def test_info_names_a_star_file_whose_rot_and_psi_columns_are_swapped(tiny_set, tmp_path, capsys):
    """A STAR file written with the Euler angles in the other order (rlnAngleRot and rlnAnglePsi
    swapped) is named in ``cryosplat info`` as read from disk."""
    from cryosplat.io.star import read_star, write_star

    blocks = {n: dict(b.columns) for n, b in read_star(tiny_set).items()}
    rows = blocks["particles"]
    rows["rlnAngleRot"], rows["rlnAnglePsi"] = rows["rlnAnglePsi"], rows["rlnAngleRot"]
    stack = tiny_set.parent / rows["rlnImageName"][0].split("@")[1]
    rows["rlnImageName"] = [f"{name.split('@')[0]}@{stack}" for name in rows["rlnImageName"]]
    swapped = tmp_path / "swapped.star"
    write_star(swapped, blocks)
    assert main(["info", str(swapped)]) == 0
    out = capsys.readouterr().out
    assert "better with their rot and psi swapped than as written" in out
    assert "Euler angles in the other order" in out


def test_info_names_a_bad_image_in_the_pose_line_and_goes_on(tiny_set, capsys, monkeypatch):
    """An image the inversions refuse (NaN pixels) is named on the pose line; the other findings
    are still printed and info exits 0."""
    from cryosplat.core.errors import InputError
    from cryosplat.reconstruct import pose_check

    def refuse(particles, **_):
        raise InputError("particle row 6: 1 NaN pixel(s)")

    monkeypatch.setattr(pose_check, "check_pose_conventions", refuse)
    assert main(["info", str(tiny_set)]) == 0
    assert "poses:        not checked: particle row 6: 1 NaN pixel(s)" in capsys.readouterr().out


def test_info_on_an_image_of_nan_says_so_on_its_background_and_pose_lines(tmp_path, capsys):
    from cryosplat.io.mrc import MRCStack, write_stack
    from cryosplat.simulate.noise_stacks import NoiseStacksConfig, write_noise_particles

    star = write_noise_particles(tmp_path, NoiseStacksConfig(40, 32, 2.0, per_stack=40))
    stack = next(tmp_path.glob("stacks/*.mrcs"))
    images = MRCStack(stack).read(range(40)).copy()
    images[5, 0, 0] = float("nan")
    with pytest.warns(RuntimeWarning, match="NaN"):  # mrcfile's, on writing it
        write_stack(stack, images, 2.0)
    assert main(["info", str(star)]) == 0
    out = capsys.readouterr().out
    assert "background:   not measured: an image holds NaN or infinite pixels" in out
    assert "poses:        not checked:" in out and "NaN pixel" in out


def test_a_reconstruction_stops_on_a_slip_unless_accepted(tiny, tmp_path):
    """Poses written with a slip stop ``reconstruct`` before any work (``--pose-check on``; the
    default leaves a set this small unchecked, saying so); accepted, the run records it."""

    from cryosplat.core.errors import InputError
    from cryosplat.reconstruct.config import ReconstructConfig
    from cryosplat.reconstruct.pose_check import AUTO_MIN_PIXELS
    from cryosplat.reconstruct.run import reconstruct

    slipped = read_as(tiny, "shifts negated")
    with pytest.raises(InputError, match="better with their shifts negated.*--accept-warnings"):
        reconstruct(slipped, tmp_path / "run", ReconstructConfig(pose_check="on"))
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before any work

    accepted = replace(slipped, notes=[], warnings=[])
    assert apply_pose_check(accepted, "on", accept_warnings=True).verdict == "mismatch"
    assert any("shifts negated" in w and "(accepted)" in w for w in accepted.warnings)

    assert len(tiny) * tiny.box**2 < AUTO_MIN_PIXELS
    for mode, said in (("auto", "not run on a set this small"), ("off", "off (--pose-check off)")):
        quiet = replace(slipped, notes=[], warnings=[])
        assert apply_pose_check(quiet, mode) is None
        assert any(said in n for n in quiet.notes) and not quiet.warnings

    checked = replace(tiny, notes=[], warnings=[])
    assert apply_pose_check(checked, "on").verdict == "agree"
    assert any("fit the images best as written" in n for n in checked.notes)
    with pytest.raises(InputError, match="pose_check must be one of auto, on, off"):
        ReconstructConfig(pose_check="yes").validate()


def test_the_halves_are_drawn_at_random_not_by_alternate_rows(tiny):
    """A file whose rows alternate two kinds (here every other image pure noise) is still
    judged: split by alternate rows, one half would hold no signal and nothing could be told."""
    import numpy as np

    from cryosplat.particles.preloaded import PreloadedStack

    stack = PreloadedStack(tiny.stacks[0], np.arange(tiny.stacks[0].n_images))
    rows = np.arange(len(tiny))
    odd = tiny.image_index[rows % 2 == 1]
    sd = float(stack.images.std())
    stack.images[odd] = np.random.default_rng(1).normal(0, sd, stack.images[odd].shape)
    mixed = tiny.subset(rows)
    mixed.stacks = [stack]
    check = check_pose_conventions(mixed)
    assert check.verdict == "agree" and check.best == "as written", check.describe()


@pytest.mark.parametrize("slip", ["rotations inverted", "shifts negated"])
def test_one_setting_s_slip_is_named_where_the_whole_set_s_readings_say_less(tiny, slip):
    merged = two_settings(tiny)
    wrong = read_as(merged, slip, merged.optics_group == 1)
    check = check_pose_conventions(wrong)
    assert reading_verdict(check.scores[0], check.scores) == "agree"  # read whole: missed
    assert check.verdict == "mismatch"
    setting = check.slipped_setting
    assert setting.name == "second" and VARIANTS[1 + setting.best] == slip
    assert setting.n_particles == 60
    assert (
        f"the poses of optics setting second (60 of the sample's particles) fit the images "
        f"better with their {slip}" in check.describe()
    )
    fix = f"cryosplat amend --poses-as {slip.replace(' ', '-')} --optics-group 'second'"
    assert fix in check.describe()
    right = check_pose_conventions(merged)  # as written: each setting's own readings agree
    assert right.verdict == "agree" and len(right.settings) == 2
    assert all(r.verdict == "agree" for r in right.settings)


def test_a_slip_in_some_rows_only_leaves_the_others_as_written(tiny):
    rows = np.arange(len(tiny)) < 10
    slipped = read_as(tiny, "rotations inverted and shifts negated", rows)
    assert (slipped.rotations[~rows] == tiny.rotations[~rows]).all()
    assert (slipped.shifts_angstrom[10:] == tiny.shifts_angstrom[10:]).all()
    assert (slipped.shifts_angstrom[:10] == -tiny.shifts_angstrom[:10]).all()
    assert (slipped.rotations[:10] == np.transpose(tiny.rotations[:10], (0, 2, 1))).all()


def test_the_judged_shells_go_on_past_the_low_ones_while_a_reading_holds_signal():
    box = 48
    weak = [np.linspace(0.6, 0.0, box // 2 + 1), np.zeros(box // 2 + 1)]
    assert judged_shells(weak, box) == slice(2, box // 4 + 1)  # the low shells alone
    strong = np.ones(box // 2 + 1)
    strong[18:] = 0.4
    assert judged_shells([weak[1], strong], box) == slice(2, 18)  # the best reading's 0.5
    assert judged_shells([np.ones(box // 2 + 1)], box) == slice(2, box // 2)  # Nyquist's left out


def test_a_slip_the_low_shells_cannot_tell_at_high_signal_is_named(tmp_path):
    """At ten times the signal every reading's FSC is near 1 over the low shells; the shells past
    them, where the right reading still holds signal, name the slip."""
    from cryosplat.model.gaussians import GaussianModel
    from cryosplat.reconstruct.grid.sample_maps import check_sample
    from cryosplat.validation.fsc import fsc
    from tests.conftest import simulate_tiny

    truth = GaussianModel.random(40, 24, 4.0, seed=5, radius_fraction=0.2, scale_angstrom=5.0)
    clear = read_particles(simulate_tiny(tmp_path, truth, snr=10.0, n_particles=300))
    slip = "shifts' x and y swapped"
    wrong = read_as(clear, slip)
    sample = check_sample(wrong)
    low = slice(2, sample.particles.box // 4 + 1)
    as_written, undone = (
        float(np.mean(fsc(*sample.inversions(read))[low]))
        for read in (None, read_as(sample.particles, slip))
    )
    assert undone - as_written < CLEAR_MARGIN  # the low shells alone: missed
    check = check_pose_conventions(wrong)
    assert check.last_shell > sample.particles.box // 4
    assert check.verdict == "mismatch" and check.best == slip
    assert check_pose_conventions(clear).verdict == "agree"


@pytest.mark.parametrize("seed", [0, 1])
def test_rows_out_of_order_are_not_named_as_a_slip(tiny, seed):
    """Poses shuffled against their images fit every reading alike; the best of ten by chance
    leads the poses as written by the margin, and was named as the slip to amend. Now it is
    measured against the sample's poses shuffled again, and the warning says rows out of order."""
    rows = np.random.default_rng(seed).permutation(len(tiny))
    shuffled = replace(
        tiny, rotations=tiny.rotations[rows], shifts_angstrom=tiny.shifts_angstrom[rows]
    )
    check = check_pose_conventions(shuffled)
    assert check.verdict == "mismatch" and check.unrelated
    assert max(check.scores) - check.shuffled < 0.15
    assert "rows out of order against the images" in check.describe()
    assert check_pose_conventions(tiny).shuffled is None  # read only where a slip leads


def test_the_reconstruct_help_states_the_automatic_threshold():
    import argparse
    import re

    from cryosplat.cli.reconstruct import add_arguments
    from cryosplat.reconstruct.pose_check import AUTO_MIN_PIXELS

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = next(a.help for a in parser._actions if "--pose-check" in a.option_strings)
    stated = float(re.search(r"box² ≥ ([0-9.]+e[0-9]+)", text).group(1))
    assert abs(stated / AUTO_MIN_PIXELS - 1) < 0.01
    for particles, box in re.findall(r"([0-9,]+) of box ([0-9]+)", text):
        assert abs(int(particles.replace(",", "")) * int(box) ** 2 / AUTO_MIN_PIXELS - 1) < 0.01


@pytest.fixture(scope="module")
def merged400(tmp_path_factory):
    """400 particles as two optics settings of alternate rows (200 each: enough to be inverted
    alone)."""
    from cryosplat.model.gaussians import GaussianModel
    from tests.conftest import simulate_tiny

    truth = GaussianModel.random(40, 24, 4.0, seed=5, radius_fraction=0.2, scale_angstrom=5.0)
    folder = tmp_path_factory.mktemp("merged400")
    return two_settings(read_particles(simulate_tiny(folder, truth, n_particles=400)))


def test_one_setting_s_rows_out_of_order_are_named(merged400):
    """One source's poses shuffled among its rows fit no slip, and among right ones lower the
    whole sample's agreement too little to be named; its own halves agree less than the other
    setting's predict at its count, and no better than shuffled again."""
    shuffled = shuffled_poses(merged400, merged400.optics_group == 1, seed=3)
    check = check_pose_conventions(shuffled)
    assert check.slipped_setting is None
    alone = check.unrelated_setting
    assert alone.name == "second" and alone.n_particles == 200
    expected = alone.predicted - alone.shuffled
    assert expected >= UNRELATED_MARGIN and alone.read - alone.shuffled < 0.25 * expected
    assert (
        "the poses of optics setting second (200 of the sample's particles) fit its images "
        "little better than shuffled among them" in check.unrelated_setting_warning()
    )
    right = check_pose_conventions(merged400)
    assert right.verdict == "agree" and len(right.alone) == 2 and right.unrelated_setting is None
    assert right.unrelated_setting_warning() is None
    for setting in right.alone:  # each as the other predicts, far above shuffled
        assert abs(setting.read - setting.predicted) < 0.1
        assert setting.read - setting.shuffled > 0.5 * (setting.predicted - setting.shuffled)
    # a warning of the run, not a stop: the same images may hold almost no signal
    warned = replace(shuffled, notes=[], warnings=[])
    apply_pose_check(warned, "on")
    assert any("optics setting second (200" in w for w in warned.warnings)


def test_one_setting_s_slip_is_named_as_a_slip_not_as_rows_out_of_order(merged400):
    slip = "rotations inverted"
    check = check_pose_conventions(read_as(merged400, slip, merged400.optics_group == 1))
    assert check.unrelated_setting is None  # its slip read back agrees as predicted
    assert check.verdict == "mismatch" and VARIANTS[1 + check.slipped_setting.best] == slip


def test_info_warns_of_a_source_whose_rows_are_out_of_order(merged400, tmp_path, capsys):
    from cryosplat.io.star import read_star, write_star

    star = merged400.source
    blocks = read_star(star)
    optics = {k: list(v) * 2 for k, v in blocks["optics"].columns.items()}
    optics["rlnOpticsGroup"], optics["rlnOpticsGroupName"] = ["1", "2"], ["first", "second"]
    optics["rlnSphericalAberration"][1] = "2.7001"  # another setting, as a second source's
    table = {k: list(v) for k, v in blocks["particles"].columns.items()}
    n = blocks["particles"].n_rows
    table["rlnOpticsGroup"] = [str(1 + i % 2) for i in range(n)]
    rows = np.arange(1, n, 2)
    order = rows[np.random.default_rng(4).permutation(len(rows))]
    for column in (
        "rlnAngleRot",
        "rlnAngleTilt",
        "rlnAnglePsi",
        "rlnOriginXAngst",
        "rlnOriginYAngst",
    ):
        values = np.array(table[column], dtype=object)
        values[rows] = values[order]
        table[column] = list(values)
    write_star(merged := tmp_path / "merged.star", {"optics": optics, "particles": table})
    assert main(["info", str(merged), "--datadir", str(star.parent)]) == 0
    out = capsys.readouterr().out
    assert "warning: the poses of optics setting second (200 of the sample's particles)" in out
