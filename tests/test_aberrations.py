"""Optical aberrations in a RELION file: Zernike terms and beam tilt read into per-particle
coefficients (odd ones taken out of the images, even ones added to the CTF), the others named in a
warning."""

from __future__ import annotations

import numpy as np
import pytest

from cryosplat.core.aberrations import insert_beam_tilt
from cryosplat.core.ctf import electron_wavelength_angstrom
from cryosplat.core.errors import InputError
from cryosplat.io.mrc import write_stack
from cryosplat.particles.relion import particles_from_star
from cryosplat.particles.summary import summarize

OPTICS = (
    "data_optics\nloop_\n_rlnOpticsGroup\n_rlnImagePixelSize\n_rlnImageSize\n_rlnVoltage\n"
    "_rlnSphericalAberration\n_rlnAmplitudeContrast\n"
)
PARTICLES = (
    "data_particles\nloop_\n_rlnOpticsGroup\n_rlnDefocusU\n_rlnAngleRot\n_rlnAngleTilt\n"
    "_rlnAnglePsi\n"
)


def _read(tmp_path, optics_columns: dict, particle_columns: dict | None = None):
    particle_columns = particle_columns or {}
    head = OPTICS + "".join(f"_{c}\n" for c in optics_columns)
    row = "1 1.5 16 300 2.7 0.1 " + " ".join(optics_columns.values())
    body = PARTICLES + "".join(f"_{c}\n" for c in particle_columns)
    rows = "".join(
        f"1 10000 0 {tilt} 0 " + " ".join(particle_columns.values()) + "\n" for tilt in (0, 90)
    )
    path = tmp_path / "p.star"
    path.write_text(head + row + "\n\n" + body + rows)
    return particles_from_star(path, require_images=False)


def test_no_warning_and_no_correction_for_trivial_values(tmp_path):
    ps = _read(
        tmp_path,
        {
            "rlnBeamTiltX": "0",
            "rlnBeamTiltY": "0.0",
            "rlnOddZernike": "[0,0,0,0,0,0]",
            "rlnMagMat00": "1",
            "rlnMagMat01": "0",
            "rlnMagMat10": "0",
            "rlnMagMat11": "1",
        },
    )
    assert ps.warnings == []
    assert ps.odd_zernike is None and ps.mag_matrices is None
    assert not any("aberrations" in n for n in ps.notes)


def test_optics_aberrations_are_read(tmp_path):
    ps = _read(
        tmp_path,
        {
            "rlnBeamTiltX": "0.2",
            "rlnBeamTiltY": "0",
            "rlnOddZernike": "[0.1,-0.3,0,0,0,0]",
            "rlnEvenZernike": "[0,0,0,0,0]",
            "rlnMagMat00": "1.01",
            "rlnMagMat01": "0",
            "rlnMagMat10": "0",
            "rlnMagMat11": "0.99",
        },
    )
    assert ps.warnings == []
    np.testing.assert_allclose(ps.mag_matrices, [[[1.01, 0], [0, 0.99]]] * 2)
    listed = summarize(ps).optics[0].aberrations  # what `cryosplat info` prints for the group
    assert listed.startswith("odd Zernike [") and "magnification [1.01, 0, 0, 0.99]" in listed
    assert ps.ctf.even_zernike is None  # all zero
    expected = insert_beam_tilt([0.1, -0.3], 0.2, 0.0, 2.7, electron_wavelength_angstrom(300.0))
    assert ps.odd_zernike.shape == (2, 6)
    np.testing.assert_allclose(ps.odd_zernike, np.tile(expected, (2, 1)))
    assert any("taken out of their images as relion_reconstruct does" in n for n in ps.notes)


def test_even_zernike_joins_the_ctf(tmp_path):
    ps = _read(tmp_path, {"rlnEvenZernike": "[0,0.5,0,0,0]"})
    assert ps.warnings == []
    assert ps.odd_zernike is None
    np.testing.assert_allclose(ps.ctf.even_zernike, [[0, 0.5, 0, 0, 0]] * 2)
    np.testing.assert_allclose(ps.subset([1]).ctf.even_zernike, [[0, 0.5, 0, 0, 0]])
    assert any("added to their CTF as RELION does" in n for n in ps.notes)


def test_per_particle_beam_tilt_is_read_from_a_relion_30_file(tmp_path):
    path = tmp_path / "p30.star"
    path.write_text(
        "data_\nloop_\n_rlnImageName\n_rlnImagePixelSize\n_rlnVoltage\n_rlnSphericalAberration\n"
        "_rlnAmplitudeContrast\n_rlnDefocusU\n_rlnAngleRot\n_rlnAngleTilt\n_rlnAnglePsi\n"
        "_rlnBeamTiltX\n_rlnBeamTiltY\n"
        "1@s.mrcs 1.5 300 2.7 0.1 10000 0 0 0 0.5 -0.1\n"
        "2@s.mrcs 1.5 300 2.7 0.1 10000 0 90 0 0 0\n"
    )
    write_stack(tmp_path / "s.mrcs", np.zeros((2, 16, 16), dtype=np.float32), 1.5)
    ps = particles_from_star(path)
    assert ps.warnings == []
    expected = insert_beam_tilt([], 0.5, -0.1, 2.7, electron_wavelength_angstrom(300.0))
    np.testing.assert_allclose(ps.odd_zernike, [expected, np.zeros(6)])
    np.testing.assert_allclose(ps.subset([0]).odd_zernike, expected[None])


def test_per_particle_beam_tilt_in_a_relion_31_file_is_named(tmp_path):
    """RELION 3.1 reads the tilt from data_optics only; one per particle is named, not used."""
    ps = _read(tmp_path, {}, {"rlnBeamTiltX": "0.5", "rlnBeamTiltY": "-0.1"})
    assert ps.odd_zernike is None
    assert len(ps.warnings) == 1
    assert (
        "data_particles: optical aberration column(s) rlnBeamTiltX, rlnBeamTiltY" in ps.warnings[0]
    )


def test_odd_zernike_alone_is_read(tmp_path):
    ps = _read(tmp_path, {"rlnOddZernike": "[0,0,2.5]"})
    np.testing.assert_allclose(ps.odd_zernike, [[0, 0, 2.5], [0, 0, 2.5]])


@pytest.mark.parametrize("value", ["[0.1,nan]", "[0.1,abc]"])
def test_unreadable_coefficients_are_refused(tmp_path, value):
    with pytest.raises(InputError, match="rlnOddZernike, row 1"):
        _read(tmp_path, {"rlnOddZernike": value})


def test_even_zernike_round_trips_through_a_written_star(tmp_path):
    from dataclasses import replace

    from cryosplat.core.ctf import CTFParams
    from cryosplat.io.star import write_relion31_particles

    ctf = CTFParams.create(3, defocus_u_angstrom=1e4, defocus_v_angstrom=1.1e4)
    even = np.array([[0, 1.5, 0, -2.0], [0, 0, 0, 0], [0, 1.5, 0, -2.0]])
    write_relion31_particles(
        tmp_path / "w.star",
        image_names=None,
        rotations=np.tile(np.eye(3), (3, 1, 1)),
        ctf=replace(ctf, even_zernike=even),
        pixel_size_angstrom=1.0,
        box=16,
    )
    back = particles_from_star(tmp_path / "w.star", require_images=False)
    np.testing.assert_allclose(back.ctf.even_zernike, even)
    assert len(back.optics) == 2


def test_ctf_params_check_and_join_their_even_zernike():
    from cryosplat.core.ctf import CTFParams

    ctf = CTFParams.create(2, defocus_u_angstrom=1e4, defocus_v_angstrom=1e4)
    with pytest.raises(ValueError, match="even_zernike has shape"):
        CTFParams(**{f: getattr(ctf, f) for f in CTFParams.FIELDS}, even_zernike=np.zeros(2))
    with pytest.raises(ValueError, match="even_zernike is not finite at row 1"):
        CTFParams(
            **{f: getattr(ctf, f) for f in CTFParams.FIELDS},
            even_zernike=np.array([[0, 1.0], [np.nan, 0]]),
        )
    with_even = CTFParams(
        **{f: getattr(ctf, f) for f in CTFParams.FIELDS}, even_zernike=np.array([[0, 1.0], [0, 2]])
    )
    joined = CTFParams.concatenate([ctf, with_even])
    np.testing.assert_allclose(joined.even_zernike, [[0, 0], [0, 0], [0, 1], [0, 2]])
    assert CTFParams.concatenate([ctf, ctf]).even_zernike is None


def test_per_particle_magnification_is_named(tmp_path):
    columns = {"rlnMagMat00": "1.02", "rlnMagMat11": "0.98"}
    ps = _read(tmp_path, {}, columns)
    assert len(ps.warnings) == 1
    assert "data_particles: optical aberration column(s) rlnMagMat00, rlnMagMat11" in ps.warnings[0]
    assert ps.mag_matrices is None


def test_an_implausible_magnification_matrix_is_refused(tmp_path):
    with pytest.raises(InputError, match="determinant 1.5"):
        _read(tmp_path, {"rlnMagMat00": "1.5"})
