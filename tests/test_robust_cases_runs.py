"""Issue 16's numbered failure cases 4-8: simulate and project never overwrite unasked, one folder
holds one run (the lock), failures leave a ``failed`` run that can be restarted, resources and
bad numbers get one line, messages that no longer mislead (cases 1-3:
:mod:`test_robust_cases`, whose seeded set and CLI helpers these use)."""

from __future__ import annotations

import errno
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_robust_cases import BOX, FAST, PIXEL, run_cli, status, write_set

from cryosplat.cli.main import resource_message
from cryosplat.core.ctf import CTFParams
from cryosplat.core.errors import InputError
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import write_stack
from cryosplat.io.star import write_relion31_particles, write_star
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.run_folder import RunFolder


# 4. simulate and project never overwrite unasked -------------------------------------------------
def test_4_project_refuses_its_own_input_stack_and_a_missing_folder(tmp_path, capsys):
    from cryosplat.model.gaussians import GaussianModel

    star = write_set(tmp_path)
    GaussianModel.random(10, BOX, PIXEL, seed=1).save(tmp_path / "m.npz")
    before = (tmp_path / "stack.mrcs").read_bytes()
    code, err = run_cli(
        capsys, "project", tmp_path / "m.npz", "--angles", star, "-o", tmp_path / "stack.mrcs"
    )
    assert code == 2 and "is an input of this command" in err
    assert (tmp_path / "stack.mrcs").read_bytes() == before
    code, err = run_cli(
        capsys, "project", tmp_path / "m.npz", "--angles", star, "-o", tmp_path / "no/p.mrcs"
    )
    assert code == 2 and "does not exist" in err
    code, _ = run_cli(
        capsys, "project", tmp_path / "m.npz", "--angles", star, "-o", tmp_path / "p.mrcs"
    )
    assert code == 0
    code, err = run_cli(
        capsys, "project", tmp_path / "m.npz", "--angles", star, "-o", tmp_path / "p.mrcs"
    )
    assert code == 2 and "exists; pass --overwrite" in err


def test_4_simulate_refuses_an_earlier_simulation_and_replaces_it_whole(tmp_path, capsys):
    from cryosplat.model.gaussians import GaussianModel

    GaussianModel.random(10, BOX, PIXEL, seed=1).save(tmp_path / "m.npz")
    out = tmp_path / "sim"
    base = ["simulate", tmp_path / "m.npz", "-o", out, "--quiet", "--snr", "inf"]
    assert run_cli(capsys, *base, "-n", "6", "--images-per-stack", "2")[0] == 0
    assert len(list(out.glob("particles_*.mrcs"))) == 3
    star = (out / "particles.star").read_bytes()
    code, err = run_cli(capsys, *base, "-n", "4")
    assert code == 2 and "holds an earlier simulation" in err and "--overwrite" in err
    assert (out / "particles.star").read_bytes() == star
    assert run_cli(capsys, *base, "-n", "4", "--overwrite")[0] == 0
    assert [p.name for p in out.glob("particles_*.mrcs")] == ["particles_000.mrcs"]
    assert len(read_particles(out / "particles.star")) == 4
    if not torch.cuda.is_available():
        code, err = run_cli(capsys, *base, "-n", "4", "--overwrite", "--device", "cuda")
        assert code == 2 and "no CUDA GPU" in err


# 5. Two processes, one folder: the lock ---------------------------------------------------------
@pytest.mark.parametrize("mode", ["new", "resume", "restart", "overwrite"])
def test_5_a_locked_folder_refuses_a_second_run_whatever_its_options(tmp_path, mode):
    first = RunFolder(tmp_path / "run", {"seed": 1})
    first.prepare()
    with pytest.raises(
        InputError, match=f"another cryosplat process \\(pid {__import__('os').getpid()}"
    ):
        RunFolder(tmp_path / "run", {"seed": 1}, mode=mode).prepare()
    first.release()
    assert RunFolder(tmp_path / "run", {"seed": 1}, resume=True).prepare() is True


@pytest.mark.slow
def test_5_two_concurrent_reconstruct_processes_the_second_is_refused(tmp_path):
    import fcntl
    import os
    import signal
    import time

    star = write_set(tmp_path / "data")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "cryosplat.cli.main", "reconstruct", str(star), "-o", str(out)]
    command += ["--engine", "splat", "--epochs", "1000", "--n-gaussians", "20", "--no-progress"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "run.json").is_file() and time.monotonic() < deadline:
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.2)
        assert status(out)["status"] == "running"
        second = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert f"another cryosplat process (pid {first.pid}" in second.stderr
        assert status(out)["status"] == "running"
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    with open(out / ".cryosplat.lock") as fh:  # a killed run's lock goes with it
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


# 6. Failures leave a `failed` run that can be restarted; resources as one line ----------------
def test_6_failed_run_restarts_but_a_complete_one_needs_overwrite(tmp_path):
    out = tmp_path / "run"
    f = RunFolder(out, {"seed": 1})
    f.prepare()
    (f.checkpoint_dir / "stats_A_fit.npz").write_text("stale")
    f.fail("OSError: disk full")
    f.release()
    assert status(out) | {"status": "failed", "error": "OSError: disk full"} == status(out)
    with pytest.raises(InputError, match="different run.*--restart"):
        RunFolder(out, {"seed": 2}).prepare()
    g = RunFolder(out, {"seed": 2}, mode="restart")
    assert g.prepare() is False and g.discarded == "failed"
    assert not (g.checkpoint_dir / "stats_A_fit.npz").exists()
    (out / "map.mrc").write_text("a finished map")
    g.complete({})
    g.release()
    with pytest.raises(InputError, match="complete run; --restart never replaces one"):
        RunFolder(out, {"seed": 3}, mode="restart").prepare()
    assert (out / "map.mrc").read_text() == "a finished map"
    h = RunFolder(out, {"seed": 3}, mode="overwrite")
    h.prepare()
    assert not (out / "map.mrc").exists() and status(out)["status"] == "running"


def test_6_disk_full_during_the_run_is_one_line_and_marks_the_run_failed(
    tmp_path, capsys, monkeypatch
):
    import cryosplat.reconstruct.distributed as grid_engine  # where the statistics pass is called

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "x.npz"))

    monkeypatch.setattr(grid_engine, "accumulate", full)
    out = tmp_path / "run"
    code, err = run_cli(capsys, "reconstruct", write_set(tmp_path / "d"), "-o", out, *FAST)
    assert code == 1 and err.count("\n") == 1 and "no space left on the device" in err
    assert status(out)["status"] == "failed" and "No space left" in status(out)["error"]


def test_6_resource_messages_say_what_to_do():
    assert "ulimit -n" in resource_message(OSError(errno.EMFILE, "Too many open files"))
    assert "read-only" in resource_message(OSError(errno.EROFS, "Read-only file system", "/x"))
    assert "out of memory" in resource_message(MemoryError())
    assert "--n-gaussians" in resource_message(RuntimeError("CUDA out of memory. Tried ..."))
    assert resource_message(OSError(errno.ENOENT, "No such file")) is None


def test_6_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("not a folder")
    star = write_set(tmp_path / "d")
    code, err = run_cli(capsys, "reconstruct", star, "-o", tmp_path / "file.txt" / "run", *FAST)
    assert code == 2 and "cannot create the output folder" in err
    assert (tmp_path / "file.txt").read_text() == "not a folder"


@pytest.mark.parametrize("box", [8, 12, 14])
def test_6_small_boxes_are_refused_before_a_folder(tmp_path, capsys, box):
    n = 8
    write_stack(tmp_path / "s.mrcs", np.zeros((n, box, box), np.float32), PIXEL)
    write_relion31_particles(
        tmp_path / "p.star",
        image_names=[f"{i + 1}@s.mrcs" for i in range(n)],
        rotations=random_rotations(n, seed=1),
        shifts_angstrom=np.zeros((n, 2)),
        ctf=CTFParams.create(n, defocus_u_angstrom=1e4, defocus_v_angstrom=1.2e4),
        pixel_size_angstrom=PIXEL,
        box=box,
    )
    code, err = run_cli(capsys, "reconstruct", tmp_path / "p.star", "-o", tmp_path / "run")
    assert code == 2 and f"box {box} is too small" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("detector", ["0", "-5"])
def test_6_relion30_zero_or_negative_pixel_is_named(tmp_path, capsys, detector):
    write_stack(tmp_path / "s.mrcs", np.zeros((2, BOX, BOX), np.float32), PIXEL)
    write_star(
        tmp_path / "p.star",
        {
            "": {
                "rlnImageName": ["1@s.mrcs", "2@s.mrcs"],
                "rlnMagnification": ["10000", "10000"],
                "rlnDetectorPixelSize": ["5", detector],
            }
        },
    )
    code, err = run_cli(capsys, "info", tmp_path / "p.star")
    assert code == 2 and "column rlnDetectorPixelSize, row 2" in err and "detector pixel" in err


# 8. Messages that no longer mislead --------------------------------------------------------------
def test_8_header_undercount_short_line_and_optics_row_are_named(tmp_path, capsys):
    import mrcfile

    write_stack(tmp_path / "s.mrcs", np.zeros((100, BOX, BOX), np.float32), PIXEL)
    with mrcfile.open(tmp_path / "s.mrcs", "r+", permissive=True) as m:
        m.header.nz = 1
    star = write_set(tmp_path / "d", n=3)
    text = star.read_text().replace("1@stack.mrcs", "50@" + str(tmp_path / "s.mrcs"), 1)
    star.write_text(text)
    code, err = run_cli(capsys, "info", star)
    assert code == 2 and "holds only 1 image by its header (nz = 1)" in err
    assert "long enough for 100" in err

    lines = write_set(tmp_path / "e", n=3).read_text().splitlines()
    rows = [i for i, line in enumerate(lines) if "@stack.mrcs" in line]
    lines[rows[1]] = " ".join(lines[rows[1]].split()[:-2])
    (tmp_path / "e" / "particles.star").write_text("\n".join(lines) + "\n")
    code, err = run_cli(capsys, "info", tmp_path / "e" / "particles.star")
    assert code == 2 and f"line {rows[1] + 1} (row 2) has" in err and "the next line" in err

    star = write_set(tmp_path / "f", n=3)
    star.write_text(star.read_text().replace(" 300.000000 ", " 0.000000 ", 1))
    code, err = run_cli(capsys, "info", star)
    assert code == 2, err
    assert "data_optics, column rlnVoltage, row 1: 0 kV is not an acceleration voltage" in err
