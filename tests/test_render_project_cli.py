"""``cryosplat project``: one image per STAR row, the library's images, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.cli.main import main
from cryosplat.core.ctf import CTFParams, ctf_from_params
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import MRCStack
from cryosplat.io.star import write_relion31_particles
from cryosplat.model.gaussians import GaussianModel
from cryosplat.render.imaging import predict_images

BOX, PIXEL = 24, 2.0


@pytest.fixture()
def inputs(tmp_path):
    model = GaussianModel.random(30, BOX, PIXEL, seed=1, radius_fraction=0.2)
    model.save(tmp_path / "model.npz")
    rng = np.random.default_rng(2)
    n = 5
    rot = random_rotations(n, seed=3)
    shifts = rng.uniform(-4, 4, (n, 2))
    ctf = CTFParams.create(
        n,
        defocus_u_angstrom=rng.uniform(8000, 15000, n),
        defocus_v_angstrom=rng.uniform(8000, 15000, n),
        defocus_angle_degrees=rng.uniform(0, 180, n),
    )
    write_relion31_particles(
        tmp_path / "in.star",
        image_names=None,
        rotations=rot,
        shifts_angstrom=shifts,
        ctf=ctf,
        pixel_size_angstrom=PIXEL,
        box=BOX,
    )
    return tmp_path, model, rot, shifts, ctf


@pytest.mark.parametrize("use_ctf", [False, True])
def test_project_writes_the_library_images(inputs, use_ctf):
    folder, model, rot, shifts, ctf = inputs
    out = folder / "out.mrcs"
    argv = [
        "project",
        str(folder / "model.npz"),
        "--angles",
        str(folder / "in.star"),
        "-o",
        str(out),
        "--batch-size",
        "2",
    ] + (["--apply-ctf"] if use_ctf else [])
    assert main(argv) == 0
    stack = MRCStack(out)
    assert stack.n_images == 5 and stack.box == BOX
    assert abs(stack.pixel_size_angstrom - PIXEL) < 1e-4
    got = stack.read(np.arange(5))
    with torch.no_grad():
        # The STAR stores angles with 6 decimals, shifts too: tolerate that rounding.
        expected = predict_images(
            model, rot, shifts, ctf_from_params(ctf, BOX, PIXEL) if use_ctf else None
        ).numpy()
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() < 1e-3 * scale


def test_project_errors_are_one_line(inputs, capsys):
    folder, *_ = inputs
    assert (
        main(
            [
                "project",
                str(folder / "nope.npz"),
                "--angles",
                str(folder / "in.star"),
                "-o",
                str(folder / "o.mrcs"),
            ]
        )
        == 2
    )
    assert "not found" in capsys.readouterr().err
    assert (
        main(
            [
                "project",
                str(folder / "model.npz"),
                "--angles",
                str(folder / "in.star"),
                "-o",
                str(folder / "o.mrcs"),
                "--batch-size",
                "0",
            ]
        )
        == 2
    )
    assert "--batch-size" in capsys.readouterr().err


def test_project_fourier_backend_streams_close_images_at_even_and_odd_boxes(inputs):
    folder, model, rot, shifts, ctf = inputs
    out = folder / "fourier.mrcs"
    base = ["project", str(folder / "model.npz"), "--angles", str(folder / "in.star")]
    assert main(base + ["-o", str(out), "--backend", "fourier", "--batch-size", "2"]) == 0
    got = MRCStack(out).read(np.arange(5))
    with torch.no_grad():
        expected = predict_images(model, rot, shifts, None).numpy()
    # The Fourier backend's stated accuracy: a few per cent (relative L2) of the exact splat.
    assert np.linalg.norm(got - expected) < 0.08 * np.linalg.norm(expected)
    odd = folder / "odd.mrcs"
    assert main(base + ["-o", str(odd), "--backend", "fourier", "--box", "25"]) == 0
    exact = folder / "odd_exact.mrcs"
    assert main(base + ["-o", str(exact), "--backend", "reference", "--box", "25"]) == 0
    got, expected = (MRCStack(f).read(np.arange(5)) for f in (odd, exact))
    assert got.shape == (5, 25, 25)
    assert np.linalg.norm(got - expected) < 0.08 * np.linalg.norm(expected)


def test_project_a_map_by_fourier_slices(inputs, capsys):
    """A map (the model voxelised) projects to the model's images, with and without the CTF;
    a map of another box than the images' is refused in one line."""
    from cryosplat.io.mrc import write_map

    folder, model, rot, shifts, ctf = inputs
    with torch.no_grad():
        write_map(folder / "map.mrc", model.voxelize(n_sigma=4.0).numpy(), PIXEL)
        write_map(folder / "small.mrc", model.voxelize(box=20).numpy(), PIXEL)
    base = ["project", str(folder / "map.mrc"), "--angles", str(folder / "in.star")]
    for flags in ([], ["--apply-ctf"]):
        out = folder / f"map{len(flags)}.mrcs"
        assert main(base + ["-o", str(out), "--batch-size", "2"] + flags) == 0
        assert f"projections of the map map.mrc ({BOX}² px" in capsys.readouterr().out
        got = MRCStack(out).read(np.arange(5))
        with torch.no_grad():
            transfer = ctf_from_params(ctf, BOX, PIXEL) if flags else None
            expected = predict_images(model, rot, shifts, transfer).numpy()
        assert np.linalg.norm(got - expected) < 0.08 * np.linalg.norm(expected)
    small = ["project", str(folder / "small.mrc"), "--angles", str(folder / "in.star")]
    assert main(small + ["-o", str(folder / "s.mrcs")]) == 2
    assert "the map's box is 20, the images' 24" in capsys.readouterr().err
    assert main(base + ["-o", str(folder / "b.mrcs"), "--backend", "fast"]) == 2
    assert "do not apply to it" in capsys.readouterr().err


def test_project_interrupted_leaves_no_partial_stack(inputs, monkeypatch):
    from cryosplat.simulate import project as particle_stack
    from cryosplat.simulate import projection  # the projector project renders with

    folder, *_ = inputs
    real = projection.predict_images
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(projection, "predict_images", failing)
    config = particle_stack.ProjectionConfig(
        model_path=folder / "model.npz",
        angles_path=folder / "in.star",
        output_path=folder / "cut.mrcs",
        batch_size=2,
    )
    with pytest.raises(KeyboardInterrupt):
        particle_stack.project_particles(config)
    assert len(calls) == 2
    assert not (folder / "cut.mrcs").exists() and not list(folder.glob(".cut*"))
