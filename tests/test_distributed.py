"""``cryosplat reconstruct`` under torchrun: 2 CPU processes (gloo) on localhost against one process.

The launcher runs in a subprocess with a free port of its own, ``OMP_NUM_THREADS=1``, and a timeout;
the set is tiny (box 32, 240 particles in 4 stack files) so that each run takes seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import simulate_tiny

from cryosplat.core.errors import InputError
from cryosplat.io.mrc import MRCStack, read_map, write_stack
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct import distributed
from cryosplat.reconstruct.grid.statistics import FourierStatistics

BOX, PIXEL = 32, 4.0
GRID_ARGS = ["--n-gaussians", "60", "--no-progress", "--stage-fractions", "0.5,1.0"]
GRID_ARGS += ["--keep-checkpoints", "--stage-steps", "25,25"]  # the tests read the checkpoints
SPLAT_ARGS = ["--engine", "splat", "--epochs", "2", "--batch-size", "16", "--n-gaussians", "40"]
SPLAT_ARGS += ["--no-progress"]
RUN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def stacked_set(tmp_path_factory) -> Path:
    """240 particles of a 60-Gaussian blob in 4 stack files of 70, 70, 70 and 30 images."""
    d = tmp_path_factory.mktemp("dist")
    truth = GaussianModel.random(60, BOX, PIXEL, seed=5, radius_fraction=0.2, scale_angstrom=5.0)
    star = simulate_tiny(
        d, truth, n_particles=240, box=BOX, pixel_size_angstrom=PIXEL, images_per_stack=70
    )
    np.save(star.parent / "weights.npy", np.random.default_rng(2).uniform(0.3, 1.0, 240))
    return star


def _weighted(star: Path) -> list[str]:
    """:data:`GRID_ARGS` with per-particle weights (``--weights``): the ranks' statistics must
    weigh each image as one process does."""
    return [*GRID_ARGS, "--weights", str(star.parent / "weights.npy")]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(star: Path, out: Path, args: list[str], nproc: int) -> list[str]:
    cli = ["-m", "cryosplat.cli.main", "reconstruct", str(star), "-o", str(out), *args]
    if nproc == 1:
        return [sys.executable, *cli]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1"]
    launcher += [f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1"]
    return [*launcher, f"--master_port={_free_port()}", *cli]


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV_VARIABLES}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(star: Path, out: Path, args: list[str], nproc: int) -> subprocess.CompletedProcess:
    done = subprocess.run(
        _command(star, out, args, nproc),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=_environment(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _correlation(a: Path, b: Path) -> float:
    x, _ = read_map(a)
    y, _ = read_map(b)
    return float(np.corrcoef(x.ravel(), y.ravel())[0, 1])


@pytest.fixture(scope="module")
def single_grid_run(stacked_set, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "run"
    _run(stacked_set, out, _weighted(stacked_set), 1)
    return out


# -- in-process: sharding and the environment ----------------------------------------------------


def test_shards_cover_every_row_once_balanced_and_by_stack(stacked_set):
    particles = read_particles(stacked_set)
    rows = np.random.default_rng(0).permutation(len(particles))[:200]
    for world in (1, 2, 3, 5):
        shards = [distributed.shard_rows(particles, rows, r, world) for r in range(world)]
        np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.sort(rows))
        sizes = [len(s) for s in shards]
        ideal = len(rows) / world
        assert max(sizes) - min(sizes) <= 2 * distributed.SNAP_TOLERANCE * ideal + 2
        for shard in shards:  # each stack's images in file order
            key = particles.stack_index[shard] * 10**6 + particles.image_index[shard]
            assert np.all(np.diff(key) > 0)
    # 70 + 66 rows of two stacks: the cut moves from 68 to the stack boundary at 70
    a, b = (distributed.shard_rows(particles, np.arange(136), r, 2) for r in (0, 1))
    assert (len(a), len(b)) == (70, 66)
    assert set(particles.stack_index[a]) == {0} and set(particles.stack_index[b]) == {1}
    # 70 + 70 + 70 + 30: the nearest boundary (140) is too far from 120; stack 1 is split in order
    a, b = (distributed.shard_rows(particles, np.arange(240), r, 2) for r in (0, 1))
    assert (len(a), len(b)) == (120, 120)
    with pytest.raises(ValueError, match="rank 2"):
        distributed.shard_rows(particles, rows, 2, 2)


def test_one_process_makes_no_process_group(monkeypatch):
    for name in distributed.ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    dist = distributed.start(torch.device("cpu"))
    assert not dist.active and dist.is_main and dist.backend is None
    assert not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not distributed.start(torch.device("cpu")).active
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InputError, match="WORLD_SIZE='two'"):
        distributed.start(torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(InputError, match="MASTER_ADDR and MASTER_PORT not set"):
        distributed.start(torch.device("cpu"))
    assert not torch.distributed.is_initialized()


# -- two processes under torchrun ------------------------------------------------------------------


@pytest.mark.slow
def test_two_ranks_sum_the_same_statistics_and_fit_the_same_map(
    stacked_set, single_grid_run, tmp_path
):
    out = tmp_path / "two"
    done = _run(stacked_set, out, _weighted(stacked_set), 2)
    assert done.stdout.count("resolution:") == 1  # rank 1 prints nothing
    assert done.stderr.count("cryosplat reconstruct:") == 1
    assert (out / "log.txt").read_text().count("cryosplat reconstruct:") == 1
    assert "2 processes (gloo)" in (out / "log.txt").read_text()
    log_text = (out / "log.txt").read_text()  # the summed shards' background, once per half
    assert [log_text.count(f"background (half {h}): ") for h in "AB"] == [1, 1]
    for name in ("A_fit", "B_fit"):  # every particle is fitted: no held-out parts by default
        one = FourierStatistics.load(single_grid_run / "checkpoints" / f"stats_{name}.npz")
        two = FourierStatistics.load(out / "checkpoints" / f"stats_{name}.npz")
        assert two.n_particles == one.n_particles
        for field in ("weights", "data", "power"):
            a, b = getattr(one, field), getattr(two, field)
            assert float((a - b).abs().norm() / a.abs().norm()) <= 1e-5, (name, field)
    assert _correlation(single_grid_run / "map.mrc", out / "map.mrc") >= 0.999
    again = subprocess.run(
        _command(stacked_set, out, _weighted(stacked_set), 2),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=_environment(),
    )
    assert again.returncode != 0
    assert again.stderr.count("cryosplat reconstruct: error:") == 1  # rank 1 stops quietly
    assert "already holds this run" in again.stderr
    for half in "AB":
        assert (
            _correlation(single_grid_run / f"half_map_{half}.mrc", out / f"half_map_{half}.mrc")
            >= 0.999
        )


@pytest.mark.slow
def test_two_ranks_name_the_same_particles_left_out_for_a_film(tmp_path):
    truth = GaussianModel.random(60, BOX, PIXEL, seed=5, radius_fraction=0.2, scale_angstrom=5.0)
    star = simulate_tiny(
        tmp_path / "set",
        truth,
        n_particles=160,
        box=BOX,
        pixel_size_angstrom=PIXEL,
        snr=0.3,
        images_per_stack=40,
    )
    yy, xx = np.indices((BOX, BOX)) - BOX // 2
    edge = (xx + 0.5 * yy > 8).astype(np.float32)
    filmed = []
    for k, path in enumerate(sorted(star.parent.glob("*.mrcs"))):  # one in eight: a film
        images = MRCStack(path).read(np.arange(40)).copy()
        images[::8] += 6.0 * images.std() * edge
        write_stack(path, images, PIXEL)
        filmed += [k * 40 + i for i in range(0, 40, 8)]
    args = [*GRID_ARGS, "--stage-steps", "10,10"]
    one, two = tmp_path / "one", tmp_path / "two"
    _run(star, one, args, 1)
    _run(star, two, args, 2)
    rows = np.load(one / "background_structure.npy")
    assert set(filmed) <= set(rows.tolist()) and rows.size < 1.3 * len(filmed)
    np.testing.assert_array_equal(np.load(two / "background_structure.npy"), rows)
    counts = [
        json.loads((run / "run.json").read_text())["summary"]["background_structure"]
        for run in (one, two)
    ]
    assert counts[0]["images_left_out"] == counts[1]["images_left_out"] == rows.size


@pytest.mark.slow
def test_splat_engine_data_parallel_matches_one_process(stacked_set, tmp_path):
    _run(stacked_set, tmp_path / "one", SPLAT_ARGS, 1)
    _run(stacked_set, tmp_path / "two", SPLAT_ARGS, 2)
    assert _correlation(tmp_path / "one" / "map.mrc", tmp_path / "two" / "map.mrc") >= 0.999


@pytest.mark.slow
def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _wait_for_exit(pids: list[int], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes {alive} still alive {timeout_s} s after SIGKILL")


def test_job_killed_under_torchrun_resumes_and_completes(stacked_set, single_grid_run, tmp_path):
    out = tmp_path / "killed"
    # a long first stage, so that the kill lands inside the fit
    args = GRID_ARGS[: GRID_ARGS.index("--stage-steps")] + ["--stage-steps", "150,25"]
    proc = subprocess.Popen(
        _command(stacked_set, out, args, 2),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_environment(),
        start_new_session=True,  # the launcher and its workers in one process group
    )
    try:
        first = out / "checkpoints" / "stats_B_fit.npz"  # the last statistics written
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None and not first.is_file():
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.skip("the run finished before it could be killed")
        assert first.is_file(), "no checkpoint appeared in time"
    finally:
        # The whole job, as a lost node would: torchrun starts each worker in its own session,
        # so the launcher's process group does not hold them; kill them by ancestry.
        workers = _descendants(proc.pid)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        _wait_for_exit(workers)  # their folder lock dies with them
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert not (out / "map.mrc").exists()
    written = {p.name: p.stat().st_mtime_ns for p in (out / "checkpoints").glob("stats_*.npz")}
    assert len(written) == 2  # A and B: no held-out parts by default
    _run(stacked_set, out, [*args, "--resume"], 2)
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert "(resumed)" in (out / "log.txt").read_text()
    for name, mtime in written.items():  # the statistics were reused, not gathered again
        assert (out / "checkpoints" / name).stat().st_mtime_ns == mtime
    assert _correlation(single_grid_run / "map.mrc", out / "map.mrc") > 0.9
