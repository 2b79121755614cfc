"""Optical aberration columns that cryosplat does not model are named in a warning."""

from __future__ import annotations

from cryosplat.particles.relion import particles_from_star

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


def test_no_warning_for_trivial_values(tmp_path):
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


def test_optics_aberrations_are_named(tmp_path):
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
    assert len(ps.warnings) == 1
    message = ps.warnings[0]
    assert message.startswith("data_optics: optical aberration column(s) rlnBeamTiltX, ")
    for name in ("rlnOddZernike", "rlnMagMat00", "rlnMagMat11"):
        assert name in message
    for name in ("rlnBeamTiltY", "rlnEvenZernike"):
        assert name not in message


def test_per_particle_beam_tilt_is_named(tmp_path):
    ps = _read(tmp_path, {}, {"rlnBeamTiltX": "0.5", "rlnBeamTiltY": "-0.1"})
    assert len(ps.warnings) == 1
    expected = "data_particles: optical aberration column(s) rlnBeamTiltX, rlnBeamTiltY"
    assert expected in ps.warnings[0]
