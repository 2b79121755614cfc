"""Our projections of an atomic model against ``relion_project`` of the same atoms' map."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cryosplat.cli.main import main
from cryosplat.core.conventions import euler_relion_to_matrix
from cryosplat.core.ctf import CTFParams
from cryosplat.io.mrc import MRCStack, write_map
from cryosplat.io.star import write_relion31_particles
from cryosplat.model.atoms import model_from_atoms
from cryosplat.render.imaging import predict_images

DATA = Path(__file__).parents[1].parent / "shared" / "data"
MODEL = DATA / "models" / "8zpm.cif"
BOX, PIXEL, N_VIEWS = 96, 1.5, 24
EVEN_ZERNIKE = np.array([0.0, 30.0, 0.0, -20.0, 0.0, 0.0, 0.0, 16.0, 0.0])

pytestmark = pytest.mark.relion


@pytest.fixture(scope="module")
def projections(tmp_path_factory):
    if shutil.which("relion_project") is None:
        pytest.skip("relion_project not on PATH")
    if not MODEL.is_file():
        pytest.skip("shared data not present")
    folder = tmp_path_factory.mktemp("relion_project")
    model = model_from_atoms(MODEL, BOX, PIXEL, dtype=torch.float64)
    with torch.no_grad():
        write_map(folder / "map.mrc", model.voxelize(n_sigma=4.0).numpy(), PIXEL)
    rng = np.random.default_rng(0)
    rot = euler_relion_to_matrix(
        rng.uniform(-180, 180, N_VIEWS),
        np.degrees(np.arccos(rng.uniform(-1, 1, N_VIEWS))),
        rng.uniform(-180, 180, N_VIEWS),
    )
    shifts = rng.uniform(-5, 5, (N_VIEWS, 2))
    defocus = {
        "defocus_u_angstrom": rng.uniform(8000, 20000, N_VIEWS),
        "defocus_v_angstrom": rng.uniform(8000, 20000, N_VIEWS),
        "defocus_angle_degrees": rng.uniform(0, 180, N_VIEWS),
    }
    # A phase plate on another microscope: every CTF term RELION reads from the optics table and
    # the particle rows (rlnVoltage, rlnSphericalAberration, rlnAmplitudeContrast, rlnPhaseShift).
    phase_plate = {
        "defocus_u_angstrom": rng.uniform(3000, 8000, N_VIEWS),
        "defocus_v_angstrom": rng.uniform(3000, 8000, N_VIEWS),
        "defocus_angle_degrees": rng.uniform(0, 180, N_VIEWS),
        "phase_shift_degrees": rng.uniform(20, 120, N_VIEWS),
        "voltage_kv": 200.0,
        "cs_mm": 1.4,
        "amplitude_contrast": 0.07,
    }
    no_phase_shift = {**phase_plate, "phase_shift_degrees": 0.0}
    for name, values in (
        ("in.star", defocus),
        ("in_phase_plate.star", phase_plate),
        ("in_no_phase_shift.star", no_phase_shift),
        ("in_even.star", defocus),
    ):
        ctf = CTFParams.create(N_VIEWS, **values)
        if name == "in_even.star":
            # Symmetric aberrations in data_optics (rlnEvenZernike): 2-fold astigmatism of
            # second and fourth order, 2-5 rad at Nyquist.
            ctf = replace(ctf, even_zernike=np.tile(EVEN_ZERNIKE, (N_VIEWS, 1)))
        write_relion31_particles(
            folder / name,
            image_names=None,
            rotations=rot,
            shifts_angstrom=shifts,
            ctf=ctf,
            pixel_size_angstrom=PIXEL,
            box=BOX,
        )
    out = {}
    for tag, star, flags in (
        ("plain", "in.star", []),
        ("ctf", "in.star", ["--ctf"]),
        ("phase_plate", "in_phase_plate.star", ["--ctf"]),
        ("even", "in_even.star", ["--ctf"]),
    ):
        subprocess.run(
            ["relion_project", "--i", "map.mrc", "--ang", star, "--o", f"relion_{tag}"] + flags,
            cwd=folder,
            check=True,
            capture_output=True,
        )
        assert (
            main(
                [
                    "project",
                    str(MODEL),
                    "--angles",
                    str(folder / star),
                    "-o",
                    str(folder / f"ours_{tag}.mrcs"),
                ]
                + (["--apply-ctf"] if flags else [])
            )
            == 0
        )
        ours = MRCStack(folder / f"ours_{tag}.mrcs").read(np.arange(N_VIEWS))
        theirs = MRCStack(folder / f"relion_{tag}.mrcs").read(np.arange(N_VIEWS))
        out[tag] = (ours, theirs)
    # The phase plate's images as a reader that dropped rlnPhaseShift would make them.
    assert (
        main(
            [
                "project",
                str(MODEL),
                "--angles",
                str(folder / "in_no_phase_shift.star"),
                "-o",
                str(folder / "ours_no_phase_shift.mrcs"),
                "--apply-ctf",
            ]
        )
        == 0
    )
    out["no_phase_shift"] = MRCStack(folder / "ours_no_phase_shift.mrcs").read(np.arange(N_VIEWS))
    # The map relion_project read, projected by ours (Fourier slices, as simulate projects maps).
    for tag, flags in (("map_plain", []), ("map_ctf", ["--apply-ctf"])):
        stack = folder / f"ours_{tag}.mrcs"
        args = ["project", str(folder / "map.mrc"), "--angles", str(folder / "in.star")]
        assert main(args + ["-o", str(stack)] + flags) == 0
        out[tag] = MRCStack(stack).read(np.arange(N_VIEWS))
    out["model"], out["rotations"], out["shifts"] = model, rot, shifts
    return out


def _correlations(a, b):
    return np.array([np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b, strict=True)])


@pytest.mark.parametrize("tag", ["plain", "ctf", "phase_plate", "even"])
def test_per_image_correlation_with_relion_project(projections, tag):
    ours, theirs = projections[tag]
    cc = _correlations(ours, theirs)
    assert cc.min() >= 0.95, cc
    # relion_project sums voxels; our images are line integrals per Å² (× pixel).
    scale = (ours * theirs).sum() / (theirs * theirs).sum()
    assert abs(scale - PIXEL) < 0.05 * PIXEL


@pytest.mark.parametrize(("tag", "theirs"), [("map_plain", "plain"), ("map_ctf", "ctf")])
def test_a_map_projected_as_relion_project_projects_it(projections, tag, theirs):
    """``cryosplat project map.mrc`` against ``relion_project`` of the same map and angles."""
    ours, relion = projections[tag], projections[theirs][1]
    cc = _correlations(ours, relion)
    assert cc.min() >= 0.99, cc
    scale = (ours * relion).sum() / (relion * relion).sum()
    assert abs(scale - PIXEL) < 0.02 * PIXEL


def test_wrong_conventions_would_be_caught(projections):
    """The opposite shift sign or the transposed rotation would fail the comparison."""
    n = 8
    theirs = projections["plain"][1][:n]
    model = projections["model"].float()
    rot, shifts = projections["rotations"][:n], projections["shifts"][:n]
    with torch.no_grad():
        wrong_sign = predict_images(model, rot, -shifts).numpy()
        wrong_matrix = predict_images(model, rot.transpose(0, 2, 1), shifts).numpy()
    assert _correlations(wrong_sign, theirs).mean() < 0.9
    assert _correlations(wrong_matrix, theirs).mean() < 0.9
    # The phase plate's phase shift left out (20-120°; measured 0.36-0.59 against 0.998 with it).
    phase_plate = projections["phase_plate"][1]
    assert _correlations(projections["no_phase_shift"], phase_plate).mean() < 0.8
    # The symmetric aberrations left out (the same views and defocus without rlnEvenZernike).
    even = projections["even"][1]
    # Measured 0.76-0.89 without them, 0.992-0.996 with them.
    assert _correlations(projections["ctf"][0], even).mean() < 0.9
    assert _correlations(projections["even"][0], even).min() > 0.99


def test_relion_projector_error_matches_the_fourier_backend(projections, capsys):
    """RELION's projector (padding 2, trilinear) and the ``fourier`` backend, against the exact splat.

    Both project the voxelised model (RELION the map written from it), so both errors hold the
    same voxelisation error and their interpolation errors: the README's claim that the fourier
    backend is about as accurate as RELION's projector is this measurement.
    """
    ours, theirs = projections["plain"]
    model = projections["model"]
    with torch.no_grad():
        fourier = predict_images(
            model, projections["rotations"], projections["shifts"], backend="fourier"
        ).numpy()

    def relative(a):
        return float(np.linalg.norm(a - ours) / np.linalg.norm(ours))

    relion_error, fourier_error = relative(theirs * PIXEL), relative(fourier)
    with capsys.disabled():
        print(
            f"\nrelative L2 vs exact splat: relion_project {relion_error:.3f}, "
            f"fourier {fourier_error:.3f}"
        )
    assert relion_error < 0.5 and fourier_error < 0.5
    assert 0.5 < fourier_error / relion_error < 2.0
