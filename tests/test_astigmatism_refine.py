"""Each micrograph's astigmatism (``cryosplat refine-defocus``, where micrographs are named).

Physics invariants: moving the astigmatism's components moves the CTF exactly as a CTF made with
the moved values; images made with an astigmatism their STAR does not record are read back at
the one they were made with, a micrograph's particles together; recorded astigmatism that is
right stays; the STAR is written again with only the defocus values and angles changed.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from cryosplat.cli.main import main
from cryosplat.core.ctf import CTFParams
from cryosplat.core.ctf_plane import CTFPlane
from cryosplat.io.mrc import read_map
from cryosplat.io.star import read_star, write_star
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.astigmatism_fit import (
    COARSE_FACTOR,
    FINE_PHASE_STEP,
    AstigmatismGrid,
    fit_astigmatism,
    read_astigmatism,
)
from cryosplat.reconstruct.grid.ctf_likelihood import _moved_log_likelihood, move_basis
from cryosplat.reconstruct.grid.defocus_fit import SIGNIFICANT_GAIN
from cryosplat.reconstruct.grid.particle_scores import SampleReading, score_from_sums, shell_sums
from tests.conftest import reconstruct_quickly, simulate_tiny

MOVE_SD_ANGSTROM = 300.0
PER_MICROGRAPH = 20


def _ctf(n, seed=0):
    rng = np.random.default_rng(seed)
    return CTFParams.create(
        n,
        defocus_u_angstrom=rng.uniform(1e4, 2e4, n),
        defocus_v_angstrom=rng.uniform(1e4, 2e4, n),
        defocus_angle_degrees=rng.uniform(-180.0, 180.0, n),
    )


def test_moving_the_astigmatism_adds_to_its_components_and_keeps_the_order():
    ctf = _ctf(40)
    moves = np.random.default_rng(1).normal(scale=200.0, size=(40, 2))
    moves[::4] = 0.0
    moved = ctf.moved(25.0, moves)
    mean, a, b = ctf.astigmatism_components()
    mean2, a2, b2 = moved.astigmatism_components()
    np.testing.assert_allclose(mean2 - mean, 25.0, atol=1e-9)
    np.testing.assert_allclose(np.stack([a2 - a, b2 - b], 1), moves, atol=1e-8)
    before = np.sign(ctf.defocus_u_angstrom - ctf.defocus_v_angstrom)
    after = np.sign(moved.defocus_u_angstrom - moved.defocus_v_angstrom)
    np.testing.assert_array_equal(before, after)
    # the angle written is the one of φ, φ ± 180° nearest the recorded one
    assert np.all(np.abs(moved.defocus_angle_degrees - ctf.defocus_angle_degrees) <= 90.0)
    # unmoved rows keep their angle and difference exactly
    np.testing.assert_array_equal(moved.defocus_angle_degrees[::4], ctf.defocus_angle_degrees[::4])
    np.testing.assert_array_equal(moved.defocus_u_angstrom[::4], ctf.defocus_u_angstrom[::4] + 25.0)
    with pytest.raises(ValueError, match="astigmatism_offset_angstrom"):
        ctf.moved(0.0, moves[:, :1])


def test_moved_phases_give_the_ctf_of_the_moved_values_and_their_sums():
    ctf = replace(_ctf(6, seed=2), bfactor_angstrom2=np.full(6, 40.0), scale=np.full(6, 0.8))
    k = torch.arange(-20, 21, dtype=torch.float32)
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    plane = CTFPlane(kx.reshape(-1), ky.reshape(-1), 64, 1.0)
    moves = np.array(
        [[0.0, 0.0, 0.0], [-300.0, 0.0, 0.0], [0.0, 250.0, -90.0], [80.0, -40.0, 60.0]]
    )
    chi, factor, phases = plane.moved_phases(ctf, moves)
    made = []
    for k_move, (mean, a, b) in enumerate(moves):
        expected = plane(ctf.moved(mean, np.tile([a, b], (len(ctf), 1))))
        moved = factor * torch.sin(chi.double() + phases[:, k_move]).float()
        torch.testing.assert_close(moved, expected, atol=2e-4, rtol=0)
        made.append(expected)
    # the likelihood's sums as matrix products: as summed over each CTF made in turn
    rng = torch.Generator().manual_seed(0)
    cross = torch.randn(len(ctf), chi.shape[1], generator=rng)
    model = torch.rand(len(ctf), chi.shape[1], generator=rng)
    sums = _moved_log_likelihood(cross, model, chi, factor, move_basis(phases))
    for k_move, c in enumerate(made):
        direct = (2.0 * cross * c - model * c.square()).double().sum(1)
        torch.testing.assert_close(sums[:, k_move], direct, atol=2e-3, rtol=1e-5)
    with pytest.raises(ValueError, match="one voltage"):
        plane.moved_phases(replace(ctf, voltage_kv=np.r_[200.0, np.full(5, 300.0)]), moves)
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        plane.moved_phases(ctf, moves[:, :2])


def test_the_grid_turns_the_phase_by_little_and_the_coarse_one_reaches_the_range():
    grid = AstigmatismGrid.fine_for_shells(3.0, 300.0, 1000.0)
    turn = np.pi * 0.019687 / 3.0**2
    assert grid.step_angstrom * turn == pytest.approx(FINE_PHASE_STEP, rel=1e-3)
    assert grid.moves.shape == (81, 2) and np.all(grid.moves[40] == 0)
    coarse = grid.coarse(1000.0)
    assert coarse.step_angstrom == COARSE_FACTOR * grid.step_angstrom
    assert 1000.0 <= coarse.axis.max() < 1000.0 + coarse.step_angstrom
    # the fine grid reaches two coarse steps about the coarse pass's move
    assert grid.axis.max() == pytest.approx(2 * coarse.step_angstrom)
    # coarse data, where the phase hardly turns: the grids keep within the range
    wide = AstigmatismGrid.fine_for_shells(20.0, 200.0, 1000.0)
    assert wide.coarse(1000.0).axis.max() == pytest.approx(1000.0)
    assert wide.side == wide.coarse(1000.0).side == grid.side
    with pytest.raises(ValueError, match="range_angstrom"):
        grid.coarse(-5.0)
    with pytest.raises(ValueError, match="range_angstrom"):
        AstigmatismGrid.fine_for_shells(3.0, 300.0, 0.0)
    with pytest.raises(ValueError, match="step_angstrom"):
        AstigmatismGrid(0.0)


def _readings(rng, move_sd, micrographs=60, per=20, noise=300.0):
    """Each image's log-likelihood on a grid about 0 (and unmoved, last) for readings of its
    micrograph's move with an error of ``noise`` Å each."""
    grid = AstigmatismGrid(60.0, side=10)
    groups = np.repeat(np.arange(micrographs), per)
    true = rng.normal(scale=move_sd, size=(micrographs, 2))[groups]
    reading = true + rng.normal(scale=noise, size=true.shape)
    points = np.vstack([grid.moves, [[0.0, 0.0]]])
    distance2 = ((points[None, :, :] - reading[:, None, :]) ** 2).sum(-1)
    return grid, -0.5 * distance2 / noise**2, groups, true


def test_a_micrographs_particles_read_its_move_together():
    rng = np.random.default_rng(5)
    grid, likelihood, groups, true = _readings(rng, 150.0)
    fit = fit_astigmatism(likelihood, grid, np.zeros((len(groups), 2)), groups)
    assert fit.applied and fit.micrographs == 60
    assert abs(fit.prior_sd_angstrom / 150.0 - 1) < 0.25
    error = np.sqrt(np.mean((fit.offset_angstrom - true) ** 2))
    assert error < 0.5 * np.sqrt(np.mean(true**2))
    # a micrograph's images all get its move
    assert np.all(fit.offset_angstrom[groups == 3] == fit.offset_angstrom[groups == 3][0])
    # moves that are right: nothing applied
    grid, likelihood, groups, _ = _readings(rng, 0.0)
    right = fit_astigmatism(likelihood, grid, np.zeros((len(groups), 2)), groups)
    assert not right.applied and right.evidence_gain < SIGNIFICANT_GAIN
    assert np.all(right.offset_angstrom == 0)
    # rows of NaN are not read; a wrong shape is named
    likelihood[7] = np.nan
    assert np.isnan(
        fit_astigmatism(likelihood, grid, np.zeros((len(groups), 2)), groups).sd_angstrom[7]
    )
    with pytest.raises(ValueError, match="shape"):
        fit_astigmatism(likelihood[:, :-1], grid, np.zeros((len(groups), 2)), groups)


@pytest.fixture(scope="module")
def astigmatism_set(tmp_path_factory):
    """200 particles at box 32, 2.5 Å/px, SNR 3, on ten micrographs of 20, and a copy of their
    STAR whose astigmatism is off by a move per micrograph (normal, 300 Å a component):
    ``(true star, wrong star, moves per particle)``."""
    from cryosplat.model.gaussians import GaussianModel

    folder = tmp_path_factory.mktemp("astigmatism")
    truth = GaussianModel.random(60, 32, 2.5, seed=7, radius_fraction=0.25, scale_angstrom=3.0)
    star = simulate_tiny(folder, truth, n_particles=200, box=32, pixel_size_angstrom=2.5, snr=3.0)
    groups = np.arange(200) // PER_MICROGRAPH
    moves = np.random.default_rng(12).normal(scale=MOVE_SD_ANGSTROM, size=(10, 2))[groups]
    recorded = read_particles(star).ctf.moved(0.0, -moves)
    blocks = {name: dict(block.columns) for name, block in read_star(star).items()}
    for column, values in (
        ("rlnDefocusU", recorded.defocus_u_angstrom),
        ("rlnDefocusV", recorded.defocus_v_angstrom),
        ("rlnDefocusAngle", recorded.defocus_angle_degrees),
    ):
        blocks["particles"][column] = [f"{v:.6f}" for v in values]
    blocks["particles"]["rlnMicrographName"] = [f"mic{g}.mrc" for g in groups]
    wrong = star.parent / "wrong.star"
    write_star(wrong, blocks)
    blocks["particles"] = dict(read_star(star)["particles"].columns)
    blocks["particles"]["rlnMicrographName"] = [f"mic{g}.mrc" for g in groups]
    named = star.parent / "named.star"
    write_star(named, blocks)
    return named, wrong, moves


def _read_against_truth(star):
    particles = read_particles(star)
    truth = read_map(star.parent / "truth.mrc")[0]
    rows = np.arange(len(particles))
    scores = score_from_sums(shell_sums(particles, rows, truth))
    finest = 2 * particles.pixel_size_angstrom
    grid = AstigmatismGrid.fine_for_shells(finest, 300.0, 1000.0)
    reading = SampleReading(max_radius_px=particles.box / 2 - 1)
    return read_astigmatism(
        particles, [(rows, truth, scores, None)], particles.ctf, grid, 1000.0, reading
    )


def test_images_are_read_back_at_the_astigmatism_they_were_made_with(astigmatism_set):
    named, wrong, moves = astigmatism_set
    fit = _read_against_truth(wrong)
    assert fit.applied and fit.micrographs == 10
    for component in range(2):
        assert np.corrcoef(fit.offset_angstrom[:, component], moves[:, component])[0, 1] > 0.9
    left = np.sqrt(np.mean((fit.offset_angstrom - moves) ** 2))
    assert left < 0.3 * np.sqrt(np.mean(moves**2))
    # the STAR they were made with: small moves about zero, or none
    right = _read_against_truth(named)
    assert np.sqrt(np.mean(right.offset_angstrom**2)) < 0.15 * MOVE_SD_ANGSTROM


def test_refine_defocus_writes_the_astigmatism_read(astigmatism_set, tmp_path, capsys):
    named, wrong, moves = astigmatism_set
    run = tmp_path / "run"
    assert reconstruct_quickly(str(wrong), "-o", str(run)) == 0
    out = tmp_path / "defocus"
    command = ["refine-defocus", str(wrong), "--run", str(run), "-o", str(out), "--no-progress"]
    assert main(command) == 0
    assert "micrographs' astigmatism read: off by" in capsys.readouterr().out
    record = json.loads((out / "defocus.json").read_text())
    assert record["astigmatism"]["applied"] and record["astigmatism"]["micrographs"] == 10
    assert "Astigmatism moves read per micrograph" in (out / "astigmatism.svg").read_text()
    table = np.genfromtxt(out / "defocus.csv", delimiter=",", names=True, dtype=None)
    read_moves = np.stack([table["astigmatism_move_a"], table["astigmatism_move_b"]], 1)
    # against the run's half maps, made from these 200 images: the moves' direction is found
    assert np.sum(read_moves * moves) > 0.5 * np.sum(moves**2)
    written = read_particles(out / "refined.star", datadir=named.parent).ctf
    before = read_particles(wrong).ctf
    _, a0, b0 = before.astigmatism_components()
    _, a1, b1 = written.astigmatism_components()
    np.testing.assert_allclose(np.stack([a1 - a0, b1 - b0], 1), read_moves, atol=0.02)
    np.testing.assert_allclose(written.defocus_angle_degrees, table["defocus_angle"], atol=0.006)
    before_table = read_star(wrong)["particles"]
    after_table = read_star(out / "refined.star")["particles"]
    for column in before_table.columns:
        if column not in ("rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle"):
            assert after_table.columns[column] == before_table.columns[column], column
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "astigmatism:" in capsys.readouterr().out
    # --no-astigmatism leaves the angles as written
    plain = tmp_path / "plain"
    assert main([*command[:5], str(plain), "--no-progress", "--no-astigmatism"]) == 0
    assert json.loads((plain / "defocus.json").read_text())["astigmatism"] is None
    assert not (plain / "astigmatism.svg").exists()
    after = read_star(plain / "refined.star")["particles"]
    assert after.columns["rlnDefocusAngle"] == before_table.columns["rlnDefocusAngle"]


def test_without_micrographs_the_astigmatism_is_not_read_and_it_says_so(tiny_set, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "defocus"
    assert reconstruct_quickly(str(tiny_set), "-o", str(run)) == 0
    capsys.readouterr()
    command = ["refine-defocus", str(tiny_set), "--run", str(run), "-o", str(out)]
    assert main([*command, "--no-progress"]) == 0
    assert "astigmatism not read: the particles' micrographs are not recorded" in (
        capsys.readouterr().out
    )
    assert json.loads((out / "defocus.json").read_text())["astigmatism"] is None
