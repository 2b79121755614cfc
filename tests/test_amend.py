"""``cryosplat amend``: the metadata written again read as a check's reading; each reading named as
the checks name it, every other value kept, the file's own format."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.core.ctf import CTFParams
from cryosplat.core.errors import InputError
from cryosplat.core.option_names import option_name
from cryosplat.io.star import read_star
from cryosplat.particles import astigmatism_check
from cryosplat.particles.cryodrgn import read_cryodrgn_ctf, read_cryodrgn_poses
from cryosplat.particles.metadata_out import NewPoses, write_metadata
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct import pose_check
from cryosplat.reconstruct.amend import ASTIGMATISM_SLIPS, POSE_READINGS, Amendment


def test_every_reading_has_its_own_option_name():
    assert option_name("shifts' x and y swapped") == "shifts-x-and-y-swapped"
    assert option_name("the angle negated and U and V swapped") == (
        "angle-negated-and-u-and-v-swapped"
    )
    assert list(POSE_READINGS.values()) == list(pose_check.VARIANTS[1:])
    assert list(ASTIGMATISM_SLIPS.values()) == list(astigmatism_check.VARIANTS)
    assert "shifts-negated" in POSE_READINGS and "defocus-u-and-v-swapped" in ASTIGMATISM_SLIPS


def _particles_table(star):
    return next(b for name, b in read_star(star).items() if name != "optics")


@pytest.mark.parametrize(
    "reading", ["shifts-negated", "rot-and-psi-swapped", "y-axis-flipped", "shifts-halved"]
)
def test_a_star_file_amended_holds_the_poses_read_so(tiny_set, tmp_path, capsys, reading):
    given = read_particles(tiny_set)
    assert main(["amend", str(tiny_set), "-o", str(tmp_path / "a"), "--poses-as", reading]) == 0
    assert "reconstruct again: cryosplat reconstruct" in capsys.readouterr().out
    amended = read_particles(tmp_path / "a" / "amended.star", datadir=tiny_set.parent)
    expected = pose_check.read_as(given, POSE_READINGS[reading])
    np.testing.assert_allclose(amended.rotations, expected.rotations, atol=1e-5)
    np.testing.assert_allclose(amended.shifts_angstrom, expected.shifts_angstrom, atol=1e-5)
    np.testing.assert_array_equal(amended.ctf.defocus_u_angstrom, given.ctf.defocus_u_angstrom)
    before, after = _particles_table(tiny_set), _particles_table(tmp_path / "a" / "amended.star")
    assert list(after.columns["rlnImageName"]) == list(before.columns["rlnImageName"])


def test_amended_twice_the_slip_undoes_itself(tiny_set, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    args = ["--poses-as", "rotations-inverted", "--astigmatism-as", "defocus-u-and-v-swapped"]
    assert main(["amend", str(tiny_set), "-o", str(first), *args]) == 0
    again = ["amend", str(first / "amended.star"), "--datadir", str(tiny_set.parent)]
    assert main([*again, "-o", str(second), *args]) == 0
    given = read_particles(tiny_set)
    twice = read_particles(second / "amended.star", datadir=tiny_set.parent)
    np.testing.assert_allclose(twice.rotations, given.rotations, atol=1e-5)
    np.testing.assert_allclose(twice.ctf.defocus_u_angstrom, given.ctf.defocus_u_angstrom)
    once = read_particles(first / "amended.star", datadir=tiny_set.parent)
    np.testing.assert_allclose(once.ctf.defocus_u_angstrom, given.ctf.defocus_v_angstrom)


def test_only_the_rows_chosen_are_amended(tiny_set, tmp_path):
    rows = np.arange(10)
    np.save(tmp_path / "rows.npy", rows)
    args = ["--ind", str(tmp_path / "rows.npy"), "--poses-as", "shifts-negated"]
    assert main(["amend", str(tiny_set), "-o", str(tmp_path / "a"), *args]) == 0
    given = read_particles(tiny_set)
    amended = read_particles(tmp_path / "a" / "amended.star", datadir=tiny_set.parent)
    np.testing.assert_allclose(amended.shifts_angstrom[:10], -given.shifts_angstrom[:10])
    np.testing.assert_allclose(amended.shifts_angstrom[10:], given.shifts_angstrom[10:])


def test_a_cryosparc_file_amended_keeps_its_format(shared_data, tmp_path):
    cs = shared_data / "particles/empiar10076_7/empiar_10076_7.cs"
    out = tmp_path / "a"
    assert (
        main(["amend", str(cs), "-o", str(out), "--astigmatism-as", "defocus-u-and-v-swapped"]) == 0
    )
    given, amended = read_particles(cs), read_particles(out / "amended.cs", datadir=cs.parent)
    np.testing.assert_allclose(amended.ctf.defocus_u_angstrom, given.ctf.defocus_v_angstrom)
    np.testing.assert_allclose(amended.ctf.defocus_v_angstrom, given.ctf.defocus_u_angstrom)
    check = astigmatism_check.check_astigmatism(amended)  # the images say so: U and V swapped
    assert check.verdict == "mismatch" and check.best_slip == "defocus U and V swapped"


def test_a_cryosparc_pose_amended_to_a_half_turn_keeps_it(shared_data, tmp_path):
    """Poses of no turn, read with the x axis flipped, are half turns: the .cs holds them as
    such (a half turn's rotation vector was read as none, and the pose left as stored)."""
    table = np.load(shared_data / "metadata" / "cryosparc_P12_J24_001_particles.cs")[:6]
    if "alignments3D/pose" not in table.dtype.names:
        pytest.skip("this .cs holds no 3D alignments")
    table["alignments3D/pose"][:3] = 0.0  # no turn
    cs = tmp_path / "P1_J9_particles.cs"
    with open(cs, "wb") as fh:
        np.save(fh, table)
    given = read_particles(cs, require_images=False)
    flipped = pose_check.read_as(given, "x axis flipped")
    poses = NewPoses(flipped.rotations, flipped.shifts_angstrom, np.ones(6), 1.0)
    write_metadata(cs, np.arange(6), tmp_path, "amended", poses)
    amended = read_particles(tmp_path / "amended.cs", require_images=False)
    np.testing.assert_allclose(amended.rotations, flipped.rotations, atol=1e-6)
    np.testing.assert_allclose(amended.rotations[0], np.diag([-1.0, 1.0, -1.0]), atol=1e-6)


def test_cryodrgn_pickles_get_the_amended_values(tmp_path):
    rng = np.random.default_rng(0)
    rotations = np.stack([np.eye(3)] * 4)
    with open(tmp_path / "poses.pkl", "wb") as fh:
        pickle.dump((rotations, np.zeros((4, 2))), fh)
    table = np.tile([64, 2.0, 15000.0, 14000.0, 30.0, 300.0, 2.7, 0.1, 0.0], (4, 1))
    with open(tmp_path / "ctf.pkl", "wb") as fh:
        pickle.dump(table.astype(np.float32), fh)
    ctf = read_cryodrgn_ctf(tmp_path / "ctf.pkl")[0]
    swapped = astigmatism_check.with_slip(ctf, "defocus U and V swapped")
    poses = NewPoses(rotations.transpose(0, 2, 1), rng.normal(size=(4, 2)), np.full(4, 2.0), 128.0)
    out = tmp_path / "out"
    out.mkdir()
    written = write_metadata(
        tmp_path / "stack.mrcs",
        np.arange(4),
        out,
        "amended",
        poses,
        swapped,
        poses_pickle=tmp_path / "poses.pkl",
        ctf_pickle=tmp_path / "ctf.pkl",
    )
    assert written == [out / "poses.pkl", out / "ctf.pkl"]
    np.testing.assert_allclose(
        read_cryodrgn_poses(out / "poses.pkl")[1], poses.shifts_angstrom / 128.0
    )
    new = read_cryodrgn_ctf(out / "ctf.pkl")[0]
    np.testing.assert_allclose(new.defocus_u_angstrom, 14000.0)
    assert isinstance(new, CTFParams)


def test_bad_amendments_are_refused(tiny_set, tmp_path):
    with pytest.raises(InputError, match="--poses-as 'shifts-doubled': not one of shifts-negated"):
        Amendment(poses="shifts-doubled").validate()
    with pytest.raises(InputError, match="nothing to amend"):
        Amendment().validate()
    out = tmp_path / "a"
    assert main(["amend", str(tiny_set), "-o", str(out), "--poses-as", "shifts-negated"]) == 0
    assert main(["amend", str(tiny_set), "-o", str(out), "--poses-as", "shifts-negated"]) == 2
    stack = read_particles(tiny_set)
    bare = replace(stack, source=tiny_set.with_suffix(".mrcs"))
    from cryosplat.reconstruct.amend import amend_metadata

    with pytest.raises(InputError, match=r"written into a STAR file, a \.cs file or cryoDRGN"):
        amend_metadata(bare, Amendment(poses="shifts-negated"), tmp_path / "b")


def test_a_slip_s_warning_says_how_to_amend_it(tiny_set, tmp_path):
    slipped = pose_check.read_as(read_particles(tiny_set), "shifts negated")
    check = pose_check.check_pose_conventions(slipped)
    assert check.verdict == "mismatch"
    assert "cryosplat amend --poses-as shifts-negated writes them so" in check.describe()


def test_the_help_names_every_reading_it_takes():
    """The parser is built without torch, so the help's names are written out: each must be one
    the command takes (the astigmatism's all three)."""
    import argparse
    import re

    from cryosplat.cli.amend import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    helps = {a.dest: a.help for a in parser._actions}
    listed = {
        dest: re.findall(r"[a-z]+(?:-[a-z]+)+", helps[dest].split("(", 1)[1])
        for dest in ("poses_as", "astigmatism_as")
    }
    assert len(listed["poses_as"]) >= 5 and set(listed["poses_as"]) <= set(POSE_READINGS)
    assert sorted(listed["astigmatism_as"]) == sorted(ASTIGMATISM_SLIPS)


def test_one_optics_group_is_chosen_by_name(tiny_set):
    from cryosplat.particles.selection import select_optics_groups
    from tests.conftest import two_settings

    merged = two_settings(read_particles(tiny_set))
    second = select_optics_groups(merged, ("second",))
    assert len(second) == len(merged) // 2
    np.testing.assert_array_equal(second.rows_in_file(), np.arange(1, len(merged), 2))
    assert len(select_optics_groups(merged, ("first", " second"))) == len(merged)
    with pytest.raises(InputError, match="optics group 'third': the set's are first, second"):
        select_optics_groups(merged, ("third",))
