"""The two halves gathered and fitted side by side on a CPU: same maps, and a failure stops both."""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import replace
from multiprocessing.sharedctypes import RawArray

import numpy as np
import pytest
import torch

from cryosplat.core.errors import InputError
from cryosplat.io.mrc import read_map
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid import engine as grid_engine
from cryosplat.reconstruct.grid import side_by_side
from cryosplat.reconstruct.grid.engine import GridEngineConfig
from cryosplat.reconstruct.grid.fit import GridFitConfig
from cryosplat.reconstruct.grid.memory_plan import MemoryPlan, estimate_memory, format_bytes
from cryosplat.reconstruct.grid.side_by_side import check_stop
from cryosplat.reconstruct.grid.statistics import FourierStatistics
from cryosplat.reconstruct.run import ReconstructConfig, reconstruct
from cryosplat.validation.fsc import fsc

BOX, PIXEL = 24, 4.0
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="halves fork on Linux")


def _config(concurrent: bool) -> ReconstructConfig:
    fit = GridFitConfig(stage_fractions=(0.5, 1.0), stage_steps=(12, 10))
    grid = GridEngineConfig(fit=fit, concurrent_halves=concurrent)
    return ReconstructConfig(n_gaussians=60, seed=0, device="cpu", grid=grid)


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def counted(monkeypatch):
    """Counts of the thread pools made and the processes forked."""
    counts = {"pools": 0, "forks": 0}
    real_pool, real_fork = side_by_side.ThreadPoolExecutor, os.fork

    class Counting(real_pool):
        def __init__(self, *a, **k):
            counts["pools"] += 1
            super().__init__(*a, **k)

    def fork():
        counts["forks"] += 1
        return real_fork()

    monkeypatch.setattr(side_by_side, "ThreadPoolExecutor", Counting)
    monkeypatch.setattr(os, "fork", fork)
    return counts


@linux
def test_side_by_side_halves_give_the_same_maps(tiny_set, tmp_path, two_threads, counted):
    particles = read_particles(tiny_set)
    reconstruct(particles, tmp_path / "forked", _config(True), show_progress=False)
    # The statistics pass in threads, each of the two stages' second half in a forked process.
    assert counted == {"pools": 1, "forks": 2}
    assert side_by_side.forked_half_peak_gb() > 0
    side_by_side.FORK_HALVES = False
    try:
        reconstruct(particles, tmp_path / "side", _config(True), show_progress=False)
    finally:
        side_by_side.FORK_HALVES = True
    assert counted == {"pools": 4, "forks": 2}  # every stage in threads
    reconstruct(particles, tmp_path / "one", _config(False), show_progress=False)
    assert counted == {"pools": 4, "forks": 2}
    assert torch.get_num_threads() == 2  # restored after the side-by-side work
    for name in ("half_map_A.mrc", "half_map_B.mrc"):
        forked, _ = read_map(tmp_path / "forked" / name)
        side, _ = read_map(tmp_path / "side" / name)
        one, _ = read_map(tmp_path / "one" / name)
        assert np.array_equal(forked, side), name  # one thread a half either way
        assert fsc(side, one)[1:].min() > 0.999, name


@linux
def test_boxes_above_the_fork_limit_fit_in_threads(
    tiny_set, tmp_path, two_threads, counted, monkeypatch
):
    """Where a step's operations are large, threads do as well and fork would hold more memory."""
    monkeypatch.setattr(side_by_side, "FORK_MAX_BOX", BOX - 2)
    reconstruct(read_particles(tiny_set), tmp_path / "big", _config(True), show_progress=False)
    assert counted == {"pools": 3, "forks": 0}
    assert side_by_side.fork_pays(BOX - 2) and not side_by_side.fork_pays(BOX)


def _fit_failing(fails_seed: int, steps_of_other, real_fit):
    """A stand-in for the engine's fit: the half of ``fails_seed`` raises at once, the other
    counts its steps (in ``steps_of_other``, shared with a forked half) and would run long."""

    def fit(stats, config, model=None, heldout=None, progress=None, callback=None, half_fsc=None):
        if config.seed == fails_seed:
            raise InputError(f"half {'AB'[fails_seed - 1]} failed")

        def counting(k, total):
            steps_of_other[0] = k
            progress(k, total)

        stage = replace(config, stage_steps=(10_000,), patience=10**6)  # no early end
        return real_fit(stats, stage, model, heldout, counting, half_fsc=half_fsc)

    return fit


@pytest.mark.parametrize("forked", [True, False])
@pytest.mark.parametrize("failing", ["A", "B"])
def test_a_failing_half_stops_the_other(
    tiny_set, tmp_path, two_threads, monkeypatch, forked, failing
):
    """Half A runs here, half B in a forked process (or a thread): whichever fails, its error
    reaches the caller with its type and the other half stops at its next step."""
    steps_of_other = RawArray("q", 1)  # shared with a forked half
    fit = _fit_failing(" AB".index(failing), steps_of_other, grid_engine.fit_gaussians)
    monkeypatch.setattr(grid_engine, "fit_gaussians", fit)
    monkeypatch.setattr(side_by_side, "FORK_HALVES", forked)
    with pytest.raises(InputError, match=f"half {failing} failed"):
        reconstruct(read_particles(tiny_set), tmp_path / "x", _config(True), show_progress=False)
    assert steps_of_other[0] < 10_000  # stopped at its next step, not after its budget


@linux
def test_a_forked_half_killed_is_an_error_and_its_result_comes_back(two_threads):
    def work(i, stop):
        if i == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
        return i

    with pytest.raises(MemoryError, match="killed by signal 9"):
        side_by_side.map_halves(work, [0, 1], "cpu", apart=True)

    def pid(i, stop):
        assert side_by_side.in_forked_half() == (i == 1)
        check_stop(stop)
        return i, os.getpid()

    (a, pid_a), (b, pid_b) = side_by_side.map_halves(pid, [0, 1], "cpu", apart=True)
    assert (a, b) == (0, 1) and pid_a == os.getpid() != pid_b
    assert not side_by_side.in_forked_half()

    def unpicklable(i, stop):
        return lambda: i

    with pytest.raises(RuntimeError, match="half B"):
        side_by_side.map_halves(unpicklable, [0, 1], "cpu", apart=True)


def test_the_memory_plan_counts_both_halves():
    small = estimate_memory(128, 2, 5000, 128)
    assert small.peak_bytes < small.concurrent_peak_bytes < 2 * small.peak_bytes
    big = estimate_memory(256, 2, 30_000, 128, held_out=True)
    assert 17e9 < big.concurrent_peak_bytes < 19e9  # measured 18.0 GB side by side
    # Without held-out parts (the default) two statistics sets and a loss grid fewer.
    lean = estimate_memory(256, 2, 30_000, 128)
    assert 0.7 * big.concurrent_peak_bytes < lean.concurrent_peak_bytes < big.concurrent_peak_bytes
    assert lean.peak_bytes < big.peak_bytes

    def plan(estimate, bound, available):
        return MemoryPlan(estimate.box, estimate.box, 1.0, 128, estimate, bound, available)

    gb = 10**9
    assert plan(small, None, 24 * gb).concurrent_halves
    assert plan(small, None, None).concurrent_halves
    assert not plan(big, 20 * gb, 24 * gb).concurrent_halves  # more than half the machine
    assert plan(big, 30 * gb, 64 * gb).concurrent_halves
    assert not plan(big, 16 * gb, 64 * gb).concurrent_halves  # over the bound
    # What the log and config.json give is the peak of the run as it goes.
    side = plan(small, None, 24 * gb)
    assert side.peak_bytes(True) == small.concurrent_peak_bytes
    assert side.peak_bytes(False) == small.peak_bytes
    line = side.describe(True)
    assert f"predicted peak memory {format_bytes(small.concurrent_peak_bytes)}" in line
    assert "side by side" in line and format_bytes(small.peak_bytes) in line
    assert "side by side" not in side.describe(False)


def test_two_threads_read_many_stacks_under_the_open_map_bound(tmp_path, monkeypatch):
    """The bounded set of open stack maps is shared by the threads of the two halves."""
    from concurrent.futures import ThreadPoolExecutor

    from cryosplat.io import mrc

    monkeypatch.setattr(mrc, "MAX_OPEN_MAPS", 2)
    stacks = []
    for s in range(6):
        images = np.full((5, 8, 8), float(s), dtype=np.float32) + np.arange(5)[:, None, None]
        mrc.write_stack(tmp_path / f"s{s}.mrcs", images, 1.0)
        stacks.append(mrc.MRCStack(tmp_path / f"s{s}.mrcs"))

    def reader(seed: int) -> int:
        rng = np.random.default_rng(seed)
        for _ in range(400):
            s, i = int(rng.integers(6)), int(rng.integers(5))
            assert float(stacks[s].read([i])[0, 0, 0]) == s + i
        return 1

    with ThreadPoolExecutor(2) as pool:
        assert sum(pool.map(reader, [1, 2])) == 2


def test_every_particle_is_fitted_unless_a_part_is_held_out(tiny_set, tmp_path):
    particles = read_particles(tiny_set)
    counts = {}
    for fraction in (0.0, 0.25):
        config = _config(False)
        config.grid = replace(config.grid, heldout_fraction=fraction)
        config.keep_checkpoints = True  # read below
        out = tmp_path / f"held{fraction}"
        reconstruct(particles, out, config, show_progress=False)
        found = {
            p.stem: FourierStatistics.load(p).n_particles for p in out.glob("checkpoints/stats_*")
        }
        counts[fraction] = found
    fitted = counts[0.0]
    assert sorted(fitted) == ["stats_A_fit", "stats_B_fit"]
    assert fitted["stats_A_fit"] + fitted["stats_B_fit"] == len(particles)
    held = counts[0.25]
    for half in "AB":
        total = held[f"stats_{half}_fit"] + held[f"stats_{half}_heldout"]
        assert total == fitted[f"stats_{half}_fit"]
        assert held[f"stats_{half}_heldout"] == round(0.25 * total)
