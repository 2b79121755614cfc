"""The statistics pass saved part way: an interrupted pass continues to the same sums, to the bit."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pytest
import torch

from cryosplat.core.progress import Progress
from cryosplat.io.mrc import read_map
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid import gather, gather_checkpoint, half_statistics
from cryosplat.reconstruct.grid.engine import GridEngineConfig
from cryosplat.reconstruct.grid.fit import GridFitConfig
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.run import ReconstructConfig, reconstruct
from cryosplat.reconstruct.run_summary import read_run


class Stop(Exception):
    pass


def _stopping_after(n_particles: int):
    def progress(done, total):
        if done >= n_particles:
            raise Stop

    return progress


def _same(a, b) -> None:
    assert a.n_particles == b.n_particles
    for name in ("weights", "data", "power"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


@pytest.fixture
def save_always(monkeypatch):
    monkeypatch.setattr(gather_checkpoint, "PARTIAL_EVERY_S", 0.0)


@pytest.mark.parametrize("symmetry", ["C1", "C2", "C3"])  # plain, grids rotated, poses expanded
def test_an_interrupted_pass_continues_to_the_same_sums(
    tiny_set, tmp_path, save_always, caplog, symmetry
):
    particles = read_particles(tiny_set)
    config = AccumulateConfig(batch_size=4, symmetry=symmetry)
    whole = accumulate(particles, None, config)
    partial = tmp_path / "stats.partial0.npz"
    with pytest.raises(Stop):  # 30 batches; stopped after batch 20, saved at a flush before
        accumulate(particles, None, config, _stopping_after(80), partial=partial)
    assert partial.is_file()
    seen, before = [], []

    def progress(k, n, resumed=False):
        (before if resumed else seen).append(k)

    with caplog.at_level(logging.INFO, logger="cryosplat"):
        resumed = accumulate(particles, None, config, progress, partial=partial)
    _same(resumed, whole)
    first = seen[0]
    assert 4 < first <= 84 and "continues at particle" in caplog.text  # not from the start
    assert len(seen) == (120 - first) // 4 + 1
    assert before == [first - 4]  # the saved particles, reported once as done before this run


def test_an_interrupted_pass_keeps_the_rows_it_left_out(tiny_set, tmp_path, save_always):
    from cryosplat.reconstruct.grid.background_structure import structure_ratios
    from cryosplat.reconstruct.grid.noise_levels import NoiseLevels

    particles = read_particles(tiny_set)
    ratios = structure_ratios(torch.from_numpy(particles.read_images(np.arange(120))))
    limit = float(ratios.median())  # half the images past it
    levels = NoiseLevels(0.0, 0.1, 1.0, 0.0, structure_limits=(limit,), structure_sampled=(1, 2))
    config = AccumulateConfig(batch_size=4, noise_levels=levels)
    whole = accumulate(particles, None, config)
    past = np.flatnonzero((ratios > limit).numpy())
    assert 40 < past.size < 80
    np.testing.assert_array_equal(whole.left_out_rows, past)
    partial = tmp_path / "stats.partial0.npz"
    with pytest.raises(Stop):
        accumulate(particles, None, config, _stopping_after(80), partial=partial)
    resumed = accumulate(particles, None, config, partial=partial)
    _same(resumed, whole)
    np.testing.assert_array_equal(resumed.left_out_rows, past)
    # the statistics file keeps them; one written before it held them reads as none
    resumed.save(tmp_path / "stats.npz")
    back = type(resumed).load(tmp_path / "stats.npz")
    np.testing.assert_array_equal(back.left_out_rows, past)
    replace(resumed, left_out_rows=None).save(tmp_path / "old.npz")
    assert type(resumed).load(tmp_path / "old.npz").left_out_rows is None
    # no limit: none recorded
    assert accumulate(particles, None, AccumulateConfig(batch_size=4)).left_out_rows is None


def test_a_pass_saved_for_other_rows_or_settings_starts_afresh(tiny_set, tmp_path, save_always):
    particles = read_particles(tiny_set)
    config = AccumulateConfig(batch_size=4)
    partial = tmp_path / "p.npz"
    with pytest.raises(Stop):
        accumulate(particles, np.arange(100), config, _stopping_after(60), partial=partial)
    for rows, other in ((np.arange(1, 101), config), (np.arange(100), replace(config, pad=1))):
        seen = []
        got = accumulate(particles, rows, other, lambda k, n, s=seen: s.append(k), partial=partial)
        assert seen[0] == 4  # from the first batch
        _same(got, accumulate(particles, rows, other))


def test_an_unreadable_partial_file_is_ignored_with_a_warning(tiny_set, tmp_path, caplog):
    particles = read_particles(tiny_set)
    partial = tmp_path / "p.npz"
    partial.write_bytes(b"not an npz")
    with caplog.at_level(logging.WARNING, logger="cryosplat"):
        got = accumulate(particles, None, AccumulateConfig(batch_size=16), partial=partial)
    assert "starts afresh" in caplog.text
    _same(got, accumulate(particles, None, AccumulateConfig(batch_size=16)))


def test_a_pass_that_cannot_be_saved_goes_on_with_a_warning(
    tiny_set, tmp_path, save_always, monkeypatch, caplog
):
    particles = read_particles(tiny_set)
    config = AccumulateConfig(batch_size=4)
    calls = []

    def full_disk(*args, **kwargs):
        calls.append(1)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gather_checkpoint.np, "savez", full_disk)
    with caplog.at_level(logging.WARNING, logger="cryosplat"):
        got = accumulate(particles, None, config, partial=tmp_path / "p.npz")
    assert len(calls) == 1 and "could not be saved part way" in caplog.text  # tried once
    assert not list(tmp_path.iterdir())  # no temporary file left
    monkeypatch.undo()
    _same(got, accumulate(particles, None, config))


def test_a_run_interrupted_in_its_statistics_pass_resumes_to_the_same_map(
    tiny_set, tmp_path, save_always, monkeypatch
):
    particles = read_particles(tiny_set)
    fit = GridFitConfig(stage_fractions=(0.5, 1.0), stage_steps=(12, 10))
    grid = GridEngineConfig(fit=fit, accumulate=AccumulateConfig(batch_size=4))
    config = ReconstructConfig(n_gaussians=60, seed=0, device="cpu", grid=grid)
    reconstruct(particles, tmp_path / "whole", config, show_progress=False)

    real = gather.device_batches

    def dying(*args, **kwargs):  # the first pass of each half stops after ten batches
        for number, batch in enumerate(real(*args, **kwargs)):
            if number == 10:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(gather, "device_batches", dying)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        reconstruct(particles, out, config, show_progress=False)
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert sorted(p.name for p in (out / "checkpoints").glob("*partial*"))  # saved part way
    progress = read_run(out).checkpoint_progress  # as `cryosplat info` shows it
    # the half that stopped itself saved at batch 8; the other, stopped at its next step, may have
    assert 1 <= len(progress) <= 2
    assert all("statistics pass saved at particle" in p for p in progress)
    assert all(p.endswith(" of 60") for p in progress)
    monkeypatch.setattr(gather, "device_batches", real)
    bars = []

    class Recorded(Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.read_back = 0.0
            bars.append(self)

        def resumed(self, units):
            super().resumed(units)
            self.read_back += units

    monkeypatch.setattr(half_statistics, "Progress", Recorded)
    reconstruct(particles, out, config, resume=True, show_progress=False)
    assert "continues at particle" in (out / "log.txt").read_text()
    saved = sum(int(p.split("particle ")[1].split(" of")[0]) for p in progress)
    assert bars[0].read_back == saved  # the saved particles are not in the ETA's rate
    assert not list(out.glob("checkpoints/*partial*"))
    for name in ("map.mrc", "half_map_A.mrc", "half_map_B.mrc"):
        np.testing.assert_array_equal(
            read_map(out / name)[0], read_map(tmp_path / "whole" / name)[0]
        )


def test_a_complete_checkpoint_is_reused_only_for_its_rows_and_weights(tiny_set, tmp_path):
    """A resumed run reads a half's saved statistics only if they were gathered from the same
    rows with the same image weights (the halves drawn otherwise, or weights of another version,
    are gathered again); one without its key, as older versions wrote, is gathered again."""
    from cryosplat.reconstruct.distributed import Distributed, cached_statistics, key_path
    from cryosplat.reconstruct.grid.noise_levels import NoiseLevels

    particles = read_particles(tiny_set)
    config = AccumulateConfig(batch_size=8)
    path, dist, rows = tmp_path / "stats_A_fit.npz", Distributed(), np.arange(0, 100, 2)
    first, reused = cached_statistics(particles, rows, config, path, dist)
    assert not reused and key_path(path).is_file()
    again, reused = cached_statistics(particles, rows[::-1], config, path, dist)  # any order
    assert reused
    _same(again, first)
    other_rows, reused = cached_statistics(particles, rows + 1, config, path, dist)
    assert not reused
    _same(other_rows, accumulate(particles, rows + 1, config))
    weighed = replace(config, noise_levels=NoiseLevels(0.0, 0.8, 1.0, 0.3))
    _, reused = cached_statistics(particles, rows + 1, weighed, path, dist)
    assert not reused
    key_path(path).unlink()
    _, reused = cached_statistics(particles, rows + 1, weighed, path, dist)
    assert not reused
