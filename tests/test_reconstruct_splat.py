"""End to end: the per-image engine on a tiny simulated set; kill mid-epoch and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from cryosplat.cli.main import main
from cryosplat.io.mrc import read_map
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.run import ReconstructConfig
from cryosplat.reconstruct.splat.engine import SplatEngine, SplatEngineConfig
from cryosplat.reconstruct.splat.runner import initial_models
from cryosplat.validation.fsc import fsc as fsc_curve
from cryosplat.validation.fsc import resolution_at
from cryosplat.validation.masks import spherical_mask

BOX, PIXEL = 24, 4.0


def _engine(particles, tmp_path, cfg, name, image_unit=1.0):
    rc = ReconstructConfig(seed=0)
    models = initial_models(particles, rc, 60, torch.device("cpu"))
    halves = (np.arange(0, len(particles), 2), np.arange(1, len(particles), 2))
    return SplatEngine(
        particles, halves, models, cfg, tmp_path / name, "cpu", seed=0, image_unit=image_unit
    )


@pytest.mark.parametrize("image_unit", [1.0, 4.0])
def test_killed_mid_epoch_resumes_to_the_same_models(tiny_set, tmp_path, image_unit):
    """Resumed, the engine fits in the image unit its checkpoint was made in, whatever it is
    given (its models are in that unit)."""
    particles = read_particles(tiny_set)
    cfg = SplatEngineConfig(epochs=2, batch_size=16, checkpoint_interval_s=0.0)
    full = _engine(particles, tmp_path, cfg, "a.pt", image_unit).run()

    interrupted = _engine(particles, tmp_path, cfg, "b.pt", image_unit)

    def kill(step, total, info):
        if step == 6:  # the second of 4 steps per epoch, in the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted.run(on_step=kill)
    resumed = _engine(particles, tmp_path, cfg, "b.pt")
    assert resumed.load()
    assert resumed.image_unit == image_unit
    assert resumed.epoch == 1 and 0 < resumed.step_in_epoch < resumed.steps_per_epoch()
    again = resumed.run()
    for m_full, m_again in zip(full, again, strict=True):
        for name in ("means", "raw_scales", "raw_quaternions", "raw_amplitudes"):
            torch.testing.assert_close(
                getattr(m_full, name), getattr(m_again, name), rtol=1e-5, atol=1e-6
            )


def test_cli_end_to_end_outputs_and_refusals(tiny_set, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        str(tiny_set),
        "-o",
        str(out),
        "--engine",
        "splat",
        "--epochs",
        "2",
        "--n-gaussians",
        "60",
        "--no-progress",
    ]
    assert main(["reconstruct", *args]) == 0
    for name in (
        "map.mrc",
        "half_map_A.mrc",
        "half_map_B.mrc",
        "fsc.json",
        "fsc.svg",
        "model_A.npz",
        "model_B.npz",
        "model_A.cif",
        "config.json",
        "log.txt",
    ):
        assert (out / name).is_file(), name
    status = json.loads((out / "run.json").read_text())
    assert status["status"] == "complete"
    vol, voxel = read_map(out / "map.mrc")
    assert vol.shape == (BOX, BOX, BOX) and voxel == pytest.approx(PIXEL)
    fsc = json.loads((out / "fsc.json").read_text())
    reported = fsc["resolution_angstrom"]
    assert fsc["cross_validated"]["resolution_angstrom"] == reported
    # A real resolution: a crossing inside the band (not Nyquist, where the half models' own FSC
    # would put it, nor the box), and near the map's FSC with the truth (the estimate is of that
    # FSC). Measured after 2 epochs: 41.5 Å.
    truth, _ = read_map(tiny_set.parent / "truth.mrc")
    mask = spherical_mask(BOX)
    against_truth = resolution_at(fsc_curve(vol * mask, truth * mask), 0.5, BOX, PIXEL)
    assert 2 * PIXEL < reported < BOX * PIXEL / 2, reported
    assert reported >= 0.9 * against_truth, (reported, against_truth)
    low, high = fsc["resolution_band_angstrom"]
    assert low <= high and low <= 1.1 * reported and high >= 0.9 * reported, (low, high, reported)
    capsys.readouterr()
    # The same folder again without --resume, and with other settings: refused, nothing lost.
    assert main(["reconstruct", *args]) == 2
    assert "already holds this run, complete" in capsys.readouterr().err
    assert main(["reconstruct", *args[:-1], "--seed", "3", "--resume"]) == 2
    assert "different run" in capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    # A GPU asked for where there is none.
    if not torch.cuda.is_available():
        assert (
            main(["reconstruct", str(tiny_set), "-o", str(tmp_path / "gpu"), "--device", "cuda"])
            == 2
        )
        assert "no CUDA GPU" in capsys.readouterr().err


def test_sigkill_then_resume_completes(tiny_set, tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "cryosplat.cli.main",
        "reconstruct",
        str(tiny_set),
        "-o",
        str(out),
        "--engine",
        "splat",
        "--epochs",
        "3",
        "--n-gaussians",
        "60",
        "--no-progress",
        "--checkpoint-interval",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoints" / "splat_state.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.is_file() and "epoch 1/" in (out / "log.txt").read_text():
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("run finished before it could be killed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert not (out / "map.mrc").exists()
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert "resuming from epoch" in (out / "log.txt").read_text()


def test_sigterm_stops_a_run_as_ctrl_c_does(tiny_set, tmp_path):
    """A batch scheduler's time limit (SIGTERM): the fit stops at its next step, the folder is
    marked interrupted with why, the finished stage stays for --resume, exit status 143."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cryosplat.cli.main", "reconstruct", str(tiny_set), "-o"]
    cmd += [str(out), "--n-gaussians", "60", "--no-progress", "--stage-fractions", "0.5,1.0"]
    cmd += ["--stage-steps", "10,100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    log = out / "log.txt"
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and "stage 1/2" in log.read_text():
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 30  # at the next step, not at the stage's end
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    status = json.loads((out / "run.json").read_text())
    assert status["status"] == "interrupted"
    assert "terminated (SIGTERM); --resume continues it" in status["error"]
    from cryosplat.reconstruct.run_summary import read_run

    assert read_run(out).checkpoint_progress[-1] == "fit: stage 1 of 2 finished by both half models"


def test_grid_engine_interrupted_mid_fit_resumes_to_the_same_map(tiny_set, tmp_path, monkeypatch):
    import cryosplat.reconstruct.grid.engine as grid_engine

    args = [
        "--n-gaussians",
        "60",
        "--no-progress",
        "--stage-fractions",
        "0.5,1.0",
        "--stage-steps",
        "15,15",
    ]
    assert main(["reconstruct", str(tiny_set), "-o", str(tmp_path / "full"), *args]) == 0

    real_fit = grid_engine.fit_gaussians

    def dying_fit(stats, config, *a, **k):
        if config.stage_fractions == (1.0,) and config.seed == 1:  # stage 2, half A
            raise KeyboardInterrupt
        return real_fit(stats, config, *a, **k)

    monkeypatch.setattr(grid_engine, "fit_gaussians", dying_fit)
    out = tmp_path / "killed"
    assert main(["reconstruct", str(tiny_set), "-o", str(out), *args]) == 130
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "map.mrc").exists()
    from cryosplat.reconstruct.run_summary import read_run

    assert read_run(out).checkpoint_progress == [
        "half A: statistics gathered",
        "half B: statistics gathered",
        "fit: stage 1 of 2 finished by both half models",
    ]
    monkeypatch.setattr(grid_engine, "fit_gaussians", real_fit)
    read_back = []

    class Recorded(grid_engine.Progress):
        def resumed(self, units):
            super().resumed(units)
            read_back.append(units)

    monkeypatch.setattr(grid_engine, "Progress", Recorded)
    assert main(["reconstruct", str(tiny_set), "-o", str(out), *args, "--resume"]) == 0
    assert read_back == [15, 15]  # stage 1 of both halves, fitted before: not in the ETA's rate
    full, _ = read_map(tmp_path / "full" / "map.mrc")
    resumed, _ = read_map(out / "map.mrc")
    np.testing.assert_allclose(resumed, full, rtol=1e-4, atol=1e-6 * np.abs(full).max())

    # The local weight and the blend with the data are applied to the finished halves, not
    # fitted: a run interrupted at its outputs resumes without them (the plain mean of the same
    # half maps).
    status = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**status, "status": "interrupted"}))
    (out / "map.mrc").unlink()
    plain = [*args, "--local-weight-sigma", "0", "--no-data-blend", "--resume"]
    assert main(["reconstruct", str(tiny_set), "-o", str(out), *plain]) == 0
    halves = [read_map(out / f"half_map_{h}.mrc")[0] for h in "AB"]
    np.testing.assert_allclose(
        read_map(out / "map.mrc")[0], 0.5 * (halves[0] + halves[1]), atol=1e-7
    )
    assert not np.allclose(full, 0.5 * (halves[0] + halves[1]))
    assert not (out / "local_weight.mrc").exists()


def test_both_engines_reach_matching_resolution_against_the_truth(tiny_set, tmp_path):
    from cryosplat.validation.fsc import fsc, resolution_at
    from cryosplat.validation.masks import spherical_mask

    truth, _ = read_map(tiny_set.parent / "truth.mrc")
    mask = spherical_mask(BOX)
    res = {}
    # The same model for both engines: all-positive Gaussians (the splat engine has no negative
    # population), the grid fit with its former step budget.
    grid_extra = ["--negative-fraction", "0", "--stage-steps", "40,20,20,15"]
    for engine, extra in (("grid", grid_extra), ("splat", ["--epochs", "25", "--batch-size", "8"])):
        out = tmp_path / engine
        assert (
            main(
                [
                    "reconstruct",
                    str(tiny_set),
                    "-o",
                    str(out),
                    "--engine",
                    engine,
                    "--n-gaussians",
                    "60",
                    "--no-progress",
                    *extra,
                ]
            )
            == 0
        )
        vol, _ = read_map(out / "map.mrc")
        res[engine] = resolution_at(fsc(vol * mask, truth * mask), 0.5, BOX, PIXEL)
    # Measured: grid 12.5 Å, splat 16.5 Å (the per-image engine converges more slowly per second).
    assert res["grid"] < 20.0 and res["splat"] < 20.0, res
    assert abs(res["grid"] - res["splat"]) / min(res.values()) < 0.4, res


@pytest.mark.slow
def test_random_halves_are_warned_about_in_the_log_and_fsc_json(tiny_set, tmp_path):
    out = tmp_path / "random"
    args = ["--n-gaussians", "30", "--no-progress", "--stage-fractions", "1.0"]
    args += ["--stage-steps", "5", "--ignore-random-subset"]
    assert main(["reconstruct", str(tiny_set), "-o", str(out), *args]) == 0
    warnings = json.loads((out / "fsc.json").read_text())["warnings"]
    assert len(warnings) == 1 and "the half sets are random" in warnings[0]
    assert "optimistic" in warnings[0]
    assert "WARNING warning: the half sets are random" in (out / "log.txt").read_text()
