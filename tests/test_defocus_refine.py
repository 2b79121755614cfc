"""Per-particle defocus (``cryosplat refine-defocus``): each image's defocus read against a map.

Physics invariants: images made at a defocus the STAR does not record are read back at the
defocus they were made with; images whose STAR is right stay where they are; data that say
nothing of the defocus move nothing. The prior's spread is the errors' own where the likelihood
is right; the metadata are written again with only the defocus changed.
"""

from __future__ import annotations

import json
import logging
import pickle

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.core.ctf import electron_wavelength_angstrom
from cryosplat.io.mrc import read_map
from cryosplat.io.star import read_star, write_star
from cryosplat.particles.cryodrgn import write_ctf_pickle_defocus
from cryosplat.particles.cryosparc import write_cs_defocus
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.defocus_fit import (
    MAX_PHASE_STEP,
    SIGNIFICANT_GAIN,
    DefocusSearch,
    defocus_log_likelihood,
    fit_offsets,
)
from cryosplat.reconstruct.grid.particle_scores import score_from_sums, shell_sums
from tests.conftest import reconstruct_quickly, simulate_tiny

ERROR_SD_ANGSTROM = 400.0


def make_defocus_set(folder, n_particles: int = 200, snr: float = 3.0):
    """``n_particles`` particles at box 32, 2.5 Å/px, SNR ``snr``, and a copy of their STAR whose
    defocus values are each off by a normal error of 400 Å, its particles named on micrographs of
    20: ``(true star, wrong star, errors)``."""
    from cryosplat.model.gaussians import GaussianModel

    truth = GaussianModel.random(60, 32, 2.5, seed=7, radius_fraction=0.25, scale_angstrom=3.0)
    star = simulate_tiny(
        folder, truth, n_particles=n_particles, box=32, pixel_size_angstrom=2.5, snr=snr
    )
    errors = np.random.default_rng(11).normal(scale=ERROR_SD_ANGSTROM, size=n_particles)
    blocks = {name: dict(block.columns) for name, block in read_star(star).items()}
    for column in ("rlnDefocusU", "rlnDefocusV"):
        values = np.asarray(blocks["particles"][column], dtype=np.float64) - errors
        blocks["particles"][column] = [f"{v:.6f}" for v in values]
    # micrographs of 20 (their particles' errors drawn one by one: nothing shared)
    blocks["particles"]["rlnMicrographName"] = [f"mic{i // 20}.mrc" for i in range(n_particles)]
    wrong = star.parent / "wrong.star"
    write_star(wrong, blocks)
    return star, wrong, errors


@pytest.fixture(scope="module")
def defocus_set(tmp_path_factory):
    """200 particles at SNR 3 (:func:`make_defocus_set`) on ten micrographs."""
    return make_defocus_set(tmp_path_factory.mktemp("defocus"))


def _offsets_against_truth(star, truth):
    particles = read_particles(star)
    rows = np.arange(len(particles))
    scores = score_from_sums(shell_sums(particles, rows, truth))
    search = DefocusSearch.for_shells(2000.0, 2 * particles.pixel_size_angstrom, 300.0)
    likelihood = defocus_log_likelihood(particles, rows, truth, scores, search)
    return fit_offsets(likelihood, search)


def test_the_ctfs_made_one_by_one_give_the_matrix_products_sums(defocus_set, monkeypatch):
    from cryosplat.reconstruct.grid import ctf_likelihood

    star, wrong, _ = defocus_set
    particles = read_particles(wrong)
    truth = read_map(star.parent / "truth.mrc")[0]
    rows = np.arange(0, len(particles), 3)
    scores = score_from_sums(shell_sums(particles, rows, truth))
    moves = np.array([[0.0, 0.0, 0.0], [-250.0, 0.0, 0.0], [120.0, 80.0, -60.0]])
    candidates = ctf_likelihood.CTFCandidates(particles.ctf, moves, last=particles.ctf)
    fast = ctf_likelihood.ctf_log_likelihood(particles, rows, truth, scores, candidates)
    monkeypatch.setattr(ctf_likelihood, "_moves_as_phases", lambda samples, params: False)
    slow = ctf_likelihood.ctf_log_likelihood(particles, rows, truth, scores, candidates)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(fast[:, 0], fast[:, -1], rtol=1e-5, atol=1e-3)  # unmoved twice


def test_the_offsets_tried_turn_the_phase_by_little_and_hold_zero():
    search = DefocusSearch.for_shells(1500.0, 3.0, 300.0)
    offsets = search.offsets_angstrom
    assert offsets[0] == -1500.0 and offsets[-1] == 1500.0 and 0.0 in offsets
    turn = np.pi * float(electron_wavelength_angstrom(300.0)) / 3.0**2
    assert np.diff(offsets).max() * turn <= MAX_PHASE_STEP + 1e-9
    coarse = DefocusSearch.for_shells(1500.0, 30.0, 300.0).offsets_angstrom
    assert len(coarse) == 51  # at least 25 a side where the phase hardly turns
    with pytest.raises(ValueError, match="range_angstrom"):
        DefocusSearch.for_shells(0.0, 3.0, 300.0)


def test_the_prior_takes_the_errors_spread_and_shrinks_each_reading():
    rng = np.random.default_rng(0)
    search = DefocusSearch(np.linspace(-2000.0, 2000.0, 401))
    offsets = search.offsets_angstrom
    true = rng.normal(scale=300.0, size=3000)
    reading = true + rng.normal(scale=150.0, size=true.size)
    likelihood = -0.5 * ((offsets[None, :] - reading[:, None]) / 150.0) ** 2
    fit = fit_offsets(likelihood, search)
    assert fit.applied and abs(fit.prior_sd_angstrom / 300.0 - 1) < 0.1
    shrink = fit.prior_sd_angstrom**2 / (fit.prior_sd_angstrom**2 + 150.0**2)
    np.testing.assert_allclose(fit.offset_angstrom, shrink * reading, atol=15.0)
    assert np.median(fit.sd_angstrom) == pytest.approx(np.sqrt(shrink) * 150.0, rel=0.1)
    # the error's rms falls from 150 to about 134 (the posterior's)
    assert np.sqrt(np.mean((fit.offset_angstrom - true) ** 2)) < 0.95 * 150.0
    # readings of defoci that are right: no offset applied
    right = fit_offsets(
        -0.5 * ((offsets[None, :] - rng.normal(scale=150.0, size=(3000, 1))) / 150.0) ** 2,
        search,
    )
    assert not right.applied and right.evidence_gain < SIGNIFICANT_GAIN
    assert np.all(right.offset_angstrom == 0)
    # images that say nothing: nothing moves, and rows of NaN are left alone
    flat = np.zeros((100, len(offsets)))
    flat[3] = np.nan
    nothing = fit_offsets(flat, search)
    assert not nothing.applied and np.all(nothing.offset_angstrom == 0)
    assert np.isnan(nothing.sd_angstrom[3]) and np.isfinite(nothing.sd_angstrom[4])
    with pytest.raises(ValueError, match="shape"):
        fit_offsets(flat[:, :-1], search)


def _readings(rng, micrograph_sd, particle_sd, per_micrograph, n=3000):
    """Readings of offsets whose error is shared by ``per_micrograph`` particles at a time (sd
    ``micrograph_sd``) plus each one's own (``particle_sd``), each read to 150–600 Å."""
    search = DefocusSearch(np.linspace(-2000.0, 2000.0, 161))
    groups = np.arange(n) // per_micrograph
    true = rng.normal(scale=micrograph_sd, size=groups.max() + 1)[groups]
    true = true + rng.normal(scale=particle_sd, size=n)
    noise = rng.uniform(150.0, 600.0, size=n)
    reading = true + noise * rng.normal(size=n)
    likelihood = (
        -0.5 * ((search.offsets_angstrom[None, :] - reading[:, None]) / noise[:, None]) ** 2
    )
    return search, likelihood, groups, true


def _rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


def test_a_micrographs_particles_read_its_shared_error_together():
    rng = np.random.default_rng(3)
    search, likelihood, groups, true = _readings(rng, 250.0, 50.0, 60)
    alone = fit_offsets(likelihood, search)
    together = fit_offsets(likelihood, search, groups)
    assert together.applied and together.evidence_gain > alone.evidence_gain
    assert abs(together.micrograph_sd_angstrom / 250.0 - 1) < 0.25
    assert together.prior_sd_angstrom < 120.0
    error = _rms(together.offset_angstrom - true)
    assert error < 0.5 * _rms(alone.offset_angstrom - true)
    # each offset's posterior spread is as large as its error
    z = (together.offset_angstrom - true) / together.sd_angstrom
    assert 0.8 < _rms(z) < 1.2
    # micrographs that share no error: as good as each particle alone
    search, likelihood, groups, true = _readings(rng, 0.0, 250.0, 60)
    alone = fit_offsets(likelihood, search)
    together = fit_offsets(likelihood, search, groups)
    assert together.micrograph_sd_angstrom == 0.0
    np.testing.assert_array_equal(together.offset_angstrom, alone.offset_angstrom)
    # one particle per micrograph is the flat prior; a wrong length is named
    np.testing.assert_array_equal(
        fit_offsets(likelihood, search, np.arange(len(groups))).offset_angstrom,
        alone.offset_angstrom,
    )
    with pytest.raises(ValueError, match="micrographs"):
        fit_offsets(likelihood, search, groups[:-1])


def test_recorded_defoci_that_are_right_stay_with_micrographs_known():
    rng = np.random.default_rng(4)
    search, likelihood, groups, _ = _readings(rng, 0.0, 0.0, 30)
    fit = fit_offsets(likelihood, search, groups)
    assert not fit.applied and np.all(fit.offset_angstrom == 0)


def test_each_particles_micrograph_is_read_from_the_star(defocus_set, tmp_path, shared_data):
    star = defocus_set[0]
    blocks = {name: dict(block.columns) for name, block in read_star(star).items()}
    n = len(blocks["particles"]["rlnImageName"])
    blocks["particles"]["rlnMicrographName"] = [f"mic{(7 - i // 50):03d}.mrc" for i in range(n)]
    named = tmp_path / "named.star"
    write_star(named, blocks)
    particles = read_particles(named, datadir=star.parent)
    np.testing.assert_array_equal(particles.micrographs, np.arange(n) // 50)
    assert read_particles(star).micrographs is None
    real = shared_data / "particles" / "empiar10076_7" / "empiar_10076_7.star"
    block = next(b for b in read_star(real).values() if "rlnMicrographName" in b)
    names = block.get_str("rlnMicrographName")
    micrographs = read_particles(real).micrographs
    assert micrographs.max() + 1 == len(set(names.tolist())) and micrographs[0] == 0


def test_images_are_read_back_at_the_defocus_they_were_made_with(defocus_set):
    star, wrong, errors = defocus_set
    truth = read_map(star.parent / "truth.mrc")[0]
    fit = _offsets_against_truth(wrong, truth)
    assert fit.applied
    assert np.corrcoef(fit.offset_angstrom, errors)[0, 1] > 0.9
    left = np.sqrt(np.mean((fit.offset_angstrom - errors) ** 2))
    assert left < 0.4 * ERROR_SD_ANGSTROM
    assert abs(fit.prior_sd_angstrom / np.std(errors) - 1) < 0.25
    # the STAR they were made with: no offset, or small ones about zero
    right = _offsets_against_truth(star, truth)
    assert np.sqrt(np.mean(right.offset_angstrom**2)) < 0.15 * ERROR_SD_ANGSTROM


def test_refine_defocus_writes_the_star_again_with_the_defocus_moved_only(
    defocus_set, tmp_path, capsys, caplog
):
    star, wrong, errors = defocus_set
    run = tmp_path / "run"
    assert reconstruct_quickly(str(wrong), "-o", str(run)) == 0
    out = tmp_path / "defocus"
    command = ["refine-defocus", str(wrong), "--run", str(run), "-o", str(out), "--no-progress"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "one by one (fitted)" in printed and f"--datadir {star.parent}" in printed
    record = json.loads((out / "defocus.json").read_text())
    assert record["applied"] and record["run"] == str(run.resolve())
    assert record["micrographs"] == 10 and record["micrograph_sd_angstrom"] == 0.0
    assert record["refined_metadata"] == str((out / "refined.star").resolve())
    table = np.genfromtxt(out / "defocus.csv", delimiter=",", names=True, dtype=None)
    np.testing.assert_array_equal(table["row"], np.arange(200))
    # against the run's half maps, made from these 200 images: the errors' direction is found
    assert np.corrcoef(table["offset_angstrom"], errors)[0, 1] > 0.6
    before = read_star(wrong)["particles"]
    after = read_star(out / "refined.star")["particles"]
    for column in before.columns:
        if column in ("rlnDefocusU", "rlnDefocusV"):
            moved = after.get_float(column) - before.get_float(column)
            np.testing.assert_allclose(moved, table["offset_angstrom"], atol=0.011)
        else:
            assert after.columns[column] == before.columns[column], column
    assert read_star(out / "refined.star")["optics"].columns == read_star(wrong)["optics"].columns
    refined = read_particles(out / "refined.star", datadir=star.parent)
    assert len(refined) == 200
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "cryosplat refine-defocus output" in shown and "one by one; offsets applied" in shown
    assert "read against: each half set's own map, its images' own share taken out" in shown
    assert set(record["own_share_per_shell"]) == {"A", "B"}
    # a range narrower than the errors: the offsets crowd its edge, and a warning says so
    narrow = ["refine-defocus", str(wrong), "--run", str(run), "-o", str(tmp_path / "narrow")]
    with caplog.at_level(logging.WARNING, logger="cryosplat"):
        assert main([*narrow, "--range", "300", "--no-progress"]) == 0
    assert any("give a larger --range" in r.getMessage() for r in caplog.records)
    # the outputs are not overwritten unasked, nor written into the run
    capsys.readouterr()
    assert main(command) == 2
    assert "exists; --overwrite replaces it" in capsys.readouterr().err
    assert main(["refine-defocus", str(wrong), "--run", str(run), "-o", str(run)]) == 2
    assert "is the run's folder" in capsys.readouterr().err
    assert main(["refine-defocus", str(wrong), "--run", str(tmp_path), "-o", str(out / "x")]) == 2
    assert "complete reconstruct run" in capsys.readouterr().err


def _cs_ctf(table):
    from cryosplat.core.ctf import CTFParams

    return CTFParams.create(
        len(table),
        defocus_u_angstrom=table["ctf/df1_A"],
        defocus_v_angstrom=table["ctf/df2_A"],
        defocus_angle_degrees=np.rad2deg(table["ctf/df_angle_rad"].astype(np.float64)),
    )


def test_cryosparc_and_cryodrgn_tables_get_the_offsets_in_their_own_fields(shared_data, tmp_path):
    table = np.load(shared_data / "metadata" / "cryosparc_P12_J24_001_particles.cs")[:50]
    cs = tmp_path / "P1_J9_particles.cs"
    with open(cs, "wb") as fh:
        np.save(fh, table)
    rows, offsets = np.array([1, 4, 7]), np.array([100.0, -250.0, 30.0])
    recorded = _cs_ctf(table[rows])
    moves = np.array([[0.0, 0.0], [40.0, -25.0], [0.0, 0.0]])
    write_cs_defocus(cs, rows, recorded.moved(offsets, moves), tmp_path / "refined.cs")
    out = np.load(tmp_path / "refined.cs")
    for name in ("ctf/df1_A", "ctf/df2_A"):
        moved = out[name].astype(np.float64) - table[name].astype(np.float64)
        np.testing.assert_allclose(moved[rows[[0, 2]]], offsets[[0, 2]], atol=0.01)
        assert np.all(np.delete(moved, rows) == 0)
    angle = out["ctf/df_angle_rad"].astype(np.float64) - table["ctf/df_angle_rad"]
    assert np.all(angle[rows[[0, 2]]] == 0) and angle[4] != 0
    back = _cs_ctf(out[rows])
    for before, after, move in zip(
        recorded.astigmatism_components(),
        back.astigmatism_components(),
        [offsets, *moves.T],
        strict=True,
    ):
        np.testing.assert_allclose(after - before, move, atol=0.05)
    for name in table.dtype.names:
        if name not in ("ctf/df1_A", "ctf/df2_A", "ctf/df_angle_rad"):
            np.testing.assert_array_equal(out[name], table[name])


def test_cryodrgn_ctf_pickle_gets_the_offsets(tmp_path):
    from cryosplat.core.ctf import CTFParams

    ctf = np.tile([64, 1.5, 15000.0, 14000.0, 30.0, 300.0, 2.7, 0.1, 0.0], (6, 1))
    source = tmp_path / "ctf.pkl"
    with open(source, "wb") as fh:
        pickle.dump(ctf, fh)
    recorded = CTFParams.create(
        2, defocus_u_angstrom=15000.0, defocus_v_angstrom=14000.0, defocus_angle_degrees=30.0
    )
    new = recorded.moved(np.array([-80.0, 120.0]))
    write_ctf_pickle_defocus(source, np.array([0, 5]), new, tmp_path / "o.pkl")
    with open(tmp_path / "o.pkl", "rb") as fh:
        out = pickle.load(fh)
    expected = ctf.copy()
    expected[[0, 5], 2] += [-80.0, 120.0]
    expected[[0, 5], 3] += [-80.0, 120.0]
    np.testing.assert_array_equal(out, expected)
