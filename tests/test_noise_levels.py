"""Images whose noise level differs: measured in their corners, each weighed by 1/σ²."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_statistics import simulate_particles, write_star_of

from cryosplat.io.mrc import MRCStack, write_stack
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.grid.noise_levels import (
    MIN_SHARE,
    WEIGHT_RANGE,
    measure_noise_levels,
)
from cryosplat.reconstruct.splat.image_batches import image_batch

BOX, N = 24, 240


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Clean projections of one model with white noise added: at one level (``alike``), and
    with each image's sd times ``exp(0.4 z)`` (``spread``). Returns the two sets, the spread's
    true variance factors and the truth."""
    folder = tmp_path_factory.mktemp("levels")
    clean, truth, _ = simulate_particles(folder, n=N, box=BOX, noise=0.0, seed=11)
    images = clean.read_images(np.arange(N)).astype(np.float64)
    rng = np.random.default_rng(5)
    sd = 3.0 * float(images.std())
    factor = np.exp(0.4 * rng.standard_normal(N))
    out = {}
    for name, level in (("alike", np.ones(N)), ("spread", factor)):
        noisy = images + sd * level[:, None, None] * rng.standard_normal(images.shape)
        path = folder / f"{name}.mrcs"
        write_stack(path, noisy.astype(np.float32), clean.pixel_size_angstrom)
        out[name] = replace(clean, stacks=[MRCStack(path)])
    return out, factor**2, truth


def test_images_at_one_level_are_weighed_alike(sets, caplog):
    """The corners' spread is what their estimation noise explains: no weights, and the log
    says so."""
    particles = sets[0]["alike"]
    with caplog.at_level(logging.INFO, logger="cryosplat"):
        assert measure_noise_levels(particles) is None
    assert any("weighed alike" in r.getMessage() for r in caplog.records)


def test_spread_levels_are_found_and_each_weight_follows_its_image(sets):
    """With levels spread by exp(0.4 z) the images' own share is near 1, the weights fall as
    the true variance rises (log-correlation over 0.9), average 1 and stay in range."""
    spread, variance, _ = sets
    levels = measure_noise_levels(spread["spread"])
    assert levels is not None and levels.share > MIN_SHARE
    assert levels.share > 0.8
    w = levels.weights(torch.from_numpy(spread["spread"].read_images(np.arange(N)))).double()
    r = np.corrcoef(np.log(w.numpy()), -np.log(variance))[0, 1]
    assert r > 0.9
    assert abs(float(w.mean()) - 1.0) < 0.05
    assert float(w.min()) >= 1 / WEIGHT_RANGE - 1e-12 and float(w.max()) <= WEIGHT_RANGE
    assert "weighed by the inverse of its noise variance" in levels.describe()


@pytest.mark.parametrize("symmetry", ["C1", "C2", "C3"])
def test_a_weight_is_the_image_and_its_ctf_scaled_by_its_root(sets, symmetry):
    """Weighing image i by w_i in the squared error is the same as scaling the image and its
    CTF (rlnCtfScalefactor) by √w_i, unweighed: W, B and the data power agree (C2: the grids
    rotated; C3: each image inserted once per operator)."""
    spread = sets[0]["spread"]
    levels = measure_noise_levels(spread)
    images = spread.read_images(np.arange(N))
    w = levels.weights(torch.from_numpy(images)).double().numpy()
    config = AccumulateConfig(noise_levels=levels, symmetry=symmetry)
    weighed = accumulate(spread, config=config)
    root = np.sqrt(w)
    path = spread.stacks[0].path.with_name(f"scaled_{symmetry}.mrcs")
    write_stack(path, (images * root[:, None, None]).astype(np.float32), spread.pixel_size_angstrom)
    scaled = replace(
        spread,
        stacks=[MRCStack(path)],
        ctf=replace(spread.ctf, scale=spread.ctf.scale * root),
    )
    plain = accumulate(scaled, config=AccumulateConfig(symmetry=symmetry))
    for a, b in ((weighed.weights, plain.weights), (weighed.data, plain.data)):
        assert float((a - b).abs().max()) <= 1e-4 * float(b.abs().max())
    assert np.isclose(weighed.data_power, plain.data_power, rtol=1e-4)


def test_an_offset_taken_off_weighed_images_leaves_their_sums(sets, tmp_path):
    """The background level is taken off with the weighed sums: a constant added to every
    weighed image leaves W, B and the data power as they were (its level is read from the
    corners' mean, its weights from their variance, which the constant moves only by the
    float32 rounding of the stored pixels)."""
    spread = sets[0]["spread"]
    levels = measure_noise_levels(spread)
    images = spread.read_images(np.arange(N))
    k = np.arange(BOX) - BOX // 2
    corners = (k[:, None] ** 2 + k[None, :] ** 2) >= (BOX / 2) ** 2
    images = images - images[:, corners].mean(axis=1)[:, None, None]  # normalised
    config = AccumulateConfig(noise_levels=levels)
    made = []
    for name, added in (("normalised", 0.0), ("offset", 3.0 * float(images.std()))):
        path = tmp_path / f"{name}.mrcs"
        write_stack(path, images + added, spread.pixel_size_angstrom)
        made.append(accumulate(replace(spread, stacks=[MRCStack(path)]), config=config))
    clean, shifted = made
    for a, b in ((shifted.weights, clean.weights), (shifted.data, clean.data)):
        assert float((a - b).abs().max()) <= 1e-4 * float(b.abs().max())
    assert np.isclose(shifted.data_power, clean.data_power, rtol=1e-5)


def test_the_weighed_inversion_lies_closer_to_the_truth(sets):
    """The maximum-likelihood weights give a direct inversion nearer the truth than weighing
    every image alike (the noisiest images count for less)."""
    spread, _, truth = sets
    particles = spread["spread"]
    levels = measure_noise_levels(particles)
    errors = []
    for noise_levels in (None, levels):
        stats = accumulate(particles, config=AccumulateConfig(noise_levels=noise_levels))
        volume = stats.reconstruct_wiener(0.05).cpu().double().numpy()
        scale = float((volume * truth).sum() / (volume * volume).sum())
        errors.append(float(np.linalg.norm(scale * volume - truth) / np.linalg.norm(truth)))
    assert errors[1] < 0.95 * errors[0]


def test_corners_without_noise_leave_the_images_alike(sets, tmp_path, caplog):
    """A masked image (zero corners) says nothing of the noise: no weights, with a note."""
    particles = sets[0]["spread"]
    images = particles.read_images(np.arange(N))
    k = np.arange(BOX) - BOX // 2
    images[3][(k[:, None] ** 2 + k[None, :] ** 2) >= (BOX / 2) ** 2] = 0.0
    path = tmp_path / "masked.mrcs"
    write_stack(path, images, particles.pixel_size_angstrom)
    with caplog.at_level(logging.INFO, logger="cryosplat"):
        assert measure_noise_levels(replace(particles, stacks=[MRCStack(path)])) is None
    assert any("hold no noise" in r.getMessage() for r in caplog.records)
    # Met in a run whose sample missed it, such an image weighs 1, not the most.
    weights = measure_noise_levels(particles).weights(torch.from_numpy(images[:6]))
    assert float(weights[3]) == 1.0 and float(weights.min()) < float(weights.max())


def test_the_per_image_engine_weighs_its_batch_as_the_pass(sets):
    """The per-image engine's batch carries the same weights as the statistics pass's."""
    particles = sets[0]["spread"]
    levels = measure_noise_levels(particles)
    rows = np.arange(10)
    weights = image_batch(particles, rows, "cpu", 1.0, 0.0, levels).weights
    expected = levels.weights(torch.from_numpy(particles.read_images(rows)))
    assert torch.allclose(weights, expected)
    assert image_batch(particles, rows, "cpu", 1.0).weights is None


def test_info_says_whether_a_run_will_weigh_the_images(sets, tmp_path, capsys):
    from cryosplat.cli.main import main

    for name, expected in (("alike", "noise levels: alike"), ("spread", "noise levels: differ")):
        star = write_star_of(sets[0][name], tmp_path / f"{name}.star")
        assert main(["info", str(star)]) == 0
        lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("noise levels:")]
        assert len(lines) == 1 and lines[0].startswith(expected)


@pytest.mark.parametrize(("given", "expected"), [([], True), (["--image-weights", "off"], False)])
def test_the_command_line_turns_the_weights_off(given, expected):
    import argparse

    from cryosplat.cli.reconstruct import add_arguments, build_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = build_config(parser.parse_args(["particles.star", "-o", "out", *given]))
    assert config.grid.image_weights is expected


def _two_kinds(particles, images, folder, name):
    """``particles`` with ``images``, odd rows in an optics group read at a 1.25 times coarser
    pixel (another kind of image)."""
    from cryosplat.particles.particle_set import OpticsGroup

    path = folder / f"{name}.mrcs"
    write_stack(path, images.astype(np.float32), particles.pixel_size_angstrom)
    pixel = particles.pixel_size_angstrom
    return replace(
        particles,
        stacks=[MRCStack(path)],
        optics_group=np.arange(len(particles)) % 2,
        optics=[
            OpticsGroup("fine", pixel, BOX, 300.0, 2.7, 0.1),
            OpticsGroup("coarse", 1.25 * pixel, BOX, 300.0, 2.7, 0.1),
        ],
    )


def test_kinds_of_image_are_compared_within_their_kind(sets, tmp_path):
    """A group whose pixels hold a quarter of the others' variance (as binned pixels do) is not
    weighed up for it: each kind's corners are read against their own kind's mean."""
    alike, spread = sets[0]["alike"], sets[0]["spread"]
    odd = np.arange(N) % 2 == 1
    images = alike.read_images(np.arange(N)).astype(np.float64)
    images[odd] *= 0.5
    two = _two_kinds(alike, images, tmp_path, "alike")
    assert two.image_kinds().tolist() == (np.arange(N) % 2).tolist()
    assert measure_noise_levels(two) is None  # alike within each kind
    one_kind = replace(two, optics=[replace(g, pixel_size_angstrom=1.0) for g in two.optics])
    assert not one_kind.image_kinds().any()
    levels = measure_noise_levels(one_kind)  # read as one kind, the quarter is weighed up
    w = levels.weights(torch.from_numpy(images.astype(np.float32))).double().numpy()
    assert w[odd].mean() > 2.5 * w[~odd].mean()
    # levels spread within each kind are still followed
    images = spread.read_images(np.arange(N)).astype(np.float64)
    images[odd] *= 0.5
    two = _two_kinds(spread, images, tmp_path, "spread")
    levels = measure_noise_levels(two)
    assert levels is not None and levels.share > 0.8 and len(levels.kind_means) == 2
    kinds = two.image_kinds()
    w = levels.weights(torch.from_numpy(images.astype(np.float32)), kinds).double().numpy()
    assert 0.8 < w[odd].mean() / w[~odd].mean() < 1.25
    r = np.corrcoef(np.log(w), -np.log(sets[1]))[0, 1]
    assert r > 0.9


def test_pixel_sizes_a_magnification_refinement_moves_are_one_kind():
    """Groups at 1.0, 1.004 and 0.998 Å (a magnification refined per group) are weighed as one
    kind, their levels compared across them; 1.25 Å (a binning) and a padded band are others."""
    from cryosplat.particles.particle_set import OpticsGroup, ParticleSet, StoredImages

    def group(name, pixel, stored=None):
        return OpticsGroup(name, pixel, BOX, 300.0, 2.7, 0.1, stored)

    optics = [
        group("a", 1.0),
        group("b", 1.004),
        group("c", 0.998),
        group("d", 1.25),
        group("e", 1.0, StoredImages(12, 2.0, 5.0)),
        group("f", 1.26),
    ]
    ps = ParticleSet(BOX, 1.0, [], np.zeros(6, int), np.arange(6), optics_group=np.arange(6))
    ps.optics = optics
    assert ps.image_kinds().tolist() == [0, 0, 0, 1, 2, 1]
    ps.optics = optics[:3]
    ps.optics_group = np.array([0, 1, 2, 0, 1, 2])
    assert not ps.image_kinds().any()
