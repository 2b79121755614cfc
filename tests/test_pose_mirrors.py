"""Images mirrored against their poses: the x or y axis flipped is a reading of the poses that
makes the mirrored images exactly, the pose check names it, and amend writes it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.io.mrc import MRCStack, write_stack
from cryosplat.io.star import read_star, write_star
from cryosplat.particles.astigmatism_check import check_astigmatism
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.amend import MIRROR_ASTIGMATISM, Amendment, amendment_notes
from cryosplat.reconstruct.pose_check import check_pose_conventions, read_as
from cryosplat.simulate.noise_stacks import NoiseStacksConfig, write_noise_particles
from tests.conftest import two_settings

AXIS_OF = {"x": 2, "y": 1}  # the image array's axis (images are (n, y, x))


def mirrored(images: np.ndarray, axis: str) -> np.ndarray:
    """``images`` mirrored about the FFT-aligned origin (pixel D//2) along ``axis``."""
    along = AXIS_OF[axis]
    return np.roll(np.flip(images, axis=along), 1, axis=along)


def _mirror_stacks(star, axis: str) -> None:
    """Mirror every stack of ``star`` in place."""
    for ref in read_particles(star).stacks:
        stack = MRCStack(ref.path)
        images = stack.read(np.arange(stack.n_images))
        write_stack(stack.path, mirrored(images, axis), stack.pixel_size_angstrom)


@pytest.fixture(scope="module")
def mirrored_sets(tiny_set, tmp_path_factory):
    """tiny_set's images mirrored in x and in y, each in its own stack and STAR (the same
    metadata)."""
    folder = tmp_path_factory.mktemp("mirrored")
    particles = read_particles(tiny_set)
    images = MRCStack(particles.stacks[0].path).read(np.arange(len(particles)))
    pixel = particles.pixel_size_angstrom
    blocks = {n: dict(b.columns) for n, b in read_star(tiny_set).items()}
    sets = {}
    for axis in AXIS_OF:
        stack = folder / f"mirrored_{axis}.mrcs"
        write_stack(stack, mirrored(images, axis), pixel)
        rows = dict(blocks["particles"])
        rows["rlnImageName"] = [f"{n.split('@')[0]}@{stack}" for n in rows["rlnImageName"]]
        star = folder / f"mirrored_{axis}.star"
        write_star(star, {**blocks, "particles": rows})
        sets[axis] = star
    return sets


@pytest.mark.parametrize("axis", ["x", "y"])
def test_the_flipped_reading_projects_the_mirrored_images(tiny_set, tmp_path, axis):
    """Projected along the poses amended with the axis flipped (through the STAR file, as a user
    gets them), the truth gives the images projected along the poses as written, mirrored."""
    truth = tiny_set.parent.parent / "truth.npz"
    given, amended = tmp_path / "given.mrcs", tmp_path / "amended.mrcs"
    assert main(["project", str(truth), "--angles", str(tiny_set), "-o", str(given)]) == 0
    reading = f"{axis}-axis-flipped"
    assert main(["amend", str(tiny_set), "-o", str(tmp_path / "am"), "--poses-as", reading]) == 0
    star = tmp_path / "am" / "amended.star"
    assert main(["project", str(truth), "--angles", str(star), "-o", str(amended)]) == 0
    n = len(read_particles(tiny_set))
    expected = mirrored(MRCStack(given).read(np.arange(n)), axis)
    made = MRCStack(amended).read(np.arange(n))
    scale = float(np.abs(expected).max())
    assert float(np.abs(made - expected).max()) < 1e-4 * scale
    other = mirrored(MRCStack(given).read(np.arange(n)), "y" if axis == "x" else "x")
    assert float(np.abs(made - other).max()) > 0.1 * scale


@pytest.mark.parametrize("axis", ["x", "y"])
def test_mirrored_images_are_named_and_amended(mirrored_sets, tmp_path, capsys, axis):
    """The images mirrored: the pose check names the axis flipped (ahead of the x mirror's twin,
    the Euler angles' signs turned, by the shifts' sign), and ``info`` prints the amend line."""
    particles = read_particles(mirrored_sets[axis])
    check = check_pose_conventions(particles)
    assert check.verdict == "mismatch" and check.best == f"{axis} axis flipped", check.describe()
    assert f"images mirrored in {axis} against their poses" in check.describe()
    assert main(["info", str(mirrored_sets[axis])]) == 0
    assert f"--poses-as {axis}-axis-flipped" in capsys.readouterr().out
    amended = read_as(particles, f"{axis} axis flipped")
    again = check_pose_conventions(amended)
    assert again.verdict == "agree" and again.best == "as written"


@pytest.mark.parametrize("axis", ["x", "y"])
def test_mirrored_images_mirror_their_astigmatism(tmp_path, capsys, axis):
    """Images whose ice shows astigmatic Thon rings, mirrored: the astigmatism check reads their
    axis at minus the angle written (the slip amend's note names), and amend with the axis
    flipped says so unless the astigmatism is amended too."""
    config = NoiseStacksConfig(150, 96, 1.5, seed=0, ice_sd=0.6, astigmatism_max_angstrom=1500.0)
    star = write_noise_particles(tmp_path / "ice", config)
    assert check_astigmatism(read_particles(star)).verdict == "agree"
    _mirror_stacks(star, axis)
    check = check_astigmatism(read_particles(star))
    assert check.verdict == "mismatch" and check.best_slip == MIRROR_ASTIGMATISM, check.t
    flip = ["--poses-as", f"{axis}-axis-flipped"]
    assert main(["amend", str(star), "-o", str(tmp_path / "a"), *flip]) == 0
    assert "--astigmatism-as astigmatism-angle-negated" in capsys.readouterr().out
    both = [*flip, "--astigmatism-as", "astigmatism-angle-negated"]
    assert main(["amend", str(star), "-o", str(tmp_path / "b"), *both]) == 0
    assert "note:" not in capsys.readouterr().out
    amended = read_particles(tmp_path / "b" / "amended.star", datadir=star.parent)
    assert check_astigmatism(amended).verdict == "agree"


def test_without_shifts_the_x_mirror_and_the_signs_turned_are_both_named(tiny_set):
    """With no shifts the x axis flipped and the Euler angles' signs turned fit alike (they differ
    only in the map's hand): the warning names the signs turned and the mirror as causes."""
    given = read_particles(tiny_set)
    centred = replace(given, shifts_angstrom=np.zeros_like(given.shifts_angstrom))
    check = check_pose_conventions(read_as(centred, "x axis flipped"))
    twin = "rot and psi swapped and rotations inverted"
    assert check.verdict == "mismatch" and check.best == twin
    assert abs(check.scores[-3] - max(check.scores)) < 1e-6  # x axis flipped, level with it
    assert "images mirrored in x against their poses" in check.describe()


def test_one_source_of_a_merged_set_mirrored_is_named(tiny_set):
    """A merged set, one source's images mirrored in y against their poses: that optics setting
    is named with the y axis flipped, and amend's option for it printed."""
    merged = two_settings(read_particles(tiny_set))
    check = check_pose_conventions(read_as(merged, "y axis flipped", merged.optics_group == 1))
    setting = check.slipped_setting
    assert setting is not None and setting.name == "second", check.describe()
    assert "--poses-as y-axis-flipped --optics-group 'second'" in check.describe()


def test_amend_s_notes_on_a_mirror_name_what_it_leaves(tiny_set):
    """Amending a mirror leaves the astigmatism, the antisymmetric aberrations and an anisotropic
    magnification as written; the notes name each that the set holds, and none elsewhere."""
    given = read_particles(tiny_set)
    flip = Amendment(poses="y-axis-flipped")
    assert amendment_notes(given, flip) == []  # no astigmatism, no aberrations
    assert amendment_notes(given, Amendment(poses="shifts-negated")) == []
    n = len(given)
    ctf = replace(given.ctf, defocus_u_angstrom=given.ctf.defocus_u_angstrom + 200.0)
    odd = np.zeros((n, 6))
    odd[:, 0] = 0.1
    mags = np.tile([[1.01, 0.002], [0.002, 0.99]], (n, 1, 1))
    held = replace(given, ctf=ctf, odd_zernike=odd, mag_matrices=mags)
    notes = amendment_notes(held, flip)
    assert len(notes) == 2 and "--astigmatism-as astigmatism-angle-negated" in notes[0]
    assert "rlnOddZernike" in notes[1] and "rlnMagMat" in notes[1]
    both = Amendment(poses="x-axis-flipped", astigmatism="astigmatism-angle-negated")
    assert len(amendment_notes(held, both)) == 1
