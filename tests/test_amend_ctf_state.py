"""``cryosplat amend --ctf-state-as``: the images' CTF state written as the CTF state check reads
it, per optics group in a RELION 3.1 STAR file and per particle in a RELION 3.0 one; the check
agrees with the set so amended."""

from __future__ import annotations

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.core.errors import InputError
from cryosplat.io.star import read_star, write_star
from cryosplat.particles.read import read_particles
from cryosplat.particles.star_tables import CTF_IN_IMAGES_COLUMNS, write_star_ctf_state
from cryosplat.reconstruct import ctf_state_check
from cryosplat.reconstruct.amend import CTF_STATES, Amendment


def _amend(images, star, out, *args: str) -> int:
    """``cryosplat amend STAR -o OUT ARGS``, the stacks in the folder ``images``."""
    return main(["amend", str(star), "-o", str(out), "--datadir", str(images), *args])


def _two_groups(star, out):
    """``star`` with its particles in two optics groups of alternate rows (the same optics)."""
    blocks = read_star(star)
    optics = {k: list(v) * 2 for k, v in blocks["optics"].columns.items()}
    optics["rlnOpticsGroup"] = ["1", "2"]
    optics["rlnOpticsGroupName"] = ["first", "second"]
    table = dict(blocks["particles"].columns)
    table["rlnOpticsGroup"] = [str(1 + i % 2) for i in range(blocks["particles"].n_rows)]
    write_star(out, {"optics": optics, "particles": table})
    return out


def test_the_states_are_the_check_s_words():
    assert CTF_STATES == {"raw": 0, "phase-flipped": 1, "ctf-premultiplied": 2}
    assert Amendment(ctf_state="phase-flipped").describe() == "images flagged phase-flipped"
    with pytest.raises(InputError, match="--ctf-state-as 'flipped': not one of raw, phase-flipped"):
        Amendment(ctf_state="flipped").validate()


@pytest.mark.parametrize("state", ["phase-flipped", "ctf-premultiplied"])
def test_a_star_file_s_optics_groups_are_flagged(tiny_set, tmp_path, capsys, state):
    assert _amend(tiny_set.parent, tiny_set, tmp_path / "a", "--ctf-state-as", state) == 0
    out = capsys.readouterr().out
    assert ("--ctf_phase_flipped" in out) == (state == "phase-flipped")
    amended = read_particles(tmp_path / "a" / "amended.star", datadir=tiny_set.parent)
    np.testing.assert_array_equal(amended.ctf_in_images, CTF_STATES[state])
    blocks = read_star(tmp_path / "a" / "amended.star")
    assert not any(c in blocks["particles"] for c in CTF_IN_IMAGES_COLUMNS.values())
    given = read_star(tiny_set)
    for name in ("optics", "particles"):  # every other value as written
        for column, values in given[name].columns.items():
            assert blocks[name].columns[column] == values, column
    # ... and back: the flags cleared
    again = ["--ctf-state-as", "raw"]
    assert _amend(tiny_set.parent, tmp_path / "a" / "amended.star", tmp_path / "b", *again) == 0
    cleared = read_particles(tmp_path / "b" / "amended.star", datadir=tiny_set.parent)
    assert cleared.ctf_in_images is None


def test_only_the_chosen_optics_group_is_flagged(tiny_set, tmp_path):
    merged = _two_groups(tiny_set, tmp_path / "merged.star")
    args = ["--optics-group", "second", "--ctf-state-as", "phase-flipped"]
    assert _amend(tiny_set.parent, merged, tmp_path / "a", *args) == 0
    amended = read_particles(tmp_path / "a" / "amended.star", datadir=tiny_set.parent)
    np.testing.assert_array_equal(amended.ctf_in_images, np.arange(len(amended)) % 2)
    rows = tmp_path / "rows.npy"
    np.save(rows, np.arange(10))  # five of each group's sixty
    with pytest.raises(InputError, match="5 of the 60 of optics group first: .*--optics-group"):
        write_star_ctf_state(merged, np.load(rows), 1, tmp_path / "c.star")
    assert (
        _amend(tiny_set.parent, merged, tmp_path / "c", "--ind", str(rows), "--ctf-state-as", "raw")
        == 2
    )


def test_a_relion_30_file_is_flagged_per_particle(tiny_set, tmp_path):
    blocks = read_star(tiny_set)
    table = dict(blocks["particles"].columns)
    n = blocks["particles"].n_rows
    for column, values in blocks["optics"].columns.items():
        if column not in ("rlnOpticsGroup", "rlnOpticsGroupName", "rlnImageSize"):
            table.setdefault(column, values * n)
    del table["rlnOpticsGroup"]
    old = tmp_path / "old.star"
    write_star(old, {"": table})
    rows = tmp_path / "rows.npy"
    np.save(rows, np.arange(0, n, 3))
    assert (
        _amend(
            tiny_set.parent,
            old,
            tmp_path / "a",
            "--ind",
            str(rows),
            "--ctf-state-as",
            "phase-flipped",
        )
        == 0
    )
    amended = read_particles(tmp_path / "a" / "amended.star", datadir=tiny_set.parent)
    np.testing.assert_array_equal(amended.ctf_in_images, (np.arange(n) % 3 == 0).astype(int))
    written = read_star(tmp_path / "a" / "amended.star")[""]
    assert written.columns["rlnCtfDataAreCtfPremultiplied"] == ["0"] * n


def test_the_check_agrees_with_the_set_amended_as_it_says(tiny_set, tmp_path):
    """The raw images flagged phase-flipped (a converter's slip, written by amend itself): the
    check names the slip and the amend command that undoes it; so amended, it agrees."""
    assert (
        _amend(tiny_set.parent, tiny_set, tmp_path / "slip", "--ctf-state-as", "phase-flipped") == 0
    )
    slipped = read_particles(tmp_path / "slip" / "amended.star", datadir=tiny_set.parent)
    check = ctf_state_check.check_ctf_state(slipped)
    assert check.verdict == "mismatch" and check.best == "raw"
    assert "cryosplat amend --ctf-state-as raw writes it so" in check.describe()
    fixed = tmp_path / "fixed"
    slip = tmp_path / "slip" / "amended.star"
    assert _amend(tiny_set.parent, slip, fixed, "--ctf-state-as", "raw") == 0
    again = read_particles(fixed / "amended.star", datadir=tiny_set.parent)
    assert ctf_state_check.check_ctf_state(again).verdict == "agree"


def test_poses_and_the_ctf_state_amended_together(tiny_set, tmp_path):
    args = ["--poses-as", "shifts-negated", "--ctf-state-as", "ctf-premultiplied"]
    assert _amend(tiny_set.parent, tiny_set, tmp_path / "a", *args) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["amended.star"]
    given = read_particles(tiny_set)
    amended = read_particles(tmp_path / "a" / "amended.star", datadir=tiny_set.parent)
    np.testing.assert_allclose(amended.shifts_angstrom, -given.shifts_angstrom, atol=1e-5)
    np.testing.assert_array_equal(amended.ctf_in_images, 2)


def test_only_a_star_file_takes_a_ctf_state(shared_data, tmp_path, capsys):
    cs = shared_data / "particles/empiar10076_7/empiar_10076_7.cs"
    assert main(["amend", str(cs), "-o", str(tmp_path / "a"), "--ctf-state-as", "raw"]) == 2
    assert "only a STAR file records the images' CTF state" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
