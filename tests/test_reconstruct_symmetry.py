"""``reconstruct --sym``: symmetric statistics, asymmetric-unit models, records and exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import simulate_tiny

from cryosplat.cli.main import main
from cryosplat.core.symmetry import rotate_volume, symmetry_operators
from cryosplat.io.mrc import read_map
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate

BOX, PIXEL = 24, 4.0


@pytest.fixture(scope="module")
def d2_set(tmp_path_factory) -> Path:
    """120 particles of a D2 molecule (4 × 12 Gaussians), box 24, 4 Å/px, SNR 1."""
    d = tmp_path_factory.mktemp("d2")
    unit = GaussianModel.random(
        12, BOX, PIXEL, seed=5, radius_fraction=0.2, scale_angstrom=5.0, symmetry="D2"
    )
    return simulate_tiny(d, unit.expanded())


def _self_correlation(volume: np.ndarray, op) -> float:
    v = torch.from_numpy(volume.astype(np.float64))
    a = v[1:, 1:, 1:].reshape(-1)
    b = rotate_volume(v, op)[1:, 1:, 1:].reshape(-1)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.mark.parametrize("name", ["D2", "C4"])
def test_grid_symmetrisation_equals_pose_expansion(d2_set, name):
    """Rotating the gathered grids (axis-permuting groups) = inserting every image |G| times."""
    particles = read_particles(d2_set)
    rows = np.arange(20)
    ops = symmetry_operators(name)
    config = AccumulateConfig()
    by_grid = accumulate(particles, rows, config, operators=ops)
    # A perturbation below any effect on the insertion, but not a signed permutation any more:
    # this takes the pose-expansion path.
    by_poses = accumulate(particles, rows, config, operators=ops + 1e-8)
    c1 = accumulate(particles, rows, config)
    for a, b in ((by_grid.weights, by_poses.weights), (by_grid.data, by_poses.data)):
        assert float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())
    assert by_grid.data_power == pytest.approx(len(ops) * c1.data_power)
    assert by_grid.n_particles == c1.n_particles == 20


def test_reconstruct_sym_d2_grid_engine(d2_set, tmp_path, capsys):
    out = tmp_path / "run"
    args = [str(d2_set), "-o", str(out), "--n-gaussians", "48", "--sym", "d2", "--no-progress"]
    assert main(["reconstruct", *args, "--keep-checkpoints"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["symmetry"] == "D2" and config["config"]["symmetry"] == "D2"
    assert json.loads((out / "fsc.json").read_text())["symmetry"] == "D2"
    log = (out / "log.txt").read_text()
    assert "symmetry D2" in log and "12 per asymmetric unit × 4 copies" in log
    summary = json.loads((out / "run.json").read_text())
    assert summary["status"] == "complete"
    # the checkpoints hold one asymmetric unit, the export the full molecule
    stage = sorted((out / "checkpoints").glob("grid_stage*_A.npz"))[-1]
    unit = GaussianModel.load(stage)
    assert unit.symmetry == "D2" and len(unit) == 12
    full = GaussianModel.load(out / "model_A.npz")
    assert full.symmetry == "C1" and len(full) == 48
    with np.load(out / "model_A.npz") as z:
        assert "symmetry" not in z.files
    cif = (out / "model_A.cif").read_text()
    assert cif.count("HETATM") + cif.count("ATOM ") >= 48
    vol, _ = read_map(out / "map.mrc")
    scores = [_self_correlation(vol, op) for op in symmetry_operators("D2")[1:]]
    assert min(scores) >= 0.99, scores
    # the cross-validation compares with symmetrised data half maps: a finite resolution
    fsc = json.loads((out / "fsc.json").read_text())
    assert 2 * PIXEL <= fsc["resolution_angstrom"] < 40


def test_reconstruct_sym_splat_engine(d2_set, tmp_path):
    out = tmp_path / "splat"
    args = [str(d2_set), "-o", str(out), "--engine", "splat", "--epochs", "1"]
    args += ["--n-gaussians", "40", "--sym", "C2", "--no-progress"]
    assert main(["reconstruct", *args]) == 0
    assert len(GaussianModel.load(out / "model_B.npz")) == 40
    vol, _ = read_map(out / "half_map_A.mrc")
    assert _self_correlation(vol, symmetry_operators("C2")[1]) >= 0.99


def test_bad_symmetry_is_one_line_error(d2_set, tmp_path, capsys):
    assert main(["reconstruct", str(d2_set), "-o", str(tmp_path / "x"), "--sym", "Q7"]) == 2
    err = capsys.readouterr().err
    assert "Q7" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
