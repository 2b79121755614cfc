"""Particles of an odd box: used Fourier-cropped to the even box below, the maps placed by their
header origin where a map at the odd box would lie (RELION's FFT-aligned centre, voxel D//2)."""

from __future__ import annotations

import json

import gemmi
import mrcfile
import numpy as np
import pytest
from conftest import simulate_tiny

from cryosplat.cli.main import main
from cryosplat.core.conventions import cropped_map_origin_angstrom, file_origin_angstrom
from cryosplat.io.mrc import read_map
from cryosplat.model.gaussians import GaussianModel
from cryosplat.validation.fsc import fsc

BOX, PIXEL = 25, 4.0


def test_the_origin_moves_by_half_a_source_pixel_for_an_odd_box_only():
    assert cropped_map_origin_angstrom(56, 4.23, 28, 8.46) == 0.0  # even to even: none
    assert cropped_map_origin_angstrom(128, 1.1, 96, 1.1 * 128 / 96) == 0.0
    assert cropped_map_origin_angstrom(25, 4.0, 24, 4.0 * 25 / 24) == pytest.approx(-2.0)
    assert cropped_map_origin_angstrom(101, 1.0, 100, 1.01) == pytest.approx(-0.5)


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    truth = GaussianModel.random(40, BOX, PIXEL, seed=5, radius_fraction=0.2, scale_angstrom=5.0)
    star = simulate_tiny(folder, truth, box=BOX, n_particles=400, snr=10.0)
    out = folder / "run"
    args = ["--n-gaussians", "80", "--stage-fractions", "0.5,1.0", "--stage-steps", "30,30"]
    assert main(["reconstruct", str(star), "-o", str(out), "--no-progress", *args]) == 0
    return truth, star.parent, out


def _centre_of_mass(volume: np.ndarray, voxel: float, origin: float) -> np.ndarray:
    """Centre of mass (x, y, z) in the file frame (Å)."""
    index = np.indices(volume.shape).reshape(3, -1)
    weights = volume.reshape(-1)
    return (index @ weights / weights.sum())[::-1] * voxel + origin


def test_an_odd_box_is_reconstructed_at_the_even_box_below(odd_run, capsys):
    truth, sim, out = odd_run
    assert main(["info", str(sim / "particles.star")]) == 0
    assert "box:          25 px (odd: reconstruct uses them Fourier-cropped to 24)" in (
        capsys.readouterr().out
    )
    volume, voxel = read_map(out / "map.mrc")
    assert volume.shape == (BOX - 1,) * 3 and voxel == pytest.approx(PIXEL * BOX / (BOX - 1))
    # The truth sampled on that grid about the same rotation centre (voxel D//2 of each).
    on_grid = GaussianModel.load(out / "model_A.npz")  # any model of the run's box and pixel
    truth.box, truth.pixel_size_angstrom = on_grid.box, on_grid.pixel_size_angstrom
    expected = truth.voxelize().detach().numpy()
    curve = fsc(volume, expected)
    assert curve[1:6].min() > 0.9, curve
    log = (out / "log.txt").read_text()
    assert "box 25 is odd" in log
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_the_maps_and_pseudo_atoms_lie_where_the_odd_box_puts_them(odd_run):
    truth, sim, out = odd_run
    voxel = PIXEL * BOX / (BOX - 1)
    for name in ("map.mrc", "half_map_A.mrc", "mask.mrc"):
        with mrcfile.open(out / name) as m:
            assert tuple(m.header.origin.tolist()) == pytest.approx((-PIXEL / 2,) * 3), name
    # The truth voxelised at the odd box (simulate's truth.mrc, origin 0) and on the cropped
    # grid with the header origin: the same centre of mass in the file frame.
    truth_map, truth_voxel = read_map(sim / "truth.mrc")
    odd_com = _centre_of_mass(truth_map, truth_voxel, 0.0)
    cropped = GaussianModel.load(sim.parent / "truth.npz")
    cropped.box, cropped.pixel_size_angstrom = BOX - 1, voxel
    cropped_com = _centre_of_mass(cropped.voxelize().detach().numpy(), voxel, -PIXEL / 2)
    np.testing.assert_allclose(cropped_com, odd_com, atol=0.05)  # without the origin: 2 Å off
    # The pseudo-atoms in the same frame as the maps.
    model = GaussianModel.load(out / "model_A.npz")
    atoms = gemmi.read_structure(str(out / "model_A.cif"))
    positions = np.array([[c.atom.pos.x, c.atom.pos.y, c.atom.pos.z] for c in atoms[0].all()])
    shift = file_origin_angstrom(BOX - 1, voxel) - PIXEL / 2
    np.testing.assert_allclose(positions, model.state_arrays()["means_angstrom"] + shift, atol=1e-3)
