"""A cryoSPARC job's particles split over two files, the job's own fields and those it passed
through, joined back by uid (``particles/cryosparc.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from cryosplat.core.errors import InputError
from cryosplat.particles.cryosparc import find_passthrough, read_cryosparc, write_cs_rows


def _split(table: np.ndarray, folder, main_name: str, passthrough_name: str, seed: int = 0):
    """``table`` written as a job writes it: uid and alignments3D/* in ``main_name``, uid and
    every other field in ``passthrough_name``, the latter's rows shuffled."""
    own = ["uid"] + [n for n in table.dtype.names if n.startswith("alignments3D/")]
    rest = ["uid"] + [n for n in table.dtype.names if n not in own]

    def part(names, rows):
        out = np.empty(len(rows), dtype=[(n, table.dtype.fields[n][0]) for n in names])
        for n in names:
            out[n] = table[n][rows]
        return out

    order = np.random.default_rng(seed).permutation(len(table))
    for name, names, rows in (
        (main_name, own, np.arange(len(table))),
        (passthrough_name, rest, order),
    ):
        with open(folder / name, "wb") as fh:
            np.save(fh, part(names, rows))
    return folder / main_name


def _with_uid(table: np.ndarray) -> np.ndarray:
    if "uid" in table.dtype.names:
        return table
    out = np.empty(
        len(table),
        dtype=[("uid", "<u8")] + [(n, table.dtype.fields[n][0]) for n in table.dtype.names],
    )
    out["uid"] = np.arange(len(table), dtype=np.uint64) * 7919 + 12345
    for n in table.dtype.names:
        out[n] = table[n]
    return out


def test_a_real_jobs_split_files_read_as_the_whole(shared_data, tmp_path):
    whole = shared_data / "metadata" / "cryosparc_P12_J24_001_particles.cs"
    table = _with_uid(np.load(whole))
    main = _split(table, tmp_path, "J24_005_particles.cs", "J24_passthrough_particles.cs")
    assert find_passthrough(main) == tmp_path / "J24_passthrough_particles.cs"
    joined = read_cryosparc(main, require_images=False)
    alone = read_cryosparc(whole, require_images=False)
    np.testing.assert_array_equal(joined.rotations, alone.rotations)
    np.testing.assert_array_equal(joined.shifts_angstrom, alone.shifts_angstrom)
    np.testing.assert_array_equal(joined.random_subset, alone.random_subset)
    for field in alone.ctf.FIELDS:
        np.testing.assert_array_equal(getattr(joined.ctf, field), getattr(alone.ctf, field))
    assert any("read from J24_passthrough_particles.cs, matched by uid" in n for n in joined.notes)


def test_images_come_through_the_passthrough(tmp_path, small_stack):
    from test_cryosparc import _write_cs

    stack, images = small_stack
    table = _with_uid(_write_cs(tmp_path / "all.cs", ["stack.mrcs"] * 4, [3, 0, 5, 1]))
    main = _split(
        table, tmp_path, "cryosparc_P3_J7_002_particles.cs", "P3_J7_passthrough_particles.cs"
    )
    ps = read_cryosparc(main)
    np.testing.assert_array_equal(ps.read_images([0, 1, 2, 3]), images[[3, 0, 5, 1]])


def test_names_that_pick_one_passthrough_or_none(tmp_path):
    for name in (
        "J9_passthrough_particles.cs",
        "J9_passthrough_particles_selected.cs",
        "J10_passthrough_particles.cs",
    ):
        (tmp_path / name).write_bytes(b"")
    assert find_passthrough(tmp_path / "J9_020_particles.cs").name == "J9_passthrough_particles.cs"
    assert (
        find_passthrough(tmp_path / "J9_particles_selected.cs").name
        == "J9_passthrough_particles_selected.cs"
    )
    assert find_passthrough(tmp_path / "J11_020_particles.cs") is None
    assert find_passthrough(tmp_path / "particles.cs") is None
    assert find_passthrough(tmp_path / "J9_passthrough_particles.cs") is None


def test_rows_the_passthrough_lacks_and_a_missing_uid_are_refused(shared_data, tmp_path):
    table = _with_uid(np.load(shared_data / "metadata" / "cryosparc_P12_J24_001_particles.cs"))
    main = _split(table, tmp_path, "J24_005_particles.cs", "J24_passthrough_particles.cs")
    passthrough = np.load(tmp_path / "J24_passthrough_particles.cs")
    with open(tmp_path / "J24_passthrough_particles.cs", "wb") as fh:
        np.save(fh, passthrough[5:])
    with pytest.raises(
        InputError, match=r"5 of the 2019 particles of J24_005_particles.cs are not in it"
    ):
        read_cryosparc(main, require_images=False)
    with open(tmp_path / "J24_passthrough_particles.cs", "wb") as fh:
        np.save(fh, passthrough[[n for n in passthrough.dtype.names if n != "uid"]])
    with pytest.raises(InputError, match="no uid field"):
        read_cryosparc(main, require_images=False)
    (tmp_path / "J24_passthrough_particles.cs").unlink()
    with pytest.raises(
        InputError, match="required field .* is missing .*J<n>_passthrough_particles.cs"
    ):
        read_cryosparc(main, require_images=False)


def test_kept_rows_written_as_a_cs_that_stands_alone(shared_data, tmp_path):
    whole = shared_data / "metadata" / "cryosparc_P12_J24_001_particles.cs"
    table = _with_uid(np.load(whole))
    job = tmp_path / "job"
    job.mkdir()
    main = _split(table, job, "J24_005_particles.cs", "J24_passthrough_particles.cs")
    rows = np.array([3, 0, 17, 41])
    out = tmp_path / "scores" / "kept.cs"
    write_cs_rows(main, rows, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["kept.cs"]  # no temporary beside it
    kept = np.load(out)
    assert set(kept.dtype.names) == set(table.dtype.names)  # the passthrough's fields joined in
    for name in table.dtype.names:
        np.testing.assert_array_equal(kept[name], table[name][rows])
    alone = read_cryosparc(out, require_images=False)  # no passthrough beside it: none needed
    every = read_cryosparc(whole, require_images=False)
    np.testing.assert_array_equal(alone.rotations, every.rotations[rows])
    np.testing.assert_array_equal(alone.ctf.defocus_u_angstrom, every.ctf.defocus_u_angstrom[rows])
