"""A half fitted in a forked process: its results, errors, interrupts and steps reach the parent."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import replace

import pytest
import torch

from cryosplat.cli.main import main, resource_message
from cryosplat.core.errors import InputError
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid import engine as grid_engine
from cryosplat.reconstruct.grid import side_by_side
from cryosplat.reconstruct.grid.engine import GridEngineConfig
from cryosplat.reconstruct.grid.fit import GridFitConfig
from cryosplat.reconstruct.grid.forked_half import ForkedHalf, StepCounts
from cryosplat.reconstruct.run import ReconstructConfig, reconstruct

pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and hasattr(os, "fork")), reason="fork is Linux's here"
)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_child_leaves_its_result_on_disk_and_its_steps_in_shared_memory(tmp_path):
    counts = StepCounts()
    owners = []

    def work(half, stop):
        counts[half] = 7
        (tmp_path / f"half{half}.txt").write_text(str(counts.in_owner()))

    waited = []
    child = ForkedHalf(work, 1)
    child.wait(lambda: waited.append(1))
    owners.append(counts.in_owner())
    assert (tmp_path / "half1.txt").read_text() == "False"  # the child does not draw
    assert counts[1] == 7 and counts.total() == 7 and owners == [True]
    assert _gone(child.pid)
    child.end()  # idempotent after the end


def test_the_parent_is_called_while_it_waits():
    calls = []
    child = ForkedHalf(lambda half, stop: time.sleep(0.7), 1)
    child.wait(lambda: calls.append(1))
    assert 2 <= len(calls) <= 5  # every 0.2 s


def test_an_error_in_the_child_is_raised_in_the_parent_with_its_message():
    failed = threading.Event()

    def work(half, stop):
        raise InputError("the 3rd image is bad")

    child = ForkedHalf(work, 1, failed)
    with pytest.raises(InputError, match="the 3rd image is bad") as info:
        child.wait()
    assert failed.is_set()
    assert "half B" in "".join(getattr(info.value, "__notes__", ["half B"]))


def test_a_child_killed_by_a_signal_is_an_error():
    child = ForkedHalf(lambda half, stop: os.kill(os.getpid(), signal.SIGKILL), 0)
    with pytest.raises(RuntimeError, match="half A was killed by signal 9") as info:
        child.wait()
    # the command line's one-line advice for memory (exit 1), not a traceback
    assert resource_message(info.value).startswith("out of memory")


def test_end_kills_a_child_still_working():
    child = ForkedHalf(lambda half, stop: time.sleep(60), 1)
    pid = child.pid
    started = time.monotonic()
    child.end()
    assert time.monotonic() - started < 5 and _gone(pid)


def _config() -> ReconstructConfig:
    fit = GridFitConfig(stage_fractions=(0.5, 1.0), stage_steps=(12, 10))
    return ReconstructConfig(n_gaussians=60, seed=0, device="cpu", grid=GridEngineConfig(fit=fit))


@pytest.fixture
def halves_in_processes(monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    assert side_by_side.halves_in_processes("cpu", 2)
    yield
    torch.set_num_threads(threads)


def _fit_that_fails_in(half_seed, steps_file, monkeypatch, error):
    """The engine's fit, failing at once for the half of seed ``half_seed`` and counting the
    other's steps in ``steps_file`` (its process may be another)."""
    real_fit = grid_engine.fit_gaussians

    def fit(stats, config, model=None, heldout=None, progress=None, callback=None, half_fsc=None):
        if config.seed == half_seed:
            raise error

        def counting(k, total):
            with open(steps_file, "a") as f:
                f.write(f"{os.getpid()}\n")
            progress(k, total)

        stage = replace(config, stage_steps=(10_000,), patience=10**6)  # no early end
        return real_fit(stats, stage, model, heldout, counting, half_fsc=half_fsc)

    monkeypatch.setattr(grid_engine, "fit_gaussians", fit)


@pytest.mark.parametrize("failing", ["A", "B"])
def test_a_failing_half_stops_the_other_process(
    tiny_set, tmp_path, monkeypatch, halves_in_processes, failing
):
    steps = tmp_path / "steps.txt"
    _fit_that_fails_in(1 if failing == "A" else 2, steps, monkeypatch, RuntimeError("it failed"))
    with pytest.raises(RuntimeError, match="it failed"):
        reconstruct(read_particles(tiny_set), tmp_path / "x", _config(), show_progress=False)
    pids = steps.read_text().split() if steps.exists() else []
    assert len(pids) < 10_000  # the other stopped or was killed, not after its budget
    assert all(_gone(int(p)) for p in set(pids) - {str(os.getpid())})
    status = json.loads((tmp_path / "x" / "run.json").read_text())
    assert status["status"] == "failed" and "it failed" in status["error"]


def test_an_interrupt_in_the_child_interrupts_the_run_which_resumes(
    tiny_set, tmp_path, monkeypatch, halves_in_processes
):
    _fit_that_fails_in(2, tmp_path / "steps.txt", monkeypatch, KeyboardInterrupt())
    out = tmp_path / "run"
    args = ["reconstruct", str(tiny_set), "-o", str(out), "--n-gaussians", "60", "--no-progress"]
    args += ["--stage-fractions", "0.5,1.0", "--stage-steps", "12,10"]
    assert main(args) == 130
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    monkeypatch.undo()
    torch.set_num_threads(2)
    assert main([*args, "--resume"]) == 0
    assert (out / "map.mrc").is_file()
