"""Particles of an odd box: used Fourier-cropped to the even box below, the maps written back at
the images' own box and pixel (:mod:`cryosplat.reconstruct.written_grid`), on RELION's
FFT-aligned centre (voxel D//2), and read back where a command reads a run's half maps."""

from __future__ import annotations

import json

import gemmi
import mrcfile
import numpy as np
import pytest
import torch
from conftest import simulate_tiny

from cryosplat.cli.main import main
from cryosplat.core.conventions import cropped_map_origin_angstrom, file_origin_angstrom
from cryosplat.core.errors import InputError
from cryosplat.core.fourier import fourier_crop_volume, fourier_pad_volume
from cryosplat.io.mrc import read_map
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.written_grid import WrittenGrid, map_at_box, source_box_to_write
from cryosplat.validation.fsc import fsc

BOX, PIXEL = 25, 4.0


def test_the_origin_moves_by_half_a_source_pixel_for_an_odd_box_only():
    assert cropped_map_origin_angstrom(56, 4.23, 28, 8.46) == 0.0  # even to even: none
    assert cropped_map_origin_angstrom(128, 1.1, 96, 1.1 * 128 / 96) == 0.0
    assert cropped_map_origin_angstrom(25, 4.0, 24, 4.0 * 25 / 24) == pytest.approx(-2.0)
    assert cropped_map_origin_angstrom(101, 1.0, 100, 1.01) == pytest.approx(-0.5)


def test_maps_go_back_to_an_odd_box_only_from_the_even_box_just_below():
    assert source_box_to_write(25, 24) == 25
    assert source_box_to_write(25, 16) is None  # a crop asked for: the maps stay at 16
    assert source_box_to_write(24, 24) is None and source_box_to_write(64, 48) is None
    with pytest.raises(ValueError, match="odd box just above"):
        WrittenGrid(24, 1.0, 0.0, source_box=27)


def test_a_map_written_back_reads_back_as_it_was_less_its_nyquist_planes(tmp_path):
    rng = np.random.default_rng(2)
    volume = rng.standard_normal((24, 24, 24)).astype(np.float32)
    grid = WrittenGrid(24, PIXEL * BOX / 24, -2.0, source_box=BOX)
    grid.write(tmp_path / "m.mrc", volume)
    written, voxel = read_map(tmp_path / "m.mrc")
    assert written.shape == (BOX,) * 3 and voxel == pytest.approx(PIXEL)
    with mrcfile.open(tmp_path / "m.mrc") as m:
        assert tuple(m.header.origin.tolist()) == (0.0, 0.0, 0.0)
    expected = fourier_crop_volume(
        fourier_pad_volume(torch.as_tensor(volume, dtype=torch.float64), 26, drop_nyquist=True), 24
    ).numpy()
    np.testing.assert_allclose(map_at_box(written, 24, tmp_path / "m.mrc"), expected, atol=1e-5)
    # a mask stays within its range where the interpolation steps
    mask = np.zeros((24, 24, 24), dtype=np.float32)
    mask[6:18, 6:18, 6:18] = 1.0
    padded = grid.on_written_grid(mask, bounded=True)
    assert padded.min() >= 0.0 and padded.max() <= 1.0
    with pytest.raises(InputError, match="the run's 24"):
        map_at_box(np.zeros((27, 27, 27), dtype=np.float32), 24, tmp_path / "x.mrc")


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    truth = GaussianModel.random(40, BOX, PIXEL, seed=5, radius_fraction=0.2, scale_angstrom=5.0)
    star = simulate_tiny(folder, truth, box=BOX, n_particles=400, snr=10.0)
    out = folder / "run"
    args = ["--n-gaussians", "80", "--stage-fractions", "0.5,1.0", "--stage-steps", "30,30"]
    assert main(["reconstruct", str(star), "-o", str(out), "--no-progress", *args]) == 0
    return truth, star, out


def _centre_of_mass(volume: np.ndarray, voxel: float, origin: float) -> np.ndarray:
    """Centre of mass (x, y, z) in the file frame (Å)."""
    index = np.indices(volume.shape).reshape(3, -1)
    weights = volume.reshape(-1)
    return (index @ weights / weights.sum())[::-1] * voxel + origin


def test_an_odd_box_is_reconstructed_below_and_written_at_its_own_box(odd_run, capsys):
    truth, star, out = odd_run
    assert main(["info", str(star)]) == 0
    shown = "box:          25 px (odd: reconstruct uses them Fourier-cropped to 24 and writes its"
    assert shown in capsys.readouterr().out
    truth_map, truth_voxel = read_map(star.parent / "truth.mrc")  # simulate's, at box 25
    for name in ("map.mrc", "half_map_A.mrc", "half_map_B.mrc", "mask.mrc", "local_weight.mrc"):
        volume, voxel = read_map(out / name)
        assert volume.shape == (BOX,) * 3 and voxel == pytest.approx(PIXEL), name
        with mrcfile.open(out / name) as m:
            assert tuple(m.header.origin.tolist()) == (0.0, 0.0, 0.0), name
    volume, _ = read_map(out / "map.mrc")
    curve = fsc(volume, truth_map)  # voxel by voxel against the box-25 truth
    assert curve[1:6].min() > 0.9, curve
    # placed as the truth (half a pixel off would be 2 Å)
    np.testing.assert_allclose(
        _centre_of_mass(volume, PIXEL, 0.0), _centre_of_mass(truth_map, truth_voxel, 0.0), atol=0.5
    )
    # exactly so for the truth itself, voxelised on the working grid and written back
    on_grid = GaussianModel.load(star.parent.parent / "truth.npz")
    on_grid.box, on_grid.pixel_size_angstrom = BOX - 1, PIXEL * BOX / (BOX - 1)
    grid = WrittenGrid(BOX - 1, on_grid.pixel_size_angstrom, -PIXEL / 2, source_box=BOX)
    back = grid.on_written_grid(on_grid.voxelize().detach().numpy())
    np.testing.assert_allclose(
        _centre_of_mass(back, PIXEL, 0.0), _centre_of_mass(truth_map, truth_voxel, 0.0), atol=0.05
    )
    assert fsc(back, truth_map)[1:10].min() > 0.999
    mask, _ = read_map(out / "mask.mrc")
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    local, _ = read_map(out / "local_resolution.mrc")
    assert local.shape == (BOX,) * 3 and np.isfinite(local).all()
    log = (out / "log.txt").read_text()
    assert "box 25 is odd and the engines work at even boxes: the maps are written back" in log
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_the_pseudo_atoms_lie_on_the_odd_box_with_the_maps(odd_run):
    truth, star, out = odd_run
    voxel = PIXEL * BOX / (BOX - 1)
    model = GaussianModel.load(out / "model_A.npz")  # the working grid's
    assert model.box == BOX - 1 and model.pixel_size_angstrom == pytest.approx(voxel)
    atoms = gemmi.read_structure(str(out / "model_A.cif"))
    positions = np.array([[c.atom.pos.x, c.atom.pos.y, c.atom.pos.z] for c in atoms[0].all()])
    shift = file_origin_angstrom(BOX - 1, voxel) - PIXEL / 2  # = file_origin_angstrom(25, 4.0)
    assert shift == pytest.approx(file_origin_angstrom(BOX, PIXEL))
    np.testing.assert_allclose(positions, model.state_arrays()["means_angstrom"] + shift, atol=1e-3)
    # their mass where the half map's is, in the file frame of the box-25 map
    amplitudes = model.state_arrays()["amplitudes"]
    half_a, _ = read_map(out / "half_map_A.mrc")
    atoms_com = (positions * amplitudes[:, None]).sum(0) / amplitudes.sum()
    np.testing.assert_allclose(atoms_com, _centre_of_mass(half_a, PIXEL, 0.0), atol=0.5)


def test_score_reads_the_half_maps_written_back(odd_run, tmp_path):
    truth, star, out = odd_run
    folder = tmp_path / "scores"
    assert main(["score", str(star), "--run", str(out), "-o", str(folder), "--no-progress"]) == 0
    rows = (folder / "particle_scores.csv").read_text().splitlines()
    assert len(rows) == 401  # a header and the 400 particles'
    # and against a map given at the particles' own odd box
    given = tmp_path / "given"
    args = ["score", str(star), "--map", str(out / "map.mrc"), "-o", str(given), "--no-progress"]
    assert main(args) == 0
    assert len((given / "particle_scores.csv").read_text().splitlines()) == 401
