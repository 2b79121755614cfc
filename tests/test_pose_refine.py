"""Per-particle poses (``cryosplat refine-poses``): each image's pose read against a map.

Physics invariants: images whose STAR records turned views and moved shifts are read back nearer
the poses they were made with; images whose STAR is right stay where they are; likelihoods that
say nothing move nothing. The metadata are written again with only the angles and origins
changed, in each format's own units, and read back as written.
"""

from __future__ import annotations

import json
import logging
import math
import pickle

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.core.conventions import (
    euler_relion_to_matrix,
    matrix_to_euler_relion,
    matrix_to_rotvec,
    rotvec_to_matrix,
)
from cryosplat.io.mrc import read_map
from cryosplat.io.star import read_star, write_star
from cryosplat.particles.cryodrgn import read_cryodrgn_poses, write_poses_pickle
from cryosplat.particles.cryosparc import write_cs_poses
from cryosplat.particles.read import read_particles
from cryosplat.particles.star_tables import write_star_poses
from cryosplat.reconstruct.grid import pose_fit
from cryosplat.reconstruct.grid.ctf_likelihood import shell_weights
from cryosplat.reconstruct.grid.particle_scores import (
    ParticleScores,
    score_from_sums,
    shell_sums,
)
from cryosplat.reconstruct.grid.pose_fit import (
    MAX_ARC_PX,
    MAX_SHIFT_PHASE,
    MAX_STEPS_PER_SIDE,
    PoseLevel,
    PoseSearch,
    fit_poses,
    pose_evidence,
)
from cryosplat.reconstruct.grid.pose_posterior import posterior_sums, posterior_sums_reference
from cryosplat.reconstruct.pose_run import reference_trust
from tests.conftest import reconstruct_quickly, simulate_tiny

TURN_RMS_DEGREES = 3.0
SHIFT_SD_ANGSTROM = 1.5
N_PARTICLES = 200


@pytest.fixture(scope="module")
def pose_set(tmp_path_factory):
    """200 particles at box 32, 2.5 Å/px, SNR 3, and a copy of their STAR whose views are each
    turned by a random rotation (3° rms) and whose origins are each moved (1.5 Å s.d. per axis):
    ``(true star, wrong star)``."""
    from cryosplat.model.gaussians import GaussianModel

    folder = tmp_path_factory.mktemp("poses")
    truth = GaussianModel.random(60, 32, 2.5, seed=7, radius_fraction=0.25, scale_angstrom=3.0)
    star = simulate_tiny(
        folder, truth, n_particles=N_PARTICLES, box=32, pixel_size_angstrom=2.5, snr=3.0
    )
    rng = np.random.default_rng(12)
    turns = rotvec_to_matrix(
        rng.normal(scale=math.radians(TURN_RMS_DEGREES) / math.sqrt(3), size=(N_PARTICLES, 3))
    )
    moves = rng.normal(scale=SHIFT_SD_ANGSTROM, size=(N_PARTICLES, 2))
    particles = read_particles(star)
    blocks = {name: dict(block.columns) for name, block in read_star(star).items()}
    angles = matrix_to_euler_relion(turns @ particles.rotations)
    for i, column in enumerate(("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")):
        blocks["particles"][column] = [f"{v:.6f}" for v in angles[:, i]]
    shifts = particles.shifts_angstrom + moves
    for i, column in enumerate(("rlnOriginXAngst", "rlnOriginYAngst")):
        blocks["particles"][column] = [f"{v:.6f}" for v in shifts[:, i]]
    wrong = star.parent / "wrong.star"
    write_star(wrong, blocks)
    return star, wrong


@pytest.fixture(scope="module")
def wrong_run(pose_set, tmp_path_factory):
    """A quick complete run of the wrong STAR: ``(wrong star, run folder)``."""
    _, wrong = pose_set
    run = tmp_path_factory.mktemp("wrong_run") / "run"
    assert reconstruct_quickly(str(wrong), "-o", str(run)) == 0
    return wrong, run


def _errors(rotations, shifts, truth):
    """The rms angle (degrees) and shift error (Å) of poses against ``truth``'s."""
    turn = matrix_to_rotvec(rotations @ np.swapaxes(truth.rotations, 1, 2))
    angle = np.degrees(np.linalg.norm(turn, axis=1))
    shift = np.linalg.norm(shifts - truth.shifts_angstrom, axis=1)
    return float(np.sqrt(np.mean(angle**2))), float(np.sqrt(np.mean(shift**2)))


def _fit_against(star, volume, second=True):
    """The two readings of ``star``'s images against ``volume`` (the second where ``second`` and
    the first is applied)."""
    particles = read_particles(star)
    rows = np.arange(len(particles))
    scores = score_from_sums(shell_sums(particles, rows, volume))
    shape = (14.0, particles.box, particles.pixel_size_angstrom)
    search = PoseSearch.for_shells(6.0, 4.0, *shape)
    fit = fit_poses(pose_evidence(particles, rows, volume, scores, PoseLevel(search)), search)
    if second and fit.applied:
        level = PoseLevel(search.finer(*shape), fit.moves, fit.spreads)
        fit = fit.moved_to(pose_evidence(particles, rows, volume, scores, level)["mean"][:, 0, 0])
    rotations = rotvec_to_matrix(fit.rotvecs) @ particles.rotations
    return fit, particles, rotations, particles.shifts_angstrom + fit.shifts_angstrom


def test_the_lattices_hold_zero_first_and_step_as_the_shells_allow():
    search = PoseSearch.for_shells(6.0, 5.0, 10.0, 64, 2.0)
    assert np.all(search.rotvecs[0] == 0) and np.all(search.shifts_angstrom[0] == 0)
    # a ball and a disc of three steps each way: 123 and 29 lattice points
    assert len(search.rotvecs) == 123 and len(search.shifts_angstrom) == 29
    np.testing.assert_allclose(np.abs(search.rotvecs).max(), math.radians(6.0))
    # fine shells, a small range: the steps are as fine as the finest shell needs, no finer
    fine = PoseSearch.for_shells(0.5, 0.2, 20.0, 64, 2.0)
    assert math.radians(fine.angle_step_degrees) * 20.0 <= MAX_ARC_PX + 1e-9
    phase = 2 * math.pi * 20.0 * fine.shift_step_angstrom / (64 * 2.0)
    assert phase <= MAX_SHIFT_PHASE + 1e-9
    steps = np.abs(fine.rotvecs).max() / math.radians(fine.angle_step_degrees)
    assert round(steps) <= MAX_STEPS_PER_SIDE
    # a range of 0: that part is not searched
    assert len(PoseSearch.for_shells(0.0, 2.0, 10.0, 64, 2.0).rotvecs) == 1
    with pytest.raises(ValueError, match="angle_range_degrees"):
        PoseSearch.for_shells(-1.0, 2.0, 10.0, 64, 2.0)


def test_the_posterior_sums_as_matrix_products_are_the_log_sum_exp_twins():
    """:func:`posterior_sums` (scaled batched products) against its reference (log-sum-exp over
    the broadcast arrays): likelihoods of every scale, a peak thousands of nats from the prior's
    (whose scaled sums reach double's bottom and are read in log space), an unread image."""
    search = PoseSearch.for_shells(4.0, 3.0, 10.0, 64, 2.0)
    rng = np.random.default_rng(3)
    n, c, t = 7, len(search.rotvecs), len(search.shifts_angstrom)
    points = (
        search.rotvecs[None] + rng.normal(0, 0.01, (n, c, 3)),
        search.shifts_angstrom[None] + rng.normal(0, 0.3, (n, t, 2)),
    )
    spreads = (pose_fit.prior_spreads(points[0][0]), pose_fit.prior_spreads(points[1][0]))
    priors = tuple(pose_fit._log_priors(p, s) for p, s in zip(points, spreads, strict=True))
    ll = rng.normal(0, 1, (n, c, t)) * np.array([0.1, 1, 10, 100, 1e3, 1, 1])[:, None, None]
    ll[5] = -3000.0 * (points[0][5, :, :1] - points[0][5, -1, :1]) ** 2 * 1e4  # a far peak
    ll[5] -= 2000.0 * ((points[1][5, None, :, 0] - points[1][5, -1, 0]) ** 2)
    ll[6, 3, 4] = np.nan
    got = posterior_sums(ll, points, priors)
    expected = posterior_sums_reference(ll, points, priors)
    for key in ("evidence", "mean", "recorded"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-9, atol=1e-9)
    assert np.isnan(got["evidence"][6]).all() and np.isfinite(got["evidence"][:6]).all()


def test_likelihoods_that_say_nothing_move_nothing_and_a_sharp_one_moves_to_its_peak():
    search = PoseSearch.for_shells(4.0, 3.0, 10.0, 64, 2.0)
    n = 5
    points = (
        np.broadcast_to(search.rotvecs, (n, *search.rotvecs.shape)),
        np.broadcast_to(search.shifts_angstrom, (n, *search.shifts_angstrom.shape)),
    )
    priors = tuple(pose_fit._log_priors(p, pose_fit.prior_spreads(p[0])) for p in points)
    np.testing.assert_allclose(np.exp(priors[0]).sum(1), 1.0)
    flat = np.zeros((n, len(search.rotvecs), len(search.shifts_angstrom)))
    fit = fit_poses(posterior_sums(flat, points, priors), search)
    assert not fit.applied and np.all(fit.rotvecs == 0) and np.all(fit.shifts_angstrom == 0)
    # every image says, strongly, that its pose is turned and shifted by one candidate
    sharp = np.full_like(flat, -500.0)
    sharp[:, 17, 9] = 0.0
    fit = fit_poses(posterior_sums(sharp, points, priors), search)
    assert fit.applied and fit.gain > 1000
    np.testing.assert_allclose(fit.rotvecs, np.tile(search.rotvecs[17], (n, 1)), atol=1e-6)
    np.testing.assert_allclose(
        fit.shifts_angstrom, np.tile(search.shifts_angstrom[9], (n, 1)), atol=1e-6
    )
    # an image whose likelihood could not be read keeps its pose and is not counted
    sharp[2] = np.nan
    fit = fit_poses(posterior_sums(sharp, points, priors), search)
    assert not fit.read[2] and np.all(fit.rotvecs[2] == 0) and fit.read.sum() == 4
    # a second reading moves only the images read, where the prior is applied
    moved = fit.moved_to(np.ones((n, 5)))
    assert np.all(moved.rotvecs[2] == 0) and np.all(moved.rotvecs[[0, 1, 3, 4]] == 1)
    with pytest.raises(ValueError, match="go together"):
        PoseLevel(search, centres=np.zeros((n, 5)))


def test_images_are_read_back_nearer_the_poses_they_were_made_with(pose_set):
    star, wrong = pose_set
    truth = read_particles(star)
    volume = read_map(star.parent / "truth.mrc")[0]
    recorded = read_particles(wrong)
    before = _errors(recorded.rotations, recorded.shifts_angstrom, truth)
    assert before[0] > 0.8 * TURN_RMS_DEGREES and before[1] > SHIFT_SD_ANGSTROM
    fit, _, rotations, shifts = _fit_against(wrong, volume, second=False)
    assert fit.applied
    first = _errors(rotations, shifts, truth)
    assert first[0] < 0.7 * before[0] and first[1] < 0.4 * before[1]
    # the second reading, about the first: finer than the first's lattices
    fit, _, rotations, shifts = _fit_against(wrong, volume)
    after = _errors(rotations, shifts, truth)
    assert after[0] < first[0] and after[1] < 0.5 * first[1]
    assert after[0] < 0.6 * before[0] and after[1] < 0.15 * before[1]
    # each component of each turn read is the error's, undone (shrunk where the data say little)
    errors = matrix_to_rotvec(recorded.rotations @ np.swapaxes(truth.rotations, 1, 2))
    for k in range(3):
        assert np.corrcoef(fit.rotvecs[:, k], -errors[:, k])[0, 1] > 0.75
    # the prior's spreads are the errors' own, per component
    assert 0.5 < fit.rotation_spread_degrees / (TURN_RMS_DEGREES / math.sqrt(3)) < 1.6
    assert 0.5 < fit.shift_spread_angstrom / SHIFT_SD_ANGSTROM < 1.6
    # the STAR they were made with: the poses stay, or move by little
    right, particles, rotations, shifts = _fit_against(star, volume)
    moved = _errors(rotations, shifts, particles)
    assert moved[0] < 0.3 * before[0] and moved[1] < 0.3 * before[1]


def test_refine_poses_writes_the_star_again_with_the_poses_moved_only(
    pose_set, wrong_run, tmp_path, capsys, caplog
):
    star, _ = pose_set
    wrong, run = wrong_run
    out = tmp_path / "poses"
    command = ["refine-poses", str(wrong), "--run", str(run), "-o", str(out), "--no-progress"]
    with caplog.at_level(logging.INFO, logger="cryosplat"):
        assert main(command) == 0
    printed = capsys.readouterr().out
    assert "half A: prior spreads" in printed and f"--datadir {star.parent}" in printed
    # a run of this cryosplat: the likelihood's shells weighed by the trust its record gives
    assert reference_trust(run) is not None
    assert "shells weighed by how far the half maps' agreement is the truth's" in caplog.text
    record = json.loads((out / "poses.json").read_text())
    assert record["run"] == str(run.resolve())
    assert record["halves"]["A"]["applied"] and record["halves"]["B"]["applied"]
    assert record["refined_metadata"] == str((out / "refined.star").resolve())
    table = np.genfromtxt(out / "poses.csv", delimiter=",", names=True, dtype=None)
    np.testing.assert_array_equal(table["row"], np.arange(N_PARTICLES))
    assert set(table["half"].astype(str)) == {"A", "B"}
    # against the run's own half maps, made from these 200 images: the poses come nearer
    truth, recorded = read_particles(star), read_particles(wrong)
    refined = read_particles(out / "refined.star", datadir=star.parent)
    before = _errors(recorded.rotations, recorded.shifts_angstrom, truth)
    after = _errors(refined.rotations, refined.shifts_angstrom, truth)
    assert after[0] < 0.8 * before[0] and after[1] < 0.8 * before[1]
    turned = np.degrees(
        np.linalg.norm(
            matrix_to_rotvec(refined.rotations @ np.swapaxes(recorded.rotations, 1, 2)), axis=1
        )
    )
    np.testing.assert_allclose(turned, table["turn_degrees"], atol=2e-3)
    moved = refined.shifts_angstrom - recorded.shifts_angstrom
    np.testing.assert_allclose(moved[:, 0], table["shift_move_x_angstrom"], atol=2e-3)
    before_table = read_star(wrong)["particles"]
    after_table = read_star(out / "refined.star")["particles"]
    pose_columns = {"rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst"}
    for column in before_table.columns:
        if column not in pose_columns | {"rlnOriginYAngst"}:
            assert after_table.columns[column] == before_table.columns[column], column
    assert read_star(out / "refined.star")["optics"].columns == read_star(wrong)["optics"].columns
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "cryosplat refine-poses output" in shown and "moves applied" in shown
    assert main(["info", str(run)]) == 0
    assert f"cryosplat refine-poses {wrong} --run {run}" in capsys.readouterr().out
    # the outputs are not overwritten unasked, nor written into the run
    assert main(command) == 2
    assert "exists; --overwrite replaces it" in capsys.readouterr().err
    assert main(["refine-poses", str(wrong), "--run", str(run), "-o", str(run)]) == 2
    assert "is the run's folder" in capsys.readouterr().err
    nothing = ["--angle-range", "0", "--shift-range", "0"]
    assert main([*command, "--overwrite", *nothing]) == 2
    assert "nothing to refine" in capsys.readouterr().err


def _star_30(tmp_path, rotations, shifts_px, pixel):
    """A RELION 3.0 table (origins in pixels, a pixel size per row)."""
    angles = matrix_to_euler_relion(rotations)
    columns = {
        "rlnImageName": [f"{i + 1}@s.mrcs" for i in range(len(rotations))],
        "rlnAngleRot": [f"{v:.6f}" for v in angles[:, 0]],
        "rlnAngleTilt": [f"{v:.6f}" for v in angles[:, 1]],
        "rlnAnglePsi": [f"{v:.6f}" for v in angles[:, 2]],
        "rlnOriginX": [f"{v:.6f}" for v in shifts_px[:, 0]],
        "rlnOriginY": [f"{v:.6f}" for v in shifts_px[:, 1]],
        "rlnDetectorPixelSize": [f"{p:.6f}" for p in pixel],
        "rlnMagnification": ["10000.000000"] * len(rotations),
    }
    path = tmp_path / "old.star"
    write_star(path, {"": columns})
    return path


def test_star_files_get_the_poses_in_their_own_columns_and_units(tmp_path):
    rng = np.random.default_rng(3)
    rotations = rotvec_to_matrix(rng.normal(size=(6, 3)))
    pixel = np.array([1.5, 1.5, 1.5, 2.0, 2.0, 2.0])
    path = _star_30(tmp_path, rotations, rng.normal(size=(6, 2)), pixel)
    source = read_star(path)[""]
    rows = np.array([1, 4])
    new_rotations = rotvec_to_matrix(rng.normal(size=(2, 3)))
    new_shifts = np.array([[3.0, -1.5], [0.5, 4.0]])
    out = tmp_path / "new.star"
    write_star_poses(path, rows, new_rotations, new_shifts, pixel[rows], out)
    written = read_star(out)[""]
    assert "rlnOriginXAngst" not in written
    np.testing.assert_allclose(
        written.get_float("rlnOriginX")[rows], new_shifts[:, 0] / pixel[rows]
    )
    angles = np.stack(
        [written.get_float(c) for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")]
    )
    np.testing.assert_allclose(euler_relion_to_matrix(*angles)[rows], new_rotations, atol=1e-5)
    for column in source.columns:  # the other rows, and every other column, as written
        kept = [v for i, v in enumerate(written.columns[column]) if i not in rows]
        assert kept == [v for i, v in enumerate(source.columns[column]) if i not in rows]
    # a pose given back as read keeps its text, even where its Euler angles are not RELION's own
    same = euler_relion_to_matrix(
        *np.stack(
            [source.get_float(c)[rows] for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")]
        )
    )
    write_star_poses(path, rows, same, new_shifts, pixel[rows], out)
    assert read_star(out)[""].columns["rlnAngleRot"] == source.columns["rlnAngleRot"]
    with pytest.raises(ValueError, match="do not match"):
        write_star_poses(path, rows, new_rotations[:1], new_shifts, pixel[rows], out)


def test_cryosparc_tables_get_the_poses_in_their_own_fields(shared_data, tmp_path):
    table = np.load(shared_data / "metadata" / "cryosparc_P12_J24_001_particles.cs")[:50]
    if "alignments3D/pose" not in table.dtype.names:
        pytest.skip("this .cs holds no 3D alignments")
    cs = tmp_path / "P1_J9_particles.cs"
    with open(cs, "wb") as fh:
        np.save(fh, table)
    before = read_particles(cs, require_images=False)
    rows = np.array([2, 9, 30])
    turns = rotvec_to_matrix(np.radians([[1.0, 0, 0], [0, -2.0, 0.5], [0, 0, 0]]))
    rotations = turns @ before.rotations[rows]
    shifts = before.shifts_angstrom[rows] + np.array([[1.0, -2.0], [0.0, 0.0], [3.0, 0.5]])
    write_cs_poses(cs, rows, rotations, shifts, tmp_path / "refined.cs")
    after = read_particles(tmp_path / "refined.cs", require_images=False)
    np.testing.assert_allclose(after.rotations[rows], rotations, atol=1e-5)
    np.testing.assert_allclose(after.shifts_angstrom[rows], shifts, atol=1e-3)
    out = np.load(tmp_path / "refined.cs")
    # the third row's view given back as read: its pose stays as stored, bit for bit
    np.testing.assert_array_equal(out["alignments3D/pose"][30], table["alignments3D/pose"][30])
    others = np.setdiff1d(np.arange(50), rows)
    for name in table.dtype.names:
        np.testing.assert_array_equal(out[name][others], table[name][others])
        if not name.startswith("alignments3D/pose") and name != "alignments3D/shift":
            np.testing.assert_array_equal(out[name], table[name])


def test_cryodrgn_pose_pickles_get_the_poses_as_fractions_of_the_box(tmp_path):
    rng = np.random.default_rng(4)
    rotations = rotvec_to_matrix(rng.normal(size=(5, 3)))
    source = tmp_path / "poses.pkl"
    with open(source, "wb") as fh:
        pickle.dump(rotations, fh)  # rotations only: the translations are added
    new = rotvec_to_matrix(rng.normal(size=(2, 3)))
    write_poses_pickle(
        source, np.array([0, 3]), new, np.array([[6.4, -3.2], [0, 1.6]]), 64.0, tmp_path / "o.pkl"
    )
    rot, trans = read_cryodrgn_poses(tmp_path / "o.pkl")
    np.testing.assert_allclose(rot[[0, 3]], new)
    np.testing.assert_allclose(rot[[1, 2, 4]], rotations[[1, 2, 4]])
    np.testing.assert_allclose(trans, [[0.1, -0.05], [0, 0], [0, 0], [0, 0.025], [0, 0]])
    with pytest.raises(ValueError, match="box_angstrom"):
        write_poses_pickle(source, np.array([0]), new[:1], np.zeros((1, 2)), 0.0, tmp_path / "x")


def test_refine_poses_interrupted_goes_on_where_it_stopped(wrong_run, tmp_path, monkeypatch):
    from cryosplat.reconstruct.grid import particle_scores
    from cryosplat.reconstruct.pose_run import refine_poses_run
    from tests.test_row_store import _Reads

    wrong, run = wrong_run
    particles = read_particles(wrong)
    options = {"batch_size": 25, "show_progress": False}

    def reads(stop_after=None):
        """Images read from here on counted (and stopped after ``stop_after`` batches)."""
        counted = _Reads(monkeypatch, stop_after)  # the counting reader, in particle_scores
        monkeypatch.setattr(pose_fit, "read_samples", particle_scores.read_samples)
        return counted

    whole_reads = reads()
    whole = refine_poses_run(particles, run, **options)
    # three passes of four batches a half (scores, first and second reading): stopped in half B's
    # first reading
    folder = tmp_path / "checkpoints"
    stopped_reads = reads(stop_after=3 * 4 + 4 + 2)
    with pytest.raises(KeyboardInterrupt):
        refine_poses_run(particles, run, checkpoints=folder, **options)
    saved = {p.name for p in folder.iterdir()}
    assert saved >= {"scores_A.npz", "poses_A.npz", "fine_A.npz", "poses_B.npz"}
    resumed_reads = reads()
    resumed = refine_poses_run(particles, run, checkpoints=folder, **options)
    assert resumed_reads.images == whole_reads.images - stopped_reads.images  # none read twice
    for name in "AB":
        np.testing.assert_allclose(resumed.fits[name].rotvecs, whole.fits[name].rotvecs, atol=1e-9)
        np.testing.assert_allclose(
            resumed.fits[name].shifts_angstrom, whole.fits[name].shifts_angstrom, atol=1e-9
        )
    again_reads = reads()
    refine_poses_run(particles, run, checkpoints=folder, **options)
    assert again_reads.images == 0


def test_the_commands_defaults_are_the_searchs_own():
    from cryosplat.cli.names import POSE_ANGLE_RANGE_DEGREES, POSE_SHIFT_RANGE_PX

    assert POSE_ANGLE_RANGE_DEGREES == pose_fit.DEFAULT_ANGLE_RANGE_DEGREES
    assert POSE_SHIFT_RANGE_PX == pose_fit.DEFAULT_SHIFT_RANGE_PX


def _fsc_record(folder, estimate, agreement, resolutions):
    record = {
        "cross_validated": {
            "curves": {"half_model_vs_truth_estimate": estimate},
            "resolution_per_shell_angstrom": resolutions,
        },
        "model_half_maps": {"spherical_mask": {"fsc": {"masked": agreement}}},
    }
    (folder / "fsc.json").write_text(json.dumps(record))


def test_a_shell_is_trusted_as_far_as_the_half_maps_agreement_is_the_truths(tmp_path):
    # the half maps agree (0.9, 0.5, 0.3, 0.01) where each holds the truth to 0.9, 0.5, 0.3, 0.3
    _fsc_record(
        tmp_path, [0.0, 0.9, 0.5, 0.3, 0.3], [1.0, 0.9, 0.5, 0.3, 0.01], [None, 40, 20, 13, 10]
    )
    frequencies, trust = reference_trust(tmp_path)
    np.testing.assert_allclose(frequencies, [0, 1 / 40, 1 / 20, 1 / 13, 1 / 10])
    # C² / FSC_AB: 0.81 / 0.9; 0.25 / 0.5; 0.09 / 0.3; nothing shared to trust at the last
    np.testing.assert_allclose(trust, [1.0, 0.9, 0.5, 0.3, 0.0])
    _fsc_record(tmp_path, [0.0, -0.2, 1.0], [1.0, 0.5, 0.5], [None, 40, 20])
    np.testing.assert_allclose(reference_trust(tmp_path)[1], [1.0, 0.0, 1.0])  # clipped
    (tmp_path / "fsc.json").write_text(json.dumps({"cross_validated": {}}))
    assert reference_trust(tmp_path) is None  # a run older than the estimate: weighed alike


def test_a_shell_trusted_less_is_read_as_noisier_and_one_not_trusted_not_at_all():
    scores = ParticleScores(
        z=np.zeros(3),
        amplitude=np.ones(3),
        noise_scale=np.ones(3),
        shell_scale=np.array([0.0, 1.0, 0.8, 0.5]),
        shell_noise=np.array([0.0, 2.0, 4.0, 8.0]),
    )
    cross, model = shell_weights(scores)
    trusted = pose_fit.trusted_scores(scores, np.array([1.0, 1.0, 0.5, 0.0]))
    cross_t, model_t = shell_weights(trusted)
    np.testing.assert_allclose(cross_t, cross * [1.0, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(model_t, model * [1.0, 1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        pose_fit.trusted_scores(scores, np.array([1.0, 1.0, 1.5, 0.0]))
    with pytest.raises(ValueError, match="one value per shell"):
        pose_fit.trusted_scores(scores, np.ones(3))
