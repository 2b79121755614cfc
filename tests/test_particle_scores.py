"""Particle scores (``cryosplat score``): each image against the half map made without it.

Physics invariants: an image of noise alone scores as a standard normal variable; the molecule at
its pose scores high; the map's fitted scale per shell is flat where the map is the images' own
truth (the slices are the statistics pass's insertions read back); the named images are the
junk where the two are apart, and almost none where the set holds no junk.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from cryosplat.cli.main import main
from cryosplat.core.errors import InputError
from cryosplat.core.fourier import fourier_crop_volume
from cryosplat.core.fourier_slice import default_max_radius
from cryosplat.io.mrc import MRCStack, read_map, write_map, write_stack
from cryosplat.particles.read import read_particles
from cryosplat.particles.selection import read_row_indices
from cryosplat.reconstruct.grid.particle_scores import (
    ParticleScores,
    SampleReading,
    score_from_sums,
    score_radius,
    shell_sums,
)
from cryosplat.reconstruct.score_run import score_against_map, score_run, write_scores
from tests.conftest import reconstruct_quickly
from tests.test_optics_pixel_sizes import _wiener, two_sets  # noqa: F401 (a fixture)


def _with_noise_images(star, folder, noise_rows: np.ndarray, seed: int = 0):
    """The set at ``star`` with the images at ``noise_rows`` replaced by white noise of the
    images' own standard deviation."""
    particles = read_particles(star)
    images = particles.read_images(np.arange(len(particles)))
    rng = np.random.default_rng(seed)
    sd = float(images.std())
    images[noise_rows] = rng.normal(scale=sd, size=images[noise_rows].shape)
    write_stack(folder / "noisy.mrcs", images.astype(np.float32), particles.pixel_size_angstrom)
    stack = MRCStack(folder / "noisy.mrcs")
    return replace(
        particles,
        stacks=[stack],
        stack_index=np.zeros(len(particles), dtype=np.int64),
        image_index=np.arange(len(particles)),
    )


def test_noise_images_score_as_a_standard_normal_and_the_molecule_high(tiny_set, tmp_path):
    truth = read_map(tiny_set.parent / "truth.mrc")[0]
    noise_rows = np.arange(1, 120, 2)
    particles = _with_noise_images(tiny_set, tmp_path, noise_rows)
    scores = score_from_sums(shell_sums(particles, np.arange(120), truth))
    noise = scores.z[noise_rows]
    molecule = np.delete(scores.z, noise_rows)
    # 60 draws of N(0, 1): the mean within 3.5 standard errors, the spread within 30 %
    assert abs(noise.mean()) < 3.5 / np.sqrt(60)
    assert 0.7 < noise.std() < 1.3
    assert molecule.min() > 8.0  # SNR 1 in a box of 24: the molecule stands far out
    # its score is what its amplitude says it would be, on average
    expected = np.delete(scores.amplitude, noise_rows)
    assert abs(molecule.mean() / expected.mean() - 1) < 0.15
    junk = scores.junk()
    assert set(np.flatnonzero(junk)) <= set(noise_rows.tolist())
    assert junk[noise_rows].mean() > 0.8


def test_the_maps_scale_is_flat_against_the_images_own_truth(tiny_set):
    """Slices of the truth times the CTF are the images' signal (the statistics pass's placement
    read back, in the same units): the fitted scale is 1 at every shell the signal dominates."""
    truth = read_map(tiny_set.parent / "truth.mrc")[0]
    particles = read_particles(tiny_set)
    scores = score_from_sums(shell_sums(particles, np.arange(len(particles)), truth))
    assert np.all(np.abs(scores.shell_scale[1:6] - 1) < 0.02)
    assert scores.shell_scale[0] == 0  # the zero frequency is not read


def test_images_with_protein_dark_score_alike_with_their_sign(tiny_set, tmp_path):
    truth = read_map(tiny_set.parent / "truth.mrc")[0]
    particles = read_particles(tiny_set)
    rows = np.arange(len(particles))
    plain = score_from_sums(shell_sums(particles, rows, truth)).z
    flipped = score_from_sums(shell_sums(particles, rows, -truth, SampleReading(data_sign=-1.0))).z
    np.testing.assert_allclose(flipped, plain, rtol=1e-4, atol=1e-4)
    # read in another order, each image keeps its own score
    order = np.random.default_rng(0).permutation(rows)
    again = score_from_sums(shell_sums(particles, order, truth)).z
    np.testing.assert_allclose(again, plain[order], rtol=1e-5, atol=1e-5)


def test_junk_is_named_where_it_stands_apart_and_none_without_it():
    rng = np.random.default_rng(3)
    z = np.concatenate([rng.normal(3.5, 1.0, 1800), rng.normal(0.0, 1.0, 200)])
    mixed = ParticleScores(z, np.full(z.size, 3.5), np.ones(z.size), np.ones(4))
    assert abs(mixed.null_fraction() - 0.1) < 0.04
    named = mixed.junk()
    assert named[1800:].mean() > 0.6 and named[:1800].mean() < 0.02
    clean = ParticleScores(z[:1800], np.full(1800, 3.5), np.ones(1800), np.ones(4))
    assert clean.junk().mean() < 0.005
    weak = rng.normal(1.5, 1.0, 2000)  # a weak signal overlapping noise: nothing stands apart
    assert ParticleScores(weak, weak, np.ones(2000), np.ones(4)).junk().mean() < 0.05
    with_nan = ParticleScores(np.array([np.nan, 2.0, 3.0]), np.ones(3), np.ones(3), np.ones(4))
    assert with_nan.junk_probability()[0] == 1.0


@pytest.fixture(scope="module")
def scored_run(tiny_set, tmp_path_factory):
    """A short run on the tiny set with a fifth of its images made noise, and its folder."""
    folder = tmp_path_factory.mktemp("scores")
    particles = read_particles(tiny_set)
    noise_rows = np.arange(0, 120, 5)
    noisy = _with_noise_images(tiny_set, folder, noise_rows, seed=1)
    star = folder / "particles.star"
    text = tiny_set.read_text()
    names = [f"{i + 1:06d}@noisy.mrcs" for i in range(len(particles))]
    lines, k = [], 0
    for line in text.splitlines():
        if "@" in line and k < len(names):  # the particle rows name their images
            fields = line.split()
            at = next(i for i, f in enumerate(fields) if "@" in f)
            fields[at] = names[k]
            line, k = " ".join(fields), k + 1
        lines.append(line)
    star.write_text("\n".join(lines) + "\n")
    assert read_particles(star).stacks[0].path.name == noisy.stacks[0].path.name
    run = folder / "run"
    assert reconstruct_quickly(str(star), "-o", str(run)) == 0
    return star, run, noise_rows


def test_score_names_the_noise_images_of_a_run_and_writes_rows_for_ind(
    scored_run, tmp_path, capsys
):
    star, run, noise_rows = scored_run
    out = tmp_path / "scores"
    assert main(["score", str(star), "--run", str(run), "-o", str(out), "--no-progress"]) == 0
    named = np.load(out / "named.npy")
    kept = read_row_indices(out / "kept.npy", 120)
    assert sorted(np.concatenate([named, kept]).tolist()) == list(range(120))
    assert np.isin(named, noise_rows).all() and np.isin(noise_rows, named).mean() > 0.8
    table = (out / "particle_scores.csv").read_text().splitlines()
    assert table[0].startswith("row,half,score") and len(table) == 121
    assert (out / "scores.svg").read_text().startswith("<svg")
    assert main(["score", str(star), "--run", str(run), "-o", str(out), "--no-progress"]) == 2
    assert main(["score", str(star), "--run", str(run), "-o", str(run), "--no-progress"]) == 2
    again = ["score", str(star), "--run", str(run), "-o", str(out), "--no-progress", "--overwrite"]
    assert main(again) == 0
    assert np.array_equal(np.load(out / "named.npy"), named)  # the same scores again
    assert sorted(p.name for p in out.iterdir()) == [
        "kept.npy",
        "kept.pkl",
        "kept.star",
        "named.npy",
        "particle_scores.csv",
        "score.json",
        "scores.svg",
        "weights.npy",
    ]  # nothing temporary left beside them
    weights = np.load(out / "weights.npy")  # for reconstruct --weights: 1 − the junk chance
    junk = [float(line.split(",")[5]) for line in table[1:]]
    np.testing.assert_allclose(weights, 1.0 - np.array(junk), atol=6e-5)
    assert weights[named].max() < 0.5 <= weights[kept].min()
    record = json.loads((out / "score.json").read_text())
    assert record["run"] == str(run.resolve()) and record["particles"] == str(star.resolve())
    assert record["named"] == len(named) and record["kept"] == 120 - len(named)
    assert record["kept_metadata"] == str((out / "kept.star").resolve())
    assert record["shells_to_angstrom"] < record["run_resolution_angstrom"]
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cryosplat score output" in printed and f"run:          {run.resolve()}" in printed
    assert f"kept:         {120 - len(named)} " in printed
    assert np.array_equal(read_row_indices(out / "kept.pkl", 120), kept)  # cryoDRGN's --ind
    # the STAR file of the kept particles: the same rows, every value as written
    chosen = read_particles(out / "kept.star", datadir=star.parent)
    every = read_particles(star)
    kept = np.load(out / "kept.npy")
    assert len(chosen) == len(kept)
    np.testing.assert_array_equal(chosen.rotations, every.rotations[kept])
    np.testing.assert_array_equal(chosen.ctf.defocus_u_angstrom, every.ctf.defocus_u_angstrom[kept])
    np.testing.assert_array_equal(chosen.read_images([0, 1]), every.read_images(kept[:2]))


def test_scores_of_cryosparc_particles_write_the_kept_rows_as_a_cs(
    scored_run, shared_data, tmp_path
):
    star, run, _ = scored_run
    scored = score_run(read_particles(star), run, show_progress=False)
    table = np.load(shared_data / "metadata" / "cryosparc_P12_J24_001_particles.cs")
    cs = tmp_path / "P1_J9_particles.cs"
    with open(cs, "wb") as fh:
        np.save(fh, table[:120])  # the same count of rows: the scores stand for them
    summary = write_scores(tmp_path / "out", replace(scored, source=cs))
    assert summary["kept_metadata"] == str(tmp_path / "out" / "kept.cs")
    kept = np.load(tmp_path / "out" / "kept.npy")
    assert len(kept) == summary["kept"] < 120
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "kept.cs"), table[kept])
    assert not (tmp_path / "out" / "kept.star").exists()


def test_score_against_a_map_names_the_noise_images(scored_run, tiny_set, tmp_path, capsys):
    star, _, noise_rows = scored_run
    truth = tiny_set.parent / "truth.mrc"
    out = tmp_path / "against_map"
    command = ["score", str(star), "--map", str(truth), "-o", str(out), "--no-progress"]
    assert main([*command, "--resolution", "12"]) == 0
    named = np.load(out / "named.npy")
    assert np.isin(named, noise_rows).all() and np.isin(noise_rows, named).mean() > 0.8
    record = json.loads((out / "score.json").read_text())
    assert record["map"] == str(truth.resolve()) and record["run"] is None
    assert record["run_resolution_angstrom"] == 12.0
    assert record["shells_to_angstrom"] == pytest.approx(12.0 / 1.25)
    assert {
        line.split(",")[1] for line in (out / "particle_scores.csv").read_text().split()[1:]
    } == {"-"}
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert (
        f"map:          {truth.resolve()} (the resolution given 12.00 Å" in capsys.readouterr().out
    )
    # the same map at a smaller box of the same extent: the particles are cropped to it
    volume, voxel = read_map(truth)
    cropped = fourier_crop_volume(torch.as_tensor(volume), 16).numpy()
    write_map(tmp_path / "coarse.mrc", cropped, voxel * 24 / 16)
    particles = read_particles(star)
    full = score_against_map(particles, truth, resolution_angstrom=20.0, show_progress=False)
    coarse = score_against_map(  # (its Nyquist 12 Å: read to 16 Å on both)
        particles, tmp_path / "coarse.mrc", resolution_angstrom=20.0, show_progress=False
    )
    assert np.corrcoef(full.scores.z, coarse.scores.z)[0, 1] > 0.95
    assert coarse.shells_to_angstrom == pytest.approx(full.shells_to_angstrom)


def test_score_against_a_map_refuses_one_that_does_not_fit(scored_run, tiny_set, tmp_path):
    star, run, _ = scored_run
    volume, voxel = read_map(tiny_set.parent / "truth.mrc")
    particles = read_particles(star)
    write_map(tmp_path / "voxel.mrc", volume, voxel * 1.02)
    with pytest.raises(InputError, match="voxel 4.08.* the particles' pixel 4.0000"):
        score_against_map(particles, tmp_path / "voxel.mrc", show_progress=False)
    write_map(tmp_path / "large.mrc", np.pad(volume, 2), voxel)
    with pytest.raises(InputError, match="box 28, larger than the particles' 24"):
        score_against_map(particles, tmp_path / "large.mrc", show_progress=False)
    out = str(tmp_path / "o")
    given = ["score", str(star), "-o", out, "--no-progress"]
    assert main([*given, "--run", str(run), "--resolution", "10"]) == 2  # goes with --map only
    assert main([*given, "--run", str(run), "--dust-sds", "6"]) == 2  # a run records its own
    with pytest.raises(InputError, match="dust_sds must be 0"):
        score_against_map(particles, tiny_set.parent / "truth.mrc", dust_sds=2.0)
    with pytest.raises(SystemExit):  # one of --run and --map, not both
        main([*given, "--run", str(run), "--map", str(tmp_path / "voxel.mrc")])
    with pytest.raises(SystemExit):
        main([*given, "--map", str(tmp_path / "voxel.mrc"), "--resolution", "-3"])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "score.json").write_text("{not json")
    assert main(["info", str(tmp_path / "broken")]) == 2  # named, not a traceback


def test_score_reads_the_runs_own_particles_only(scored_run, tmp_path, tiny_set):
    star, run, _ = scored_run
    with pytest.raises(InputError, match="other particles|reconstructed 120"):
        score_run(read_particles(tiny_set), run, show_progress=False)  # the images differ
    with pytest.raises(InputError, match="reconstructed 120"):
        score_run(read_particles(star).subset(np.arange(60)), run, show_progress=False)
    with pytest.raises(InputError, match="no cryosplat run"):
        score_run(read_particles(star), tmp_path, show_progress=False)


def test_rows_in_file_follow_a_selection(tiny_set):
    particles = read_particles(tiny_set)
    assert particles.rows_in_file().tolist() == list(range(120))
    chosen = particles.subset(np.arange(10, 120, 3)).subset(np.array([0, 2]))
    assert chosen.rows_in_file().tolist() == [10, 16]


def test_info_names_the_score_command_for_a_complete_run(scored_run, capsys):
    star, run, _ = scored_run
    capsys.readouterr()
    assert main(["info", str(run)]) == 0
    assert f"score:        cryosplat score {star.resolve()} --run {run}" in capsys.readouterr().out


def test_the_shells_read_stop_past_the_maps_resolution(tiny_set):
    assert score_radius(56, 4.23, 20.0) == pytest.approx(1.25 * 56 * 4.23 / 20.0)
    assert score_radius(56, 4.23, None) == score_radius(56, 4.23, 1.0) == default_max_radius(56, 2)
    truth = read_map(tiny_set.parent / "truth.mrc")[0]
    particles = read_particles(tiny_set)
    rows = np.arange(len(particles))
    sums = shell_sums(particles, rows, truth, SampleReading(max_radius_px=6.0))
    assert sums.count[:, 7:].sum() == 0 and sums.count[:, 1:7].all()
    full = score_from_sums(shell_sums(particles, rows, truth)).z
    cut = score_from_sums(sums).z
    assert np.corrcoef(full, cut)[0, 1] > 0.9  # the signal's shells hold the score


def test_a_group_of_another_pixel_is_read_where_its_samples_land(two_sets):  # noqa: F811
    """Noise-free images of one half stored at 3.75 Å (Fourier-cropped from a larger box): the
    map's slices read back at their own frequencies match them as the 3 Å images of the same
    particles are matched (scale 1), out to the coarse group's Nyquist, and not past it."""
    single, mixed = two_sets
    volume = _wiener(single)
    rows = np.arange(len(single) // 2, len(single))
    for particles, shells in ((single, 11), (mixed, 10)):
        sums = shell_sums(particles, rows, volume)
        scale = sums.cross.sum(0)[1:shells] / sums.model.sum(0)[1:shells]
        assert np.all(np.abs(scale - 1) < 0.05), np.round(scale, 3)
    assert sums.count[:, 10:].sum() == 0  # past 12 px × 3 / 3.75 = 9.6: the coarse group has none
