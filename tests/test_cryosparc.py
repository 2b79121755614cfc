"""cryoSPARC .cs reading, checked against cryoDRGN's reading of the same file and against RELION."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from cryosplat.core.conventions import rotvec_to_matrix
from cryosplat.core.errors import InputError
from cryosplat.particles.cryosparc import read_cryosparc
from cryosplat.particles.halves import split_halves
from cryosplat.particles.read import read_particles


def test_matches_cryodrgn_reading(shared_data):
    meta = shared_data / "metadata"
    ps = read_cryosparc(meta / "cryosparc_P12_J24_001_particles.cs", require_images=False)
    assert len(ps) == 2019 and ps.box == 180 and ps.pixel_size_angstrom == pytest.approx(2.95)
    with open(meta / "pose.cs.pkl", "rb") as fh:
        rot, trans = pickle.load(fh)
    # cryoDRGN rotations are RELION's A, which is the transpose of cryoSPARC's Rodrigues matrix.
    np.testing.assert_allclose(ps.rotations, rot, atol=1e-5)
    table = np.load(meta / "cryosparc_P12_J24_001_particles.cs")
    r_cs = rotvec_to_matrix(table["alignments3D/pose"].astype(np.float64))
    np.testing.assert_allclose(np.swapaxes(r_cs, 1, 2), rot, atol=1e-5)
    assert np.abs(r_cs - rot).max() > 0.5
    # cryoDRGN translations = +shift / D (box fractions, RELION's sign).
    np.testing.assert_allclose(
        ps.shifts_angstrom / (ps.box * ps.pixel_size_angstrom), trans, atol=1e-5
    )
    with open(meta / "ctf2.pkl", "rb") as fh:
        ctf = pickle.load(fh)
    np.testing.assert_allclose(ctf[:, 0], ps.box)
    np.testing.assert_allclose(ctf[:, 1], ps.pixel_size_angstrom, atol=1e-5)
    for j, field in enumerate(
        [
            "defocus_u_angstrom",
            "defocus_v_angstrom",
            "defocus_angle_degrees",
            "voltage_kv",
            "cs_mm",
            "amplitude_contrast",
            "phase_shift_degrees",
        ],
        start=2,
    ):
        np.testing.assert_allclose(getattr(ps.ctf, field), ctf[:, j], rtol=1e-5, atol=1e-4)
    assert set(np.unique(ps.random_subset)) == {1, 2}


def test_cs_and_star_give_same_ctf_and_pixels(shared_data):
    folder = shared_data / "particles/empiar10076_7"
    cs = read_particles(folder / "empiar_10076_7.cs")
    star = read_particles(folder / "empiar_10076_7.star")
    assert len(cs) == len(star) == 7 and cs.box == star.box == 320
    assert cs.pixel_size_angstrom == pytest.approx(star.pixel_size_angstrom, abs=1e-5)
    assert cs.pixel_size_angstrom == pytest.approx(1.31, abs=1e-4)
    for f in (
        "defocus_u_angstrom",
        "defocus_v_angstrom",
        "defocus_angle_degrees",
        "voltage_kv",
        "cs_mm",
        "amplitude_contrast",
        "phase_shift_degrees",
    ):
        np.testing.assert_allclose(getattr(cs.ctf, f), getattr(star.ctf, f), rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(cs.read_images(range(7)), star.read_images(range(7)))
    assert not cs.has_poses and not star.has_poses


def _write_cs(path, paths, idx, n_images_box=16, psize=2.0, poses=True):
    n = len(paths)
    fields = [
        ("blob/path", "S64"),
        ("blob/idx", "<u4"),
        ("blob/shape", "<u4", (2,)),
        ("blob/psize_A", "<f4"),
        ("ctf/df1_A", "<f4"),
        ("ctf/df2_A", "<f4"),
        ("ctf/df_angle_rad", "<f4"),
        ("ctf/accel_kv", "<f4"),
        ("ctf/cs_mm", "<f4"),
        ("ctf/amp_contrast", "<f4"),
        ("ctf/phase_shift_rad", "<f4"),
    ]
    if poses:
        fields += [
            ("alignments3D/pose", "<f4", (3,)),
            ("alignments3D/shift", "<f4", (2,)),
            ("alignments3D/psize_A", "<f4"),
        ]
    t = np.zeros(n, dtype=fields)
    t["blob/path"] = [p.encode() for p in paths]
    t["blob/idx"] = idx
    t["blob/shape"] = n_images_box
    t["blob/psize_A"] = psize
    t["ctf/df1_A"], t["ctf/df2_A"], t["ctf/accel_kv"], t["ctf/cs_mm"] = 1e4, 1.2e4, 300, 2.7
    t["ctf/df_angle_rad"] = np.pi / 4
    t["ctf/amp_contrast"] = 0.1
    if poses:
        t["alignments3D/pose"] = np.random.default_rng(0).normal(size=(n, 3))
        t["alignments3D/shift"] = [[1.0, -2.0]] * n
        t["alignments3D/psize_A"] = psize
    with open(path, "wb") as fh:
        np.save(fh, t)
    return t


def test_job_folder_and_import_prefix_resolve(tmp_path, small_stack):
    stack, images = small_stack
    cs = tmp_path / "P1_J5_particles.cs"
    _write_cs(cs, [">J3/imported/stack.mrcs", "J3/imported/stack.mrcs"], [4, 0])
    ps = read_cryosparc(cs)
    assert ps.stacks[0].path == stack
    np.testing.assert_array_equal(ps.read_images([0, 1]), images[[4, 0]])
    np.testing.assert_allclose(ps.shifts_angstrom, [[2.0, -4.0]] * 2)
    np.testing.assert_allclose(ps.ctf.defocus_angle_degrees, 45.0, atol=1e-5)
    assert ps.notes == []


def test_missing_stack_lists_tried_paths(tmp_path):
    cs = tmp_path / "x.cs"
    _write_cs(cs, ["J3/extract/missing.mrc"], [0])
    with pytest.raises(InputError) as err:
        read_cryosparc(cs, datadir=tmp_path / "proj")
    msg = str(err.value)
    assert "missing.mrc' not found; tried:" in msg and str(tmp_path / "proj") in msg
    assert "(the cryoSPARC project folder, which holds its job folders" in msg  # not RELION's


def test_nan_field_names_row(tmp_path, small_stack):
    cs = tmp_path / "x.cs"
    t = _write_cs(cs, ["stack.mrcs"] * 3, [0, 1, 2])
    t["ctf/df1_A"][2] = np.nan
    with open(cs, "wb") as fh:
        np.save(fh, t)
    with pytest.raises(InputError, match=r"field ctf/df1_A, row 3: value nan"):
        read_cryosparc(cs)


def _edited_cs(shared_data, tmp_path, edit) -> object:
    """The real .cs with ``edit(table)`` applied, saved as a .cs (np.save to a file object)."""
    table = np.load(shared_data / "metadata" / "cryosparc_P12_J24_001_particles.cs")
    table = edit(table.copy())
    path = tmp_path / "edited.cs"
    with open(path, "wb") as fh:
        np.save(fh, table)
    return path


def test_shifts_use_the_alignment_pixel_size(shared_data, tmp_path):
    """alignments3D/shift is in pixels of alignments3D/psize_A, not of blob/psize_A."""
    original = read_cryosparc(
        shared_data / "metadata" / "cryosparc_P12_J24_001_particles.cs", require_images=False
    )

    def downsampled_alignment(table):
        # The poses came from images binned twice: half the pixels, twice the pixel size.
        table["alignments3D/psize_A"] = 2 * table["blob/psize_A"]
        table["alignments3D/shift"] = table["alignments3D/shift"] / 2
        return table

    ps = read_cryosparc(_edited_cs(shared_data, tmp_path, downsampled_alignment), None, False)
    assert ps.pixel_size_angstrom == pytest.approx(2.95)
    np.testing.assert_allclose(ps.shifts_angstrom, original.shifts_angstrom, rtol=1e-5, atol=1e-4)
    assert np.abs(original.shifts_angstrom).max() > 1.0

    def without_alignment_pixel(table):
        names = [n for n in table.dtype.names if n != "alignments3D/psize_A"]
        return table[names]

    ps = read_cryosparc(_edited_cs(shared_data, tmp_path, without_alignment_pixel), None, False)
    np.testing.assert_allclose(ps.shifts_angstrom, original.shifts_angstrom, rtol=1e-6)
    assert "shifts: no alignments3D/psize_A; scaled by blob/psize_A" in ps.notes


def test_aberration_fields_are_named_in_a_warning(shared_data, tmp_path):
    assert (
        read_cryosparc(
            shared_data / "metadata" / "cryosparc_P12_J24_001_particles.cs", require_images=False
        ).warnings
        == []
    )
    extra = [
        ("ctf/tilt_A", "<f4", (2,)),
        ("ctf/anisomag", "<f4", (4,)),
        ("ctf/tetra_A", "<f4", (4,)),
    ]

    def with_aberrations(table):
        out = np.zeros(table.shape, dtype=table.dtype.descr + extra)
        for name in table.dtype.names:
            out[name] = table[name]
        out["ctf/tilt_A"][:, 0] = 0.3
        out["ctf/anisomag"][:, 0] = 0.01
        return out

    ps = read_cryosparc(_edited_cs(shared_data, tmp_path, with_aberrations), None, False)
    assert len(ps.warnings) == 1
    assert "ctf/tilt_A, ctf/anisomag present and not modelled" in ps.warnings[0]
    assert "tetra_A" not in ps.warnings[0]


def test_each_particles_micrograph_is_read_from_its_uid(tmp_path, small_stack):
    cs = tmp_path / "x.cs"
    table = _write_cs(cs, ["stack.mrcs"] * 4, [0, 1, 2, 3])
    with_uid = np.zeros(4, dtype=[*table.dtype.descr, ("location/micrograph_uid", "<u8")])
    for name in table.dtype.names:
        with_uid[name] = table[name]
    with_uid["location/micrograph_uid"] = [907, 12, 907, 5]
    with open(cs, "wb") as fh:
        np.save(fh, with_uid)
    np.testing.assert_array_equal(read_cryosparc(cs).micrographs, [0, 1, 0, 2])
    assert read_cryosparc(cs).subset([3, 0]).micrographs.tolist() == [2, 0]


def test_filament_uids_keep_tubes_in_one_half_and_a_split_tube_is_warned_of(tmp_path, small_stack):
    cs = tmp_path / "x.cs"
    table = _write_cs(cs, ["stack.mrcs"] * 6, [0, 1, 2, 3, 4, 5])
    extra = [("filament/filament_uid", "<u8"), ("alignments3D/split", "<u4")]
    helical = np.zeros(6, dtype=[*table.dtype.descr, *extra])
    for name in table.dtype.names:
        helical[name] = table[name]
    helical["filament/filament_uid"] = [2**63 + 7, 2**63 + 7, 2**63 + 8, 2**63 + 8, 5, 5]
    helical["alignments3D/split"] = [0, 0, 1, 1, 0, 1]  # the third tube straddles the halves
    with open(cs, "wb") as fh:
        np.save(fh, helical)
    ps = read_cryosparc(cs)
    assert ps.patch_groups.tolist() == [0, 0, 1, 1, 2, 2]
    assert any("6 particles in 3 tubes (filament/filament_uid)" in n for n in ps.notes)
    assert len(ps.warnings) == 1
    assert ps.warnings[0].startswith("1 of 3 helical tubes have segments in both alignments3D")
    a, b, _ = split_halves(ps, seed=0, use_random_subset=False)
    assert not set(ps.patch_groups[a].tolist()) & set(ps.patch_groups[b].tolist())
