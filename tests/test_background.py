"""The images' background level: measured in their corners and taken off their zero frequency."""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_statistics import simulate_particles, write_star_of

from cryosplat.io.mrc import MRCStack, write_stack
from cryosplat.reconstruct.grid.background import (
    TAKE_OFF_FRACTION,
    BackgroundMeter,
    background_level,
    remove_background,
)
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.splat.image_batches import image_batch

BOX = 24


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same particles twice: normalised as relion_preprocess does (each image's corners at
    mean zero; as simulated, they hold the CTF's zero frequency of the projection, spread over
    the box), and with 3 × the noise's sd added to every pixel."""
    folder = tmp_path_factory.mktemp("background")
    particles, _, _ = simulate_particles(folder, n=60, box=BOX, noise=1.0, seed=4)
    images = particles.read_images(np.arange(60))
    k = np.arange(BOX) - BOX // 2
    corners = (k[:, None] ** 2 + k[None, :] ** 2) >= (BOX / 2) ** 2
    images = images - images[:, corners].mean(axis=1)[:, None, None]
    sets = []
    for name, added in (("normalised", 0.0), ("offset", 3.0 * float(images.std()))):
        path = folder / f"{name}.mrcs"
        write_stack(path, images + added, particles.pixel_size_angstrom)
        sets.append(replace(particles, stacks=[MRCStack(path)]))
    return sets


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> bool:
    return float((a - b).abs().max()) <= rtol * float(b.abs().max())


@pytest.mark.parametrize("symmetry", ["C1", "C2", "C3"])
def test_an_offset_in_every_pixel_leaves_the_statistics_as_they_were(pair, symmetry, caplog):
    """A constant added to every image is measured in the corners and taken off: W, B and the
    data power are those of the images without it (to 1e-4 of the largest value: B's zero
    frequency is summed in float32 with the offset in it), and the run warns; with the offset left in, B's zero frequency and the power differ."""
    plain, offset = pair
    config = AccumulateConfig(symmetry=symmetry)
    with caplog.at_level(logging.INFO, logger="cryosplat"):
        clean = accumulate(plain, config=config)
        shifted = accumulate(offset, config=config)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "normalised" in warnings[0].getMessage()
    assert shifted.background_sums is None and clean.background_sums is None
    assert any(note.startswith("background:") for note in shifted.notes)
    assert torch.equal(shifted.weights, clean.weights)
    assert _close(shifted.data, clean.data, 1e-4)
    assert np.isclose(shifted.data_power, clean.data_power, rtol=1e-5)
    kept = accumulate(offset, config=config, take_off_background=False)
    centre = kept.padded_box // 2
    assert abs(kept.data[centre, centre, 0]) > 10 * abs(clean.data[centre, centre, 0])
    assert not np.isclose(kept.data_power, clean.data_power, rtol=1e-3)
    again = remove_background(kept)
    assert again.background_sums is None and _close(again.data, clean.data, 1e-4)


def test_only_the_zero_frequency_moves_and_shares_sum_to_the_whole(pair):
    """Taking the level off changes B at K = 0 alone; the sums of disjoint parts add (a
    distributed pass's shares) and the whole taken off once equals the pass over every image."""
    _, offset = pair
    kept = accumulate(offset, take_off_background=False)
    taken = remove_background(kept)
    differs = (taken.data != kept.data).nonzero()
    centre = kept.padded_box // 2
    assert differs.tolist() == [[centre, centre, 0]]
    parts = accumulate(offset, np.arange(25), take_off_background=False) + accumulate(
        offset, np.arange(25, 60), take_off_background=False
    )
    assert torch.allclose(parts.background_sums, kept.background_sums, rtol=1e-9)
    assert _close(remove_background(parts).data, taken.data, 1e-5)
    with pytest.raises(ValueError, match="background taken off and without"):
        _ = taken + kept
    with pytest.raises(ValueError, match="before saving"):
        kept.save(offset.stacks[0].path.with_suffix(".npz"))


def test_a_level_a_molecule_can_make_is_left_and_logged(pair, tmp_path, caplog):
    """Normalised images, and a level under TAKE_OFF_FRACTION of the noise's sd (what a map's own
    edge or the CTF's delocalised signal puts in the corners), leave the sums as gathered, to the
    bit, with the level in the log and the notes; just over it, the level is taken off."""
    plain, _ = pair
    images = plain.read_images(np.arange(60))
    k = np.arange(BOX) - BOX // 2
    noise_sd = float(images[:, (k[:, None] ** 2 + k[None, :] ** 2) >= (BOX / 2) ** 2].std())
    for name, share, taken in (
        ("normalised", 0.0, False),
        ("under", 0.8, False),
        ("over", 1.25, True),
    ):
        path = tmp_path / f"{name}.mrcs"
        write_stack(path, images + share * TAKE_OFF_FRACTION * noise_sd, plain.pixel_size_angstrom)
        particles = replace(plain, stacks=[MRCStack(path)])
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="cryosplat"):
            stats = accumulate(particles)
        kept = accumulate(particles, take_off_background=False)
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert bool(warned) == taken, name
        assert torch.equal(stats.data, kept.data) != taken, name
        note = stats.notes[-1]
        assert note.startswith("background:") and (", taken off" in note) == taken, name
        assert (background_level(particles, np.arange(60)) != 0.0) == taken, name


@pytest.mark.parametrize("heldout", [0.0, 0.2])
def test_a_runs_log_names_the_half_each_background_level_was_read_on(tmp_path, heldout):
    """Each half set's images (and each held-out part) log their level once, named, so the two
    lines a run writes are not read as one set's, twice."""
    from cryosplat.cli.main import main

    particles, _, _ = simulate_particles(tmp_path / "d", n=60)
    star = write_star_of(particles, tmp_path / "d" / "p.star", np.arange(60) % 2 + 1)
    out = tmp_path / "run"
    fast = ["--stage-steps", "2", "--stage-fractions", "1.0", "--n-gaussians", "20"]
    args = [*fast, "--heldout-fraction", str(heldout), "--no-progress"]
    assert main(["reconstruct", str(star), "-o", str(out), *args]) == 0
    lines = [line for line in (out / "log.txt").read_text().splitlines() if "background" in line]
    labels = [
        line.split(" background ", 1)[1].split(":", 1)[0] for line in lines if "corners" in line
    ]
    wanted = ["(half A)", "(half B)"]
    if heldout:
        wanted += ["(half A, held out)", "(half B, held out)"]
    assert sorted(labels) == sorted(wanted)


def test_the_per_image_engine_takes_the_level_off_each_image(pair):
    """The per-image engine measures the level on a spread of each half's images (all of them
    here) and fits the images less it: the offset set's spectra are then the normalised set's."""
    plain, offset = pair
    rows = np.arange(60)
    added = float(offset.read_images(rows[:1])[0, 0, 0] - plain.read_images(rows[:1])[0, 0, 0])
    level = background_level(offset, rows)
    assert abs(level - added) < 1e-3 * added
    assert abs(background_level(plain, rows)) < 1e-4 * added
    assert abs(background_level(offset, rows, max_images=7) - level) < 0.05 * added
    spectra = image_batch(offset, rows[:8], "cpu", 1.0, level).data
    reference = image_batch(plain, rows[:8], "cpu", 1.0).data
    assert _close(spectra, reference, 1e-5)


def test_info_says_whether_the_images_are_normalised(pair, tmp_path, capsys):
    from cryosplat.cli.main import main

    for particles, expected in zip(pair, ("(normalised)", "not at zero"), strict=True):
        star = write_star_of(particles, tmp_path / f"{expected[:4]}.star")
        assert main(["info", str(star)]) == 0
        line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("background:")]
        assert len(line) == 1 and expected in line[0] and "in 60 images" in line[0]


def test_a_batch_wholly_left_out_adds_nothing_and_warns_nothing():
    meter = BackgroundMeter(16, torch.device("cpu"))
    images = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meter.add_images(images, torch.zeros(3))
    assert torch.equal(meter.sums, torch.zeros_like(meter.sums))
    meter.add_images(images, torch.tensor([0.0, 1.0, 1.0]))
    assert float(meter.sums[0]) == 2
