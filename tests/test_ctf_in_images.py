"""Images that already carry their CTF (RELION's rlnCtfDataArePhaseFlipped and
rlnCtfDataAreCtfPremultiplied): read, and modelled as |CTF| or CTF² times the projection."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cryosplat.cli.main import main
from cryosplat.core.ctf import (
    CTF_IN_IMAGES,
    ctf_from_params,
    image_transfer,
    raw_backprojection_factor,
)
from cryosplat.core.errors import InputError
from cryosplat.core.fourier import fft2_centered, ifft2_centered
from cryosplat.io.mrc import read_map, write_stack
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.gather import accumulate

FLAGS = {
    "phase_flipped": "rlnCtfDataArePhaseFlipped",
    "premultiplied": "rlnCtfDataAreCtfPremultiplied",
}


def test_transfer_times_backprojection_factor_is_ctf_squared():
    ctf = torch.linspace(-1.0, 1.0, 12, dtype=torch.float64).reshape(3, 4)
    codes = np.array([0, 1, 2])
    transfer = image_transfer(ctf, codes)
    factor = raw_backprojection_factor(ctf, codes)
    assert torch.equal(transfer[0], ctf[0]) and torch.equal(factor[0], ctf[0])
    assert torch.equal(transfer[1], ctf[1].abs()) and torch.equal(factor[1], ctf[1].abs())
    assert torch.equal(transfer[2], ctf[2] ** 2) and torch.equal(factor[2], torch.ones(4).double())
    # What the inversion sums, factor × image, is CTF² × the projection for every code.
    assert torch.allclose(factor * transfer, ctf * ctf)
    with pytest.raises(ValueError, match="codes must be 0 to 2"):
        image_transfer(ctf, np.array([0, 3, 1]))
    with pytest.raises(ValueError, match="codes must have shape"):
        image_transfer(ctf, np.array([0, 1]))
    assert CTF_IN_IMAGES[1] == "phase_flipped" and CTF_IN_IMAGES[2] == "premultiplied"


def _with_ctf_in_images(star: Path, folder: Path, kind: str, flag: bool = True) -> Path:
    """A copy of the set of ``star`` (one stack, RELION 3.1 optics) in ``folder`` whose images
    carry their CTF as ``kind`` says (the CTF's sign, or the CTF, applied in Fourier space), with
    RELION's flag in data_optics unless ``flag`` is False."""
    particles = read_particles(star)
    images = torch.from_numpy(particles.read_images(np.arange(len(particles)))).double()
    ctf = ctf_from_params(
        particles.ctf, particles.box, particles.pixel_size_angstrom, dtype=torch.float64
    )
    factor = torch.sign(ctf) if kind == "phase_flipped" else ctf
    carried = ifft2_centered(fft2_centered(images) * factor).real.float().numpy()
    folder.mkdir()
    (stack,) = {Path(s.path).name for s in particles.stacks}
    write_stack(folder / stack, carried, particles.pixel_size_angstrom)
    text = star.read_text()
    if flag:
        header = "_rlnImageDimensionality #8\n"
        row = "opticsGroup1 1 300.000000 2.700000 0.100000 4.000000 24 2\n"
        assert header in text and row in text, "the simulated optics table changed"
        text = text.replace(header, header + f"_{FLAGS[kind]} #9\n").replace(row, row[:-1] + " 1\n")
    (folder / "particles.star").write_text(text)
    return folder / "particles.star"


@pytest.mark.parametrize("kind", ["phase_flipped", "premultiplied"])
def test_statistics_of_images_with_their_ctf_equal_the_raw_images(tiny_set, tmp_path, kind):
    star = _with_ctf_in_images(tiny_set, tmp_path / kind, kind)
    particles = read_particles(star)
    code = CTF_IN_IMAGES.index(kind)
    assert particles.ctf_in_images is not None and (particles.ctf_in_images == code).all()
    assert any("CTF already in the images: 120" in note for note in particles.notes)
    # the images as gathered; their background levels, measured in corners whose noise the CTF
    # has reshaped, differ by that noise (background.py)
    raw = accumulate(read_particles(tiny_set), take_off_background=False)
    carried = accumulate(particles, take_off_background=False)
    assert torch.equal(carried.weights, raw.weights)  # CTF² for every code
    scale = float(raw.data.abs().max())
    assert float((carried.data - raw.data).abs().max()) < 1e-4 * scale


def test_a_premultiplied_set_gives_the_raw_set_map_and_not_without_its_flag(tiny_set, tmp_path):
    flagged = _with_ctf_in_images(tiny_set, tmp_path / "flagged", "premultiplied")
    unflagged = _with_ctf_in_images(tiny_set, tmp_path / "unflagged", "premultiplied", flag=False)
    maps = {}
    for name, star in (("raw", tiny_set), ("flagged", flagged), ("unflagged", unflagged)):
        out = tmp_path / f"run_{name}"
        args = [str(star), "-o", str(out), "--no-progress", "--deterministic"]
        assert main(["reconstruct", *args]) == 0
        maps[name] = read_map(out / "map.mrc")[0].ravel()
    same = np.corrcoef(maps["raw"], maps["flagged"])[0, 1]
    ignored = np.corrcoef(maps["raw"], maps["unflagged"])[0, 1]
    assert same > 0.999
    assert ignored < same - 0.01, (same, ignored)


def test_the_per_image_engine_predicts_with_the_transfer(tiny_set, tmp_path):
    from cryosplat.reconstruct.splat.image_batches import image_batch

    star = _with_ctf_in_images(tiny_set, tmp_path / "premultiplied", "premultiplied")
    rows = np.arange(5)
    raw_ctf = image_batch(read_particles(tiny_set), rows, "cpu", 1.0).ctf
    carried_ctf = image_batch(read_particles(star), rows, "cpu", 1.0).ctf
    assert torch.allclose(carried_ctf, raw_ctf * raw_ctf)


def _star_with(tiny_set: Path, folder: Path, optics_value: str | None, particle_columns: dict):
    shutil.copytree(tiny_set.parent, folder)
    text = (folder / "particles.star").read_text()
    if optics_value is not None:
        header = "_rlnImageDimensionality #8\n"
        row = "opticsGroup1 1 300.000000 2.700000 0.100000 4.000000 24 2\n"
        text = text.replace(header, header + "_rlnCtfDataAreCtfPremultiplied #9\n")
        text = text.replace(row, row[:-1] + f" {optics_value}\n")
    lines = text.splitlines()
    start = lines.index("data_particles")
    headers = [i for i, line in enumerate(lines) if i > start and line.startswith("_rln")]
    for offset, name in enumerate(particle_columns, start=1):
        lines.insert(headers[-1] + offset, f"_{name} #{len(headers) + offset}")
    rows = [
        i
        for i, line in enumerate(lines)
        if i > headers[-1] + len(particle_columns) and line.strip()
    ]
    for i in rows:
        lines[i] += "".join(f" {v}" for v in particle_columns.values())
    (folder / "particles.star").write_text("\n".join(lines) + "\n")
    return folder / "particles.star"


def test_the_reader_takes_either_table_and_refuses_contradictions(tiny_set, tmp_path):
    star = _star_with(tiny_set, tmp_path / "per_particle", None, {"rlnCtfDataArePhaseFlipped": 1})
    assert (read_particles(star).ctf_in_images == 1).all()
    star = _star_with(tiny_set, tmp_path / "raw", "0", {})
    assert read_particles(star).ctf_in_images is None
    star = _star_with(tiny_set, tmp_path / "both", "1", {"rlnCtfDataArePhaseFlipped": 1})
    with pytest.raises(InputError, match="both phase-flipped and CTF-premultiplied"):
        read_particles(star)
    star = _star_with(tiny_set, tmp_path / "two", "2", {})
    with pytest.raises(InputError, match="rlnCtfDataAreCtfPremultiplied: must be 0 or 1"):
        read_particles(star)


def test_relion_reads_the_premultiplied_flag_as_we_do(tiny_set, tmp_path, relion_available):
    """RELION's reconstructor gives a premultiplied set with its flag the raw set's map, and
    another map without the flag: the convention cryosplat follows."""
    import subprocess

    sets = {
        "raw": tiny_set,
        "flagged": _with_ctf_in_images(tiny_set, tmp_path / "flagged", "premultiplied"),
        "unflagged": _with_ctf_in_images(
            tiny_set, tmp_path / "unflagged", "premultiplied", flag=False
        ),
    }
    maps = {}
    for name, star in sets.items():
        out = tmp_path / f"relion_{name}.mrc"
        command = [
            "relion_reconstruct",
            "--i",
            star.name,
            "--o",
            str(out),
            "--ctf",
            "--angpix",
            "4",
        ]
        subprocess.run(command, cwd=star.parent, check=True, capture_output=True)
        maps[name] = read_map(out)[0].ravel()
    assert np.corrcoef(maps["raw"], maps["flagged"])[0, 1] > 0.9999
    assert np.corrcoef(maps["raw"], maps["unflagged"])[0, 1] < 0.9


def test_project_applies_the_transfer_a_flagged_star_asks_for(tiny_set, tmp_path):
    """``project --apply-ctf`` along a premultiplied STAR makes CTF × the raw STAR's images."""
    from cryosplat.io.mrc import MRCStack

    flagged = _with_ctf_in_images(tiny_set, tmp_path / "flagged", "premultiplied")
    truth = tiny_set.parent.parent / "truth.npz"
    stacks = {}
    for name, star in (("raw", tiny_set), ("flagged", flagged)):
        out = tmp_path / f"{name}.mrcs"
        assert (
            main(["project", str(truth), "--angles", str(star), "-o", str(out), "--apply-ctf"]) == 0
        )
        stacks[name] = torch.from_numpy(MRCStack(out).read(np.arange(8))).double()
    particles = read_particles(tiny_set)
    ctf = ctf_from_params(
        particles.ctf.subset(np.arange(8)), particles.box, 4.0, dtype=torch.float64
    )
    expected = ifft2_centered(fft2_centered(stacks["raw"]) * ctf).real
    scale = float(expected.abs().max())
    assert float((stacks["flagged"] - expected).abs().max()) < 1e-3 * scale
