"""The two halves gathered and fitted side by side on a CPU: same maps, and a failure stops both."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from cryosplat.io.mrc import read_map
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid import engine as grid_engine
from cryosplat.reconstruct.grid import side_by_side
from cryosplat.reconstruct.grid.engine import GridEngineConfig
from cryosplat.reconstruct.grid.fit import GridFitConfig
from cryosplat.reconstruct.grid.memory_plan import MemoryPlan, estimate_memory, format_bytes
from cryosplat.reconstruct.grid.statistics import FourierStatistics
from cryosplat.reconstruct.run import ReconstructConfig, reconstruct
from cryosplat.validation.fsc import fsc

BOX, PIXEL = 24, 4.0


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


def test_side_by_side_halves_give_the_same_maps(tiny_set, tmp_path, two_threads):
    particles = read_particles(tiny_set)
    calls = []
    real = side_by_side.ThreadPoolExecutor

    class Counting(real):
        def __init__(self, *a, **k):
            calls.append(1)
            super().__init__(*a, **k)

    side_by_side.ThreadPoolExecutor = Counting
    try:
        reconstruct(particles, tmp_path / "side", _config(True), show_progress=False)
    finally:
        side_by_side.ThreadPoolExecutor = real
    assert len(calls) == 3  # the statistics pass and each of the two stages
    reconstruct(particles, tmp_path / "one", _config(False), show_progress=False)
    assert torch.get_num_threads() == 2  # restored after the side-by-side work
    for name in ("half_map_A.mrc", "half_map_B.mrc"):
        a, _ = read_map(tmp_path / "side" / name)
        b, _ = read_map(tmp_path / "one" / name)
        assert fsc(a, b)[1:].min() > 0.999, name


@pytest.mark.parametrize("failing", ["A", "B"])
def test_a_failing_half_stops_the_other(tiny_set, tmp_path, two_threads, monkeypatch, failing):
    """Whichever half fails, its error reaches the caller and the other half stops at its next
    step (a failure of the second half let the first run its whole stage until round 2,
    session 41)."""
    real_fit = grid_engine.fit_gaussians
    steps_of_other = []
    fails_seed = " AB".index(failing)

    def fit(stats, config, model=None, heldout=None, progress=None, callback=None, half_fsc=None):
        if config.seed == fails_seed:
            raise RuntimeError(f"half {failing} failed")

        def counting(k, total):
            steps_of_other.append(k)
            progress(k, total)

        stage = replace(config, stage_steps=(10_000,), patience=10**6)  # no early end
        return real_fit(stats, stage, model, heldout, counting, half_fsc=half_fsc)

    monkeypatch.setattr(grid_engine, "fit_gaussians", fit)
    with pytest.raises(RuntimeError, match=f"half {failing} failed"):
        reconstruct(read_particles(tiny_set), tmp_path / "x", _config(True), show_progress=False)
    assert len(steps_of_other) < 10_000  # stopped at its next step, not after its budget


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

    import numpy as np

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
            p.stem: FourierStatistics.load(p).n_particles
            for p in out.glob("checkpoints/stats_*.npz")
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
