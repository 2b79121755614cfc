"""Hot pixels and dust (``cryosplat.particles.dust``): single far-out pixels replaced by their
neighbours' median as the images are read, nothing else touched; a run counts them."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
from test_robust_cases import FAST, run_cli, status, write_set

from cryosplat.cli.main import main
from cryosplat.core.errors import InputError
from cryosplat.io.mrc import MRCStack, write_map
from cryosplat.particles.downsample import (
    ResampledStack,
    downsample_particles,
    fourier_resample_images,
)
from cryosplat.particles.dust import (
    DustFreeStack,
    dust_counts,
    remove_dust,
    restore_dust_counts,
    save_dust_counts,
    without_dust,
)
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.config import ReconstructConfig
from cryosplat.reconstruct.score_run import score_against_map

# (image, y, x, value in noise s.d.s): inside, on an edge, in a corner, dark and bright
HOT = ((0, 20, 11, 25.0), (0, 0, 30, -18.0), (3, 63, 63, 40.0), (5, 7, 0, -30.0))


def _noise(n: int = 8, box: int = 64) -> np.ndarray:
    return np.random.default_rng(3).normal(size=(n, box, box)).astype(np.float32)


def _planted() -> tuple[np.ndarray, np.ndarray]:
    clean = _noise()
    hot = clean.copy()
    for b, y, x, value in HOT:
        hot[b, y, x] = value
    return clean, hot


def test_hot_pixels_take_their_neighbours_median_and_nothing_else_changes():
    clean, hot = _planted()
    out, replaced = remove_dust(hot)
    changed = out != hot
    assert sorted(zip(*np.nonzero(changed), strict=True)) == sorted((b, y, x) for b, y, x, _ in HOT)
    for b, y, x, _ in HOT:  # the median of the eight neighbours, the edge reflected
        padded = np.pad(hot[b], 1, mode="reflect")
        window = padded[y : y + 3, x : x + 3].ravel()
        assert out[b, y, x] == pytest.approx(np.median(np.delete(window, 4)))
        assert abs(out[b, y, x] - clean[b, y, x]) < 4.0  # back within the noise
    np.testing.assert_array_equal(replaced, [2, 0, 0, 1, 0, 1, 0, 0])
    # noise alone: the same array back, none replaced
    same, none = remove_dust(clean)
    assert same is clean and not none.any()
    with pytest.raises(ValueError, match="sds must be positive"):
        remove_dust(clean, 0.0)


def test_density_wider_than_a_pixel_and_absurd_pixels_are_left_alone():
    images = _noise(4)
    yy, xx = np.indices((64, 64))
    images[0] += 14.0 * np.exp(-((yy - 30) ** 2 + (xx - 33) ** 2) / (2 * 2.0**2))  # density
    images[1, 40, 40] = 3e38  # a corrupt file's pixel: left for the reader's check to refuse
    images[2, 5, 5], images[3, 6, 6] = np.nan, np.inf  # the same, and read without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, replaced = remove_dust(images)
    np.testing.assert_array_equal(out, images)
    assert not replaced.any()
    # the blob's peak stands 14 s.d.s out: only its neighbours' test keeps it
    assert np.abs(images[0] - images[0].mean()).max() > 8.0 * images[0].std()


def test_a_cropped_set_is_cleaned_at_the_pixels_it_was_recorded_at(tmp_path):
    def poison(images):
        images[4, 8, 8] = 30.0

    particles = read_particles(write_set(tmp_path / "d", image=poison))
    raw = particles.read_images(np.arange(10))
    cropped = without_dust(downsample_particles(particles, 8))
    stack = cropped.stacks[0]
    assert isinstance(stack, ResampledStack) and isinstance(stack.stack, DustFreeStack)
    np.testing.assert_allclose(
        cropped.read_images(np.arange(10)),
        fourier_resample_images(remove_dust(raw)[0], 8),
        atol=1e-5,
    )
    assert cropped.pixel_size_angstrom == 2 * particles.pixel_size_angstrom
    assert dust_counts(cropped) == (1, 1, 10)
    # resampled to a finer pixel at the same box (a mixed-box set's larger field): cleaned first
    finer = replace(particles, stacks=[ResampledStack(particles.stacks[0], 16, 24)])
    assert isinstance(without_dust(finer).stacks[0].stack, DustFreeStack)


def test_a_set_read_without_dust_counts_what_it_replaced(tmp_path, capsys):
    def poison(images):
        images[4, 8, 8] = 30.0
        images[9, 0, 15] = -25.0
        images[9, 3, 3] = 20.0

    star = write_set(tmp_path / "d", image=poison)
    particles = read_particles(star)
    cleaned = without_dust(particles)
    assert dust_counts(cleaned) == (0, 0, 0)  # nothing read yet
    images = cleaned.read_images(np.arange(20))
    assert dust_counts(cleaned) == (3, 2, 20)
    assert np.abs(images).max() < 6.0
    assert np.abs(particles.read_images([4])).max() == pytest.approx(30.0)  # the file as it is
    cleaned.read_images(np.arange(20))  # read again: counted once
    assert dust_counts(cleaned) == (3, 2, 20)
    assert without_dust(cleaned).stacks[0] is cleaned.stacks[0]
    assert without_dust(particles, 0.0) is particles
    # info reads a sample as reconstruct will (all 40 here)
    capsys.readouterr()
    assert main(["info", str(star)]) == 0
    assert "hot pixels:   3 in 2 of 40 images (beyond 8 s.d.s" in capsys.readouterr().out


def test_a_run_replaces_hot_pixels_by_default_and_keeps_them_with_zero(tmp_path, capsys):
    def poison(images):
        images[4, 8, 8] = 30.0
        images[21, 2, 13] = -25.0

    star = write_set(tmp_path / "d", image=poison)
    out = tmp_path / "run"
    code, err = run_cli(capsys, "reconstruct", star, "-o", out, *FAST)
    assert code == 0, err
    assert "hot pixels: 2 replaced in 2 of 40 images read" in (out / "log.txt").read_text()
    summary = status(out)["summary"]
    assert summary["hot_pixels"] == {"sds": 8.0, "pixels": 2, "images": 2, "images_read": 40}
    assert status(out)["identity"]["dust_sds"] == 8.0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "hot pixels:   2 replaced in 2 of 40 images (beyond 8 s.d.s" in capsys.readouterr().out
    out0 = tmp_path / "run0"
    code, err = run_cli(capsys, "reconstruct", star, "-o", out0, "--dust-sds", "0", *FAST)
    assert code == 0, err
    assert "hot pixels" not in (out0 / "log.txt").read_text()
    assert "hot_pixels" not in status(out0)["summary"]
    with pytest.raises(InputError, match="dust_sds must be 0"):
        ReconstructConfig(dust_sds=2.0).validate()


def test_the_real_stacks_hold_no_hot_pixel_at_the_default(shared_data):
    for path in sorted((shared_data / "particles").glob("*/*.mrc*")):
        stack = MRCStack(path)
        assert not remove_dust(stack.read(np.arange(stack.n_images)))[1].any(), path.name


def test_score_against_a_map_reads_the_images_without_their_hot_pixels(tmp_path, caplog):
    def poison(images):
        images[4, 8, 8] = 30.0

    particles = read_particles(write_set(tmp_path / "d", image=poison))
    volume = np.random.default_rng(2).normal(size=(16, 16, 16)).astype(np.float32)
    write_map(tmp_path / "map.mrc", volume, 3.0)
    kept = score_against_map(particles, tmp_path / "map.mrc", dust_sds=0, show_progress=False)
    with caplog.at_level("INFO", logger="cryosplat"):
        cleaned = score_against_map(particles, tmp_path / "map.mrc", show_progress=False)
    assert "hot pixels: 1 replaced in 1 of 40 images read" in caplog.text
    # a pixel of 30 s.d.s in 256: the image read as 4.5 times as noisy as the set, then as the rest
    assert kept.scores.noise_scale[4] > 3.0 and cleaned.scores.noise_scale[4] < 1.5


def test_a_run_from_before_the_setting_resumes_where_every_pixel_is_kept(tmp_path, capsys):
    star = write_set(tmp_path / "d")
    out = tmp_path / "run"
    first = ("reconstruct", star, "-o", out, "--dust-sds", "0", "--keep-checkpoints", *FAST)
    code, err = run_cli(capsys, *first)
    assert code == 0, err
    record = status(out)
    del record["identity"]["dust_sds"]  # as a run made before the setting records it
    (out / "run.json").write_text(json.dumps(record))
    code, err = run_cli(capsys, "reconstruct", star, "-o", out, "--resume", *FAST)
    assert code == 2 and "dust_sds 0.0 → 8.0" in err  # the value that reads as it did, named
    again = ("reconstruct", star, "-o", out, "--resume", "--dust-sds", "0", *FAST)
    code, err = run_cli(capsys, *again)
    assert code == 0, err


def test_the_counts_are_saved_and_taken_back_for_the_images_not_read_again(tmp_path):
    def poison(images):
        images[4, 8, 8] = 30.0
        images[21, 2, 13] = -25.0
        images[30, 5, 5] = 40.0

    particles = without_dust(read_particles(write_set(tmp_path / "d", image=poison)))
    particles.stacks[0].read(np.arange(25))
    save_dust_counts(particles, tmp_path / "counts.npz")
    again = without_dust(read_particles(write_set(tmp_path / "d", image=poison)))
    again.stacks[0].read(np.arange(20, 40))  # read since: their own counts
    assert restore_dust_counts(again, tmp_path / "counts.npz")
    assert dust_counts(again) == (3, 3, 40)
    fresh = without_dust(read_particles(write_set(tmp_path / "d", image=poison)))
    assert restore_dust_counts(fresh, tmp_path / "counts.npz")
    assert dust_counts(fresh) == (2, 2, 25)
    other = without_dust(read_particles(write_set(tmp_path / "e", n=12)))
    assert not restore_dust_counts(other, tmp_path / "counts.npz")  # another set's stacks
    assert not restore_dust_counts(fresh, tmp_path / "missing.npz")
    assert dust_counts(other) == (0, 0, 0)


def test_a_run_interrupted_after_its_statistics_keeps_its_hot_pixel_count(
    tmp_path, capsys, monkeypatch
):
    import cryosplat.reconstruct.grid.engine as engine

    def poison(images):
        images[4, 8, 8] = 30.0
        images[21, 2, 13] = -25.0

    star = write_set(tmp_path / "d", image=poison)
    out = tmp_path / "run"
    fit = engine.fit_gaussians

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "fit_gaussians", interrupted)
    code, _ = run_cli(capsys, "reconstruct", star, "-o", out, *FAST)
    assert code != 0 and status(out)["status"] == "interrupted"
    # what the statistics pass read is kept beside its checkpoints
    kept = without_dust(read_particles(star))
    assert restore_dust_counts(kept, out / "checkpoints" / "dust_counts.npz")
    assert dust_counts(kept) == (2, 2, 40)
    monkeypatch.setattr(engine, "fit_gaussians", fit)
    code, err = run_cli(capsys, "reconstruct", star, "-o", out, "--resume", *FAST)
    assert code == 0, err
    # the resumed run read its statistics from the checkpoints, not the images
    log = (out / "log.txt").read_text()
    assert log.count("hot pixels: 2 replaced in 2 of 40 images read") == 1
    assert status(out)["summary"]["hot_pixels"]["images_read"] == 40
