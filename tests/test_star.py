"""STAR parsing and writing, RELION 3.0/3.1 particle files, and RELION reading what we write."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from cryosplat.core.collector import collector_paused
from cryosplat.core.ctf import CTFParams
from cryosplat.core.distinct import distinct_names, distinct_rows
from cryosplat.core.errors import InputError
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import read_map, write_map, write_stack
from cryosplat.io.stackrefs import split_image_names
from cryosplat.io.star import read_star, write_relion31_particles, write_star
from cryosplat.particles.read import read_particles

MESSY = """
# version 30001

data_general

_rlnFinalResolution    3.25
_rlnMapName 'my map.mrc'

# version 30001
data_optics
loop_
_rlnOpticsGroup #1
_rlnOpticsGroupName #2 [a comment]
_rlnImagePixelSize #3
1\t"group one"\t1.5

data_particles

loop_
_rlnImageName #1
_rlnDefocusU #2
_rlnAngleRot #3

1@a.mrcs 10000.0 30.0
2@a.mrcs
   11000.0 -45.5   # a row split over two lines

3@a.mrcs 12000 0
"""


def test_read_messy_star(tmp_path):
    p = tmp_path / "messy.star"
    p.write_text(MESSY)
    blocks = read_star(p)
    assert list(blocks) == ["general", "optics", "particles"]
    general = blocks["general"]
    assert not general.is_loop and general.n_rows == 1
    assert general.get_float("rlnFinalResolution")[0] == 3.25
    assert general.get_str("rlnMapName")[0] == "my map.mrc"
    optics = blocks["optics"]
    assert optics.get_str("rlnOpticsGroupName").tolist() == ["group one"]
    assert optics.get_int("rlnOpticsGroup").tolist() == [1]
    parts = blocks["particles"]
    assert parts.n_rows == 3
    assert parts.get_str("rlnImageName").tolist() == ["1@a.mrcs", "2@a.mrcs", "3@a.mrcs"]
    np.testing.assert_array_equal(parts.get_float("rlnAngleRot"), [30.0, -45.5, 0.0])
    assert "rlnDefocusU" in parts and "rlnDefocusV" not in parts


def test_row_with_too_many_values_names_line(tmp_path):
    p = tmp_path / "bad.star"
    p.write_text("data_\nloop_\n_rlnA #1\n_rlnB #2\n1 2\n3 4 5\n")
    with pytest.raises(InputError, match=r"line 6 \(row 2\) has 3 values but the loop has 2"):
        read_star(p)


def test_truncated_last_row(tmp_path):
    p = tmp_path / "bad.star"
    p.write_text("data_\nloop_\n_rlnA #1\n_rlnB #2\n1 2\n3\n")
    with pytest.raises(InputError, match="line 6 has 1 values but the loop has 2 columns"):
        read_star(p)


def test_non_number_names_column_and_row(tmp_path):
    p = tmp_path / "bad.star"
    p.write_text("data_x\nloop_\n_rlnDefocusU #1\n1\n2\nabc\n")
    block = read_star(p)["x"]
    with pytest.raises(InputError, match=r"column rlnDefocusU, row 3: 'abc' is not a number"):
        block.get_float("rlnDefocusU")
    with pytest.raises(InputError, match="required column _rlnDefocusV is missing"):
        block.get_float("rlnDefocusV")


def test_columns_hold_the_text_and_convert_on_request(tmp_path):
    """Columns are the values as written; numbers are made only for the columns asked for, each
    once (a second request gets its own copy), and an empty loop reads as empty columns."""
    name = "000001@" + "Extract/job012/Movies/" * 4 + "stack.mrcs"
    rows = "\n".join(f"{name} {k * 0.5:.1f}" for k in range(50))
    path = tmp_path / "wide.star"
    path.write_text(f"data_particles\nloop_\n_rlnImageName\n_rlnDefocusU\n{rows}\n")
    block = read_star(path)["particles"]
    assert block.columns["rlnImageName"][3] == name
    assert block.columns["rlnDefocusU"][3] == "1.5"
    first = block.get_float("rlnDefocusU")
    assert first[3] == 1.5
    first[3] = -1.0
    assert block.get_float("rlnDefocusU")[3] == 1.5
    assert block.get_str("rlnImageName")[3] == name
    empty = tmp_path / "empty.star"
    empty.write_text("data_particles\nloop_\n_rlnImageName\n_rlnDefocusU\n")
    assert read_star(empty)["particles"].get_float("rlnDefocusU").shape == (0,)


def test_a_body_split_at_once_reads_as_line_by_line(tmp_path):
    """A body without quotes or comments, one row a line, is split in one call; the same rows
    with a quoted value (read line by line) give the same columns."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=(40, 3))
    lines = [f"{k + 1}@s.mrcs {a:.6f}\t{b:.6f}  {c:.6f}" for k, (a, b, c) in enumerate(values)]
    head = "data_particles\nloop_\n_rlnImageName\n_rlnA\n_rlnB\n_rlnC\n"
    plain, quoted = tmp_path / "plain.star", tmp_path / "quoted.star"
    plain.write_text(head + "\n".join(lines[:20]) + "\n\n" + "\n".join(lines[20:]) + "\n")
    quoted.write_text(
        head + "\n".join(lines[:-1]) + f"\n'40@s.mrcs' {lines[-1].split(None, 1)[1]}\n"
    )
    a, b = read_star(plain)["particles"], read_star(quoted)["particles"]
    assert a.columns == b.columns and a.n_rows == 40
    np.testing.assert_allclose(a.get_float("rlnB"), np.round(values[:, 1], 6))


def test_a_missing_value_is_not_made_up_by_an_extra_one(tmp_path):
    """Rows of 1 and 3 values in a loop of 2 columns hold as many values as two whole rows: the
    error still names the row, where splitting the body at once would shift every column."""
    p = tmp_path / "bad.star"
    p.write_text("data_\nloop_\n_rlnA #1\n_rlnB #2\n1 2\n3\n4 5 6\n7 8\n")
    with pytest.raises(InputError, match=r"line 6 \(row 2\) has 1 values but the loop has 2"):
        read_star(p)


def test_a_byte_order_mark_and_windows_line_ends_are_read(tmp_path):
    text = "data_particles\r\nloop_\r\n_rlnDefocusU\r\n15000\r\n16000\r\n"
    path = tmp_path / "bom.star"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert read_star(path)["particles"].get_float("rlnDefocusU").tolist() == [15000.0, 16000.0]


def test_write_read_roundtrip(tmp_path):
    p = tmp_path / "out.star"
    cols = {
        "rlnImageName": ["1@a b.mrcs", "2@c.mrcs"],
        "rlnAngleRot": np.array([1.25, -3e-7]),
        "rlnClassNumber": np.array([1, 2]),
        "rlnEmpty": ["", "x"],
    }
    write_star(p, {"particles": cols, "other": {"rlnValue": [5.5]}})
    blocks = read_star(p)
    b = blocks["particles"]
    assert b.get_str("rlnImageName").tolist() == ["1@a b.mrcs", "2@c.mrcs"]
    np.testing.assert_allclose(b.get_float("rlnAngleRot"), [1.25, -3e-7], rtol=1e-7)
    assert b.get_int("rlnClassNumber").tolist() == [1, 2]
    assert b.get_str("rlnEmpty").tolist() == ["", "x"]
    assert blocks["other"].get_float("rlnValue").tolist() == [5.5]
    assert not list(tmp_path.glob(".*tmp"))


def test_write_rejects_ragged_columns(tmp_path):
    with pytest.raises(ValueError, match="different lengths"):
        write_star(tmp_path / "x.star", {"a": {"x": [1, 2], "y": [1]}})


def _synthetic_particles(tmp_path, n=6, box=16, pixel=2.0, seed=0):
    rng = np.random.default_rng(seed)
    write_stack(tmp_path / "stack.mrcs", rng.normal(size=(n, box, box)), pixel)
    rot = random_rotations(n, seed)
    shifts = rng.uniform(-3, 3, (n, 2))
    ctf = CTFParams.create(
        n,
        defocus_u_angstrom=rng.uniform(1e4, 2e4, n),
        defocus_v_angstrom=rng.uniform(1e4, 2e4, n),
        defocus_angle_degrees=rng.uniform(-90, 90, n),
        voltage_kv=np.where(np.arange(n) < 3, 300.0, 200.0),
        bfactor_angstrom2=rng.uniform(0, 50, n),
    )
    names = [f"{i + 1:06d}@stack.mrcs" for i in range(n)]
    return names, rot, shifts, ctf


def test_relion31_roundtrip(tmp_path):
    names, rot, shifts, ctf = _synthetic_particles(tmp_path)
    p = tmp_path / "particles.star"
    write_relion31_particles(
        p,
        image_names=names,
        rotations=rot,
        shifts_angstrom=shifts,
        ctf=ctf,
        pixel_size_angstrom=2.0,
        box=16,
        random_subset=[1, 2] * 3,
        extra_columns={"rlnClassNumber": np.ones(6, dtype=int)},
    )
    ps = read_particles(p)
    assert len(ps) == 6 and ps.box == 16 and ps.pixel_size_angstrom == 2.0
    np.testing.assert_allclose(ps.rotations, rot, atol=1e-5)
    np.testing.assert_allclose(ps.shifts_angstrom, shifts, atol=1e-6)
    for f in CTFParams.FIELDS:
        np.testing.assert_allclose(getattr(ps.ctf, f), getattr(ctf, f), atol=1e-5)
    assert len(ps.optics) == 2 and sorted(g.voltage_kv for g in ps.optics) == [200.0, 300.0]
    assert ps.random_subset.tolist() == [1, 2] * 3
    assert ps.image_index.tolist() == list(range(6))
    assert read_star(p)["particles"].get_int("rlnClassNumber").tolist() == [1] * 6


def test_require_images_false(tmp_path):
    rot = random_rotations(4, 1)
    p = tmp_path / "angles.star"
    write_relion31_particles(p, image_names=None, rotations=rot, pixel_size_angstrom=3.0, box=24)
    with pytest.raises(InputError, match="rlnImageName"):
        read_particles(p)
    ps = read_particles(p, require_images=False)
    assert len(ps) == 4 and ps.box == 24 and ps.pixel_size_angstrom == 3.0
    assert ps.stacks == [] and ps.stack_index.tolist() == [-1] * 4
    assert ps.image_index.tolist() == [0, 1, 2, 3] and ps.ctf is None
    np.testing.assert_allclose(ps.rotations, rot, atol=1e-5)


def test_relion30_origins_in_pixels(tmp_path):
    write_stack(tmp_path / "s.mrcs", np.zeros((2, 8, 8)), 0.0)
    p = tmp_path / "r30.star"
    write_star(
        p,
        {
            "": {
                "rlnImageName": ["1@s.mrcs", "2@s.mrcs"],
                "rlnOriginX": [1.0, -2.0],
                "rlnOriginY": [0.5, 0.0],
                "rlnMagnification": [10000.0, 10000.0],
                "rlnDetectorPixelSize": [5.0, 5.0],
                "rlnAngleRot": [0.0, 0.0],
                "rlnAngleTilt": [0.0, 90.0],
                "rlnAnglePsi": [0.0, 0.0],
            }
        },
    )
    ps = read_particles(p)
    assert ps.pixel_size_angstrom == pytest.approx(5.0)
    np.testing.assert_allclose(ps.shifts_angstrom, [[5.0, 2.5], [-10.0, 0.0]])
    assert ps.ctf is None and ps.notes == []


def test_relion31_5(shared_data):
    ps = read_particles(shared_data / "particles/relion31_5/relion31.star")
    assert len(ps) == 5 and ps.box == 256 and ps.pixel_size_angstrom == pytest.approx(2.806)
    assert ps.has_poses and ps.has_ctf and len(ps.optics) == 1
    assert ps.optics[0].cs_mm == pytest.approx(0.01)
    assert ps.shifts_angstrom[0].tolist() == pytest.approx([0.019324, -0.64686])
    assert ps.read_images([4, 0]).shape == (2, 256, 256)
    # The header says 1.0 Å (unset): no note of it; rows 1 and 2 are one pick listed twice
    # (tests/test_close_picks.py).
    assert [n.split(":")[0] for n in ps.notes] == ["picked twice?"]


def test_betagal_30_and_31_disagree_on_pixel_size(shared_data):
    folder = shared_data / "particles/betagal_17"
    old = read_particles(folder / "sample_relion_data.star")
    new = read_particles(folder / "sample_particles_relion31.star")
    assert old.pixel_size_angstrom == pytest.approx(5.0 * 1e4 / 37369.207031)
    assert old.pixel_size_angstrom == pytest.approx(1.338, abs=1e-3)
    assert new.pixel_size_angstrom == pytest.approx(1.4)
    assert len(new.optics) == 2 and [g.voltage_kv for g in new.optics] == [300.0, 200.0]
    assert np.bincount(new.optics_group).tolist() == [8, 9]
    # Same particles, angles, defocus and images, except that the 3.1 file repeats row 14's
    # metadata on row 15 (a second real inconsistency of this pair).
    np.testing.assert_allclose(new.rotations[14], new.rotations[13])
    assert not np.allclose(old.rotations[14], new.rotations[14], atol=1e-3)
    keep = np.arange(17) != 14
    np.testing.assert_allclose(old.rotations[keep], new.rotations[keep], atol=1e-6)
    np.testing.assert_allclose(old.ctf.defocus_u_angstrom, new.ctf.defocus_u_angstrom)
    np.testing.assert_array_equal(old.read_images(range(17)), new.read_images(range(17)))
    # The 3.1 file's Å origins are the 3.0 file's pixel origins copied unscaled.
    np.testing.assert_allclose(
        new.shifts_angstrom[keep], old.shifts_angstrom[keep] / old.pixel_size_angstrom, atol=1e-6
    )


def test_trpv1_stack_paths(shared_data):
    folder = shared_data / "particles/trpv1_10"
    ps = read_particles(folder / "trpv1_small_stack.local.star")
    assert len(ps) == 10 and ps.box == 48 and ps.pixel_size_angstrom == pytest.approx(4.88)
    with pytest.raises(InputError, match="batch_0_restacked.mrc' not found; tried: "):
        read_particles(folder / "trpv1_small_stack.star")
    no_images = read_particles(folder / "trpv1_small_stack.star", require_images=False)
    assert no_images.stacks == [] and "images not read" in no_images.notes[0]


def test_datadir_is_tried_first(tmp_path, small_stack):
    stack, images = small_stack
    elsewhere = tmp_path / "a" / "b" / "c" / "meta"  # four levels down: past the project search
    elsewhere.mkdir(parents=True)
    p = elsewhere / "p.star"
    write_relion31_particles(
        p, image_names=["2@stack.mrcs", "1@stack.mrcs"], pixel_size_angstrom=2.0, box=16
    )
    with pytest.raises(
        InputError, match="not found; tried.*Give --datadir the folder.*RELION's project folder"
    ):
        read_particles(p)
    ps = read_particles(p, datadir=tmp_path)
    np.testing.assert_array_equal(ps.read_images([0, 1]), images[[1, 0]])


def test_a_relion_jobs_paths_are_found_from_its_project_folder(tmp_path, monkeypatch):
    """RELION writes stack paths relative to its project folder, two levels above a job's STAR
    (``Refine3D/job010/run_data.star`` names ``Extract/job005/...``); a user may run the
    command from anywhere."""
    images = np.random.default_rng(1).normal(size=(3, 16, 16)).astype(np.float32)
    project = tmp_path / "project"
    (project / "Extract" / "job005").mkdir(parents=True)
    write_stack(project / "Extract" / "job005" / "mic1.mrcs", images, 2.0)
    job = project / "Refine3D" / "job010"
    job.mkdir(parents=True)
    names = [f"{i}@Extract/job005/mic1.mrcs" for i in (3, 1)]
    write_relion31_particles(
        job / "run_data.star", image_names=names, pixel_size_angstrom=2.0, box=16
    )
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ps = read_particles(job / "run_data.star")
    np.testing.assert_array_equal(ps.read_images([0, 1]), images[[2, 0]])
    above = [n for n in ps.notes if n.startswith("stacks found above")]
    assert len(above) == 1 and str(project / "Extract" / "job005" / "mic1.mrcs") in above[0]
    monkeypatch.chdir(project)  # run from the project folder, as RELION is: nothing to say
    ps = read_particles(job / "run_data.star")
    assert not any(n.startswith("stacks found above") for n in ps.notes)


def test_after_the_first_stack_each_is_looked_for_where_the_last_was_found(tmp_path, monkeypatch):
    """Thousands of stacks lie in one folder: once one is found, the next is tried there first
    (one look each, as a network disk charges per look), also for moved absolute paths."""
    from pathlib import Path

    from cryosplat.io.stackrefs import open_stacks, search_dirs

    images = np.zeros((1, 16, 16), dtype=np.float32)
    project = tmp_path / "project"
    (project / "Extract" / "job005").mkdir(parents=True)
    for m in range(5):
        write_stack(project / "Extract" / "job005" / f"mic{m}.mrcs", images, 2.0)
    job = project / "Refine3D" / "job010"
    job.mkdir(parents=True)
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path / "home")
    looks = []
    is_file = Path.is_file
    monkeypatch.setattr(Path, "is_file", lambda self: looks.append(self) or is_file(self))
    for prefix in ("", "/gone/project/"):
        looks.clear()
        names = np.array([f"{prefix}Extract/job005/mic{m}.mrcs" for m in range(5)])
        dirs = search_dirs(job / "run_data.star", None)
        stacks, _ = open_stacks(names, np.zeros(5, dtype=np.int64), job / "x.star", dirs)
        assert [st.path.name for st in stacks] == [f"mic{m}.mrcs" for m in range(5)]
        written = {Path(n) for n in names}  # an absolute path is first looked for as written
        misses = [look for look in looks if not is_file(look) and look not in written]
        assert misses and all("mic0" in look.name for look in misses), misses


def test_absolute_stack_paths_of_a_moved_project_are_found_by_their_end(tmp_path, monkeypatch):
    """A STAR naming its stacks by absolute paths, read after its project was moved or copied:
    each path's end is tried under the folders searched, and a note says so."""
    images = np.random.default_rng(2).normal(size=(2, 16, 16)).astype(np.float32)
    project = tmp_path / "copy" / "project"
    (project / "Extract" / "job005").mkdir(parents=True)
    write_stack(project / "Extract" / "job005" / "mic1.mrcs", images, 2.0)
    job = project / "Select" / "job020"
    job.mkdir(parents=True)
    old = "/gone/lab/project/Extract/job005/mic1.mrcs"
    write_relion31_particles(
        job / "particles.star",
        image_names=[f"2@{old}", f"1@{old}"],
        pixel_size_angstrom=2.0,
        box=16,
    )
    monkeypatch.chdir(tmp_path)
    ps = read_particles(job / "particles.star")
    np.testing.assert_array_equal(ps.read_images([0, 1]), images[[1, 0]])
    moved = [n for n in ps.notes if n.startswith("stacks moved")]
    assert len(moved) == 1 and old in moved[0] and str(project / "Extract") in moved[0]
    # where its end is nowhere under those folders, every path tried is named
    write_relion31_particles(
        job / "lost.star", image_names=["1@/gone/elsewhere/x.mrcs"], pixel_size_angstrom=2.0, box=16
    )
    with pytest.raises(InputError, match="x.mrcs' not found; tried: /gone/elsewhere/x.mrcs, "):
        read_particles(job / "lost.star")


@pytest.mark.relion
def test_relion_reads_what_we_write(tmp_path, relion_available, shared_data):
    # relion_project --ang with our angles file, then relion_reconstruct from our particle file.
    vol, voxel = read_map(shared_data / "maps/emd_5625.map")
    box = 32
    c = vol.shape[0] // 2
    small = vol[
        c - box // 2 : c + box // 2, c - box // 2 : c + box // 2, c - box // 2 : c + box // 2
    ]
    write_map(tmp_path / "ref.mrc", small, voxel)
    rot = random_rotations(40, 7)
    write_relion31_particles(
        tmp_path / "ang.star",
        image_names=None,
        rotations=rot,
        shifts_angstrom=np.zeros((40, 2)),
        pixel_size_angstrom=voxel,
        box=box,
    )
    subprocess.run(
        ["relion_project", "--i", "ref.mrc", "--ang", "ang.star", "--o", "proj"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    images = read_particles(tmp_path / "proj.star").read_images(range(40))
    names = [f"{i + 1}@proj.mrcs" for i in range(40)]
    write_relion31_particles(
        tmp_path / "ours.star",
        image_names=names,
        rotations=rot,
        shifts_angstrom=np.zeros((40, 2)),
        pixel_size_angstrom=voxel,
        box=box,
        random_subset=[1, 2] * 20,
    )
    subprocess.run(
        ["relion_reconstruct", "--i", "ours.star", "--o", "rec.mrc"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    rec, rec_voxel = read_map(tmp_path / "rec.mrc")
    assert rec_voxel == pytest.approx(voxel, rel=1e-4)
    corr = np.corrcoef(rec.ravel(), small.ravel())[0, 1]
    assert corr > 0.8, corr
    # We also read RELION's own output STAR and stack.
    assert images.shape == (40, box, box) and np.isfinite(images).all()


def test_image_names_split_into_indices_and_stacks(tmp_path):
    names = ["000012@Extract/a.mrcs", "3@b.mrcs", "single.mrc", "7@Extract/a.mrcs"]
    index, stacks = split_image_names(names, tmp_path / "p.star")
    assert index.tolist() == [11, 2, 0, 6]
    assert stacks.tolist() == ["Extract/a.mrcs", "b.mrcs", "single.mrc", "Extract/a.mrcs"]
    for bad, message in (
        ("x@a.mrcs", r"row 2: 'x@a.mrcs' is not of the form N@stack.mrcs"),
        ("\u0663@a.mrcs", "is not of the form N@stack.mrcs"),  # an Arabic-Indic three
        ("0@a.mrcs", "image numbers start at 1"),
        ("4@", "names no file"),
    ):
        with pytest.raises(InputError, match=message):
            split_image_names(["1@a.mrcs", bad], tmp_path / "p.star")


def test_distinct_names_are_numpy_unique():
    rng = np.random.default_rng(5)
    names = [f"Extract/job{int(k):03d}/mic_{int(k) % 7}.mrcs" for k in rng.integers(0, 40, 500)]
    names += ["Z.mrcs", "a.mrcs", "é.mrcs"]
    unique, inverse = distinct_names(names)
    expect, expect_inverse = np.unique(np.array(names, dtype=str), return_inverse=True)
    assert unique == expect.tolist()
    np.testing.assert_array_equal(inverse, expect_inverse.reshape(-1))
    assert distinct_names([])[0] == [] and distinct_names([])[1].shape == (0,)


def test_distinct_rows_are_numpy_unique_by_rows():
    """Column by column, as ``np.unique(axis=0)`` sorts the rows as records: the same rows, order
    and indices, with signed zeros, repeats and empty tables."""
    rng = np.random.default_rng(6)
    for trial in range(60):
        n, m = int(rng.integers(0, 200)), int(rng.integers(1, 5))
        table = rng.choice([-1.0, 0.0, -0.0, 1.5, 2.7, 300.0, 1e-7], size=(n, m))
        if trial % 3 == 0:
            table = rng.integers(-3, 3, size=(n, m))
        unique, inverse = distinct_rows(table)
        expect, expect_inverse = np.unique(table, axis=0, return_inverse=True)
        np.testing.assert_array_equal(unique, expect)
        np.testing.assert_array_equal(inverse, expect_inverse.reshape(-1))
    with pytest.raises(ValueError, match="2-D"):
        distinct_rows(np.zeros(3))


def test_the_collector_is_paused_and_put_back_as_it_was():
    import gc

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_body_read_in_pieces_reads_as_in_one(tmp_path, monkeypatch):
    """A body split a few lines at a time (rows split over lines across the pieces' edges,
    quoted and plain pieces) gives the blocks of one piece."""
    import cryosplat.io.star as star

    rows = "\n".join(
        f"{k + 1}@a.mrcs\n  {k * 1.5:.1f} {k}"
        if k % 3 == 0
        else f"{k + 1}@a.mrcs {k * 1.5:.1f} {k}"
        for k in range(30)
    )
    text = (
        MESSY
        + f"\ndata_more\nloop_\n_rlnImageName\n_rlnDefocusU\n_rlnX\n{rows}\n'31@a.mrcs' 1.0 2\n"
    )
    path = tmp_path / "pieces.star"
    path.write_text(text)
    whole = read_star(path)
    for piece in (1, 2, 3, 7):
        monkeypatch.setattr(star, "_BODY_PIECE_LINES", piece)
        parts = read_star(path)
        assert {k: b.columns for k, b in parts.items()} == {k: b.columns for k, b in whole.items()}
    assert whole["more"].n_rows == 31 and whole["more"].columns["rlnX"][3] == "3"
