"""ParticleSet: dispatch on file type, subsets, image reading order, the pixel-size notes."""

from __future__ import annotations

import numpy as np
import pytest

from cryosplat.core.ctf import CTFParams
from cryosplat.core.errors import InputError
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import write_stack
from cryosplat.io.star import write_relion31_particles
from cryosplat.particles.read import read_particles


def _two_stacks(tmp_path, header_pixel=2.0, meta_pixel=2.0):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 8, 8)), rng.normal(size=(4, 8, 8))
    write_stack(tmp_path / "a.mrcs", a, header_pixel)
    write_stack(tmp_path / "b.mrcs", b, header_pixel)
    names = ["2@a.mrcs", "4@b.mrcs", "1@a.mrcs", "1@b.mrcs"]
    p = tmp_path / "p.star"
    write_relion31_particles(
        p,
        image_names=names,
        rotations=random_rotations(4, 0),
        shifts_angstrom=np.zeros((4, 2)),
        ctf=CTFParams.create(4, defocus_u_angstrom=1e4, defocus_v_angstrom=1e4),
        pixel_size_angstrom=meta_pixel,
        box=8,
        random_subset=[1, 2, 1, 2],
    )
    return p, a.astype(np.float32), b.astype(np.float32)


def test_read_images_across_stacks(tmp_path):
    p, a, b = _two_stacks(tmp_path)
    ps = read_particles(p)
    assert len(ps.stacks) == 2 and ps.notes == []
    got = ps.read_images([3, 0, 1, 2])
    np.testing.assert_array_equal(got, np.stack([b[0], a[1], b[3], a[0]]))


def test_subset_keeps_rows_together(tmp_path):
    p, a, b = _two_stacks(tmp_path)
    ps = read_particles(p)
    sub = ps.subset(ps.random_subset == 2)
    assert len(sub) == 2 and sub.random_subset.tolist() == [2, 2]
    np.testing.assert_allclose(sub.rotations, ps.rotations[[1, 3]])
    np.testing.assert_array_equal(sub.read_images([0, 1]), np.stack([b[3], b[0]]))
    assert len(sub.ctf) == 2


def test_header_pixel_note_and_unset_headers(tmp_path):
    p, _, _ = _two_stacks(tmp_path, header_pixel=1.9, meta_pixel=2.0)
    ps = read_particles(p)
    assert ps.pixel_size_angstrom == 2.0
    assert len(ps.notes) == 1
    assert "says 1.9 Å but the metadata says 2 Å; using the metadata's 2 Å" in ps.notes[0]
    assert "and 1 other stacks" in ps.notes[0]
    for unset in (0.0, 1.0):
        p, _, _ = _two_stacks(tmp_path, header_pixel=unset, meta_pixel=2.0)
        assert read_particles(p).notes == []


def test_optics_groups_with_different_pixel_sizes(tmp_path):
    write_stack(tmp_path / "s.mrcs", np.zeros((3, 8, 8)), 0.0)
    star = tmp_path / "p.star"
    star.write_text(
        "data_optics\nloop_\n_rlnOpticsGroup\n_rlnOpticsGroupName\n_rlnImagePixelSize\n"
        "_rlnImageSize\n_rlnVoltage\n_rlnSphericalAberration\n_rlnAmplitudeContrast\n"
        "1 g1 1.5 8 300 2.7 0.1\n2 g2 1.6 8 200 2.0 0.07\n\n"
        "data_particles\nloop_\n_rlnImageName\n_rlnOpticsGroup\n_rlnDefocusU\n_rlnOriginXAngst\n"
        "_rlnOriginYAngst\n_rlnAngleRot\n_rlnAngleTilt\n_rlnAnglePsi\n"
        "1@s.mrcs 2 10000 0 0 0 0 0\n2@s.mrcs 2 10000 0 0 0 0 0\n3@s.mrcs 1 12000 1 1 0 0 0\n"
    )
    ps = read_particles(star)
    assert ps.pixel_size_angstrom == pytest.approx(1.6)
    assert ps.optics_group.tolist() == [1, 1, 0]
    np.testing.assert_allclose(ps.pixel_sizes_angstrom(), [1.6, 1.6, 1.5])
    assert ps.mixed_pixel_sizes
    np.testing.assert_allclose(ps.ctf.voltage_kv, [200, 200, 300])
    np.testing.assert_allclose(ps.ctf.defocus_v_angstrom, [10000, 10000, 12000])
    assert any(
        "optics groups differ (g1 1.5 Å, g2 1.6 Å); reconstructing at 1.6 Å" in n for n in ps.notes
    )


def test_unknown_suffix(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello")
    with pytest.raises(InputError, match="unknown particle file type"):
        read_particles(p)


def test_angpix_override_keeps_shifts_in_pixels(tmp_path):
    write_stack(tmp_path / "s.mrcs", np.zeros((3, 8, 8)), 0.0)
    star = tmp_path / "p.star"
    star.write_text(
        "data_optics\nloop_\n_rlnOpticsGroup\n_rlnOpticsGroupName\n_rlnImagePixelSize\n"
        "_rlnImageSize\n_rlnVoltage\n_rlnSphericalAberration\n_rlnAmplitudeContrast\n"
        "1 g1 1.5 8 300 2.7 0.1\n2 g2 2.0 8 300 2.7 0.1\n\n"
        "data_particles\nloop_\n_rlnImageName\n_rlnOpticsGroup\n_rlnDefocusU\n_rlnOriginXAngst\n"
        "_rlnOriginYAngst\n_rlnAngleRot\n_rlnAngleTilt\n_rlnAnglePsi\n"
        "1@s.mrcs 1 10000 3 0 0 0 0\n2@s.mrcs 2 10000 4 -2 0 0 0\n3@s.mrcs 2 12000 1 1 0 0 0\n"
    )
    ps = read_particles(star).with_pixel_size(1.0)
    assert ps.pixel_size_angstrom == 1.0 and not ps.mixed_pixel_sizes
    np.testing.assert_allclose(ps.shifts_angstrom, [[2.0, 0.0], [2.0, -1.0], [0.5, 0.5]])
    assert "1 Å from --angpix (the metadata said g1 1.5 Å, g2 2 Å)" in ps.notes[-1]
    with pytest.raises(InputError, match="--angpix must be positive"):
        ps.with_pixel_size(0.0)
