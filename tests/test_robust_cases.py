"""Issue 16's numbered failure cases: each gets one clear message and nothing is lost or marked wrongly.

Every case checks the exit code, the message, and what is left on disk: no map written, no run
marked ``complete`` (``failed`` with its reason where a run folder was made), no file overwritten.
"""

from __future__ import annotations

import errno
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cryosplat.cli.main import main, resource_message
from cryosplat.core.conventions import euler_relion_to_matrix
from cryosplat.core.ctf import CTFParams
from cryosplat.core.errors import CryosplatError, InputError
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import write_stack
from cryosplat.io.star import write_relion31_particles, write_star
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.fit import GridFitConfig, fit_gaussians
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.run import ReconstructConfig
from cryosplat.reconstruct.run_folder import RunFolder
from cryosplat.reconstruct.splat.engine import SplatEngine, SplatEngineConfig
from cryosplat.reconstruct.splat.runner import initial_models

BOX, PIXEL = 16, 3.0


# (rot, tilt, psi) of 40 views spread as refined ones are, in degrees
RANDOM_EULER_DEGREES = (
    np.random.default_rng(11).uniform([-180, 0, -180], [180, 180, 180], (40, 3)).T
)


def write_set(folder: Path, n: int = 40, **edits) -> Path:
    """A seeded RELION 3.1 set of ``n`` noise images (box 16, 3 Å) with poses and CTF.

    ``edits``: ``defocus`` (Å, scalar or array), ``bfactor``, ``shifts`` (N, 2) Å, ``subset``,
    ``names`` (image names), ``image`` (a function editing the images before they are written),
    ``rotations`` (N, 3, 3), ``astigmatism`` (Å, dfU − dfV), ``astigmatism_angle`` and
    ``phase_shift`` (°).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    images = rng.normal(size=(n, BOX, BOX)).astype(np.float32)
    if "image" in edits:
        edits["image"](images)
    write_stack(folder / "stack.mrcs", images, PIXEL)
    defocus = np.broadcast_to(edits.get("defocus", rng.uniform(1e4, 2e4, n)), (n,))
    ctf = CTFParams.create(
        n,
        defocus_u_angstrom=defocus,
        defocus_v_angstrom=defocus - edits.get("astigmatism", 0.0),
        defocus_angle_degrees=edits.get("astigmatism_angle", 0.0),
        phase_shift_degrees=edits.get("phase_shift", 0.0),
        bfactor_angstrom2=edits.get("bfactor", 0.0),
    )
    write_relion31_particles(
        folder / "particles.star",
        image_names=edits.get("names", [f"{i + 1}@stack.mrcs" for i in range(n)]),
        rotations=edits.get("rotations", random_rotations(n, seed=3)),
        shifts_angstrom=edits.get("shifts", rng.normal(scale=2.0, size=(n, 2))),
        ctf=ctf,
        pixel_size_angstrom=PIXEL,
        box=BOX,
        random_subset=edits.get("subset", np.arange(n) % 2 + 1),
    )
    return folder / "particles.star"


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def status(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


FAST = (
    "--no-progress",
    "--n-gaussians",
    "20",
    "--stage-steps",
    "2,2",
    "--stage-fractions",
    "0.5,1",
)
FAST_SPLAT = ("--no-progress", "--n-gaussians", "20", "--epochs", "1")  # grid options are refused


# 1. A NaN or absurd pixel: refused by name, never a NaN map marked complete ---------------------
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # mrcfile and NumPy on the poisoned stack
@pytest.mark.parametrize("engine", ["grid", "splat"])
@pytest.mark.parametrize("value", [np.nan, 3e38])
def test_1_bad_pixel_refuses_the_run_and_marks_it_failed(tmp_path, capsys, engine, value):
    def poison(images):
        images[17, 5, 5] = value

    star = write_set(tmp_path / "data", image=poison)
    out = tmp_path / "run"
    code, err = run_cli(
        capsys,
        "reconstruct",
        star,
        "-o",
        out,
        "--engine",
        engine,
        "--invert-contrast",
        *(FAST if engine == "grid" else FAST_SPLAT),
    )
    assert code == 2
    assert "row 18 (image 18 of" in err and "--drop-bad-images" in err
    assert ("NaN" in err) if np.isnan(value) else ("a pixel of 3e+38" in err)
    assert "protein dark" not in err
    assert status(out)["status"] == "failed" and "row 18" in status(out)["error"]
    assert not (out / "map.mrc").exists() and not (out / "model_A.npz").exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_1_drop_bad_images_leaves_them_out_of_finite_statistics(tmp_path):
    def poison(images):
        images[3, 0, 0] = np.inf
        images[9, 1, 1] = np.nan

    particles = read_particles(write_set(tmp_path, image=poison))
    with pytest.raises(InputError, match="row 4"):
        accumulate(particles, config=AccumulateConfig(pad=1))
    stats = accumulate(particles, config=AccumulateConfig(pad=1, drop_bad_images=True))
    assert stats.n_particles == len(particles) - 2
    assert bool(torch.isfinite(stats.data).all()) and bool(torch.isfinite(stats.weights).all())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_1_drop_bad_images_through_the_cli_gives_a_finite_complete_map(tmp_path, capsys):
    from cryosplat.io.mrc import read_map

    star = write_set(tmp_path / "data", image=lambda im: im.__setitem__((17, 5, 5), np.nan))
    out = tmp_path / "run"
    args = ["reconstruct", star, "-o", out, "--engine", "splat", *FAST_SPLAT]
    code, err = run_cli(capsys, *args, "--drop-bad-images")
    assert code == 0, err
    assert status(out)["status"] == "complete"
    assert np.isfinite(read_map(out / "map.mrc")[0]).all()
    assert "left out particle row 18 (image 18 of" in (out / "log.txt").read_text()


def test_1_nan_statistics_are_named_not_read_as_dark_protein(tmp_path):
    particles = read_particles(write_set(tmp_path))
    stats = accumulate(particles, config=AccumulateConfig(pad=1))
    stats.data[3, 3, 3] = complex("nan")
    with pytest.raises(InputError, match="NaN or infinite") as info:
        fit_gaussians(
            stats, GridFitConfig(n_gaussians=10, stage_fractions=(1.0,), stage_steps=(1,))
        )
    assert "protein dark" not in str(info.value)


def test_1_splat_engine_guards_its_loss(tmp_path):
    particles = read_particles(write_set(tmp_path))
    models = initial_models(particles, ReconstructConfig(), 10, torch.device("cpu"))
    with torch.no_grad():
        models[0].raw_amplitudes[0] = float("nan")
    halves = (np.arange(0, 40, 2), np.arange(1, 40, 2))
    engine = SplatEngine(
        particles, halves, models, SplatEngineConfig(epochs=1), tmp_path / "s.pt", "cpu"
    )
    engine.scaled = True
    with pytest.raises(CryosplatError, match="diverged: the loss of half A is nan"):
        engine.run()
    assert not (tmp_path / "s.pt").exists()  # no NaN state saved


# 2. Numbers that ruin the map ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        ({"defocus": 2.4}, "median defocus is 2.4 Å, which is 2.4 µm written in the wrong unit"),
        ({"defocus": 0.0}, "every defocus is 0"),
        ({"defocus": -15000.0}, "40 of 40 particles have a negative defocus (overfocus)"),
        (
            {"rotations": euler_relion_to_matrix(*np.radians(RANDOM_EULER_DEGREES))},
            "every angle of 40 particles lies within ±π = ±3.14°: radians",
        ),
        (
            {"astigmatism": 400.0, "astigmatism_angle": np.radians(RANDOM_EULER_DEGREES[0])},
            "the astigmatism angle of all 40 astigmatic particles lies within ±π",
        ),
        ({"phase_shift": np.linspace(0.4, 1.9, 40)}, "every non-zero phase shift of 40 particles"),
        ({"bfactor": np.r_[-5000.0, np.zeros(39)]}, "column rlnCtfBfactor, row 1: -5000 Å² is not"),
        (
            {"shifts": np.r_[np.full((13, 2), 500.0), np.zeros((27, 2))]},
            "row 1: shift 500, 500 Å (166.7 px) moves the particle out of its 16-pixel box",
        ),
        ({"shifts": np.r_[np.full((13, 2), 15.0), np.zeros((27, 2))]}, "quarter of the box"),
        ({"names": [f"{i // 2 + 1}@stack.mrcs" for i in range(40)]}, "20 rows refer to an image"),
        ({"subset": np.ones(40, int)}, "every particle is in subset 1"),
    ],
)
def test_2_bad_numbers_are_refused_before_any_folder(tmp_path, capsys, edits, expected):
    star = write_set(tmp_path / "data", **edits)
    out = tmp_path / "run"
    code, err = run_cli(capsys, "reconstruct", star, "-o", out, *FAST)
    assert code == 2 and expected in err, err
    assert str(star) in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_2_accept_warnings_lets_the_suspicious_through(tmp_path):
    from cryosplat.particles.validate import apply_findings, check_particles

    particles = read_particles(write_set(tmp_path, subset=np.ones(40, int)))
    findings = check_particles(particles)
    assert [f.refuse for f in findings] == [True]
    with pytest.raises(InputError, match="--accept-warnings"):
        apply_findings(particles, findings)
    apply_findings(particles, findings, accept_warnings=True)
    assert any("subset 1" in note and "accepted" in note for note in particles.notes)


def test_2_a_few_overfocused_particles_are_reported_most_refused(tmp_path):
    """Negative defocus (overfocus) on 3 of 40 particles is logged, naming the first row; on most
    of them it is refused (a flipped sign: the map would be wrong and its halves agree on it)."""
    from cryosplat.particles.validate import check_particles

    defocus = np.r_[np.full(3, -12000.0), np.linspace(9000, 21000, 37)]
    findings = check_particles(read_particles(write_set(tmp_path / "few", defocus=defocus)))
    assert [f.refuse for f in findings] == [False]
    assert "3 of 40 particles have a negative defocus" in findings[0].message
    assert "row 1" in findings[0].message
    most = read_particles(write_set(tmp_path / "most", defocus=-defocus))
    assert [f.refuse for f in check_particles(most)] == [True]


def test_2_angles_in_degrees_are_not_taken_for_radians(tmp_path):
    from cryosplat.particles.validate import check_particles

    star = write_set(
        tmp_path,
        rotations=euler_relion_to_matrix(*RANDOM_EULER_DEGREES),
        astigmatism=400.0,
        astigmatism_angle=RANDOM_EULER_DEGREES[0],
        phase_shift=np.linspace(20.0, 110.0, 40),
    )
    assert check_particles(read_particles(star)) == []


def test_2_preferred_orientation_is_reported_never_refused(tmp_path):
    """Half the views within 20° of one axis: a finding that is logged and kept in the run's
    notes, not one a run stops on; uniform views and sets too small to say give none."""
    from cryosplat.particles.validate import apply_findings, check_particles
    from cryosplat.simulate.views import PreferredViews, preferred_rotations

    pref = preferred_rotations(200, PreferredViews(0.9, 15.0), np.random.default_rng(5))
    particles = read_particles(write_set(tmp_path / "p", n=200, rotations=pref))
    findings = check_particles(particles)
    assert [f.refuse for f in findings] == [False]
    assert findings[0].message.startswith("preferred orientation: 9")
    apply_findings(particles, findings)
    assert any("preferred orientation" in note for note in particles.notes)
    assert check_particles(read_particles(write_set(tmp_path / "u", n=200))) == []
    few = read_particles(write_set(tmp_path / "f", n=20, rotations=pref[:20]))
    assert check_particles(few) == []


def test_2_ignoring_the_half_set_labels_skips_their_check(tmp_path):
    """One subset for every particle refuses a run that would use the labels, not one told to
    ignore them (the halves are drawn at random either way)."""
    from cryosplat.particles.validate import check_particles

    particles = read_particles(write_set(tmp_path, subset=np.ones(40, int)))
    assert "--ignore-random-subset" in check_particles(particles)[0].message
    assert check_particles(particles, use_random_subset=False) == []


def test_2_pose_pickle_without_shifts_gets_a_note(tmp_path):
    write_stack(tmp_path / "s.mrcs", np.zeros((4, BOX, BOX), np.float32), PIXEL)
    with open(tmp_path / "poses.pkl", "wb") as fh:
        pickle.dump(random_rotations(4, seed=1), fh)
    particles = read_particles(tmp_path / "s.mrcs", poses=tmp_path / "poses.pkl")
    assert any("rotations only" in note for note in particles.notes)


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--stage-steps", "0,0,0,0"], "leave the model unfitted"),
        (["--stage-fractions", "1,0.75,0.5,0.25"], "must not decrease"),
        (["--pad", "100"], "pad must be an integer from 1 to 4"),
        (["--n-gaussians", "10000000"], "n_gaussians 10000000 is more than"),
        (["--seed", "-1"], "seed must be a non-negative integer"),
        (["--local-weight-sigma", "-1"], "local_weight_sigma_px must be from 0 (off) to 20"),
        (["--max-resolution", "1000"], "keeps fewer than 4 Fourier shells"),
    ],
)
def test_2_and_6_settings_that_cannot_work_are_refused_before_work(
    tmp_path, capsys, option, expected
):
    star = write_set(tmp_path / "data")
    out = tmp_path / "run"
    code, err = run_cli(capsys, "reconstruct", star, "-o", out, "--no-progress", *option)
    assert code == 2 and expected in err
    assert not out.exists()


# 3. --resume after the input changed -------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_3_resume_after_the_input_changed_is_refused(tmp_path, capsys):
    star = write_set(tmp_path / "data", image=lambda im: im.__setitem__((5, 0, 0), np.nan))
    out = tmp_path / "run"
    assert run_cli(capsys, "reconstruct", star, "-o", out, *FAST)[0] == 2
    assert status(out)["status"] == "failed"
    write_set(tmp_path / "data")  # the user corrects the images (same metadata)
    code, err = run_cli(capsys, "reconstruct", star, "-o", out, "--resume", *FAST)
    assert code == 2 and "the input files changed since this run started" in err
    assert "--restart" in err
    assert status(out)["status"] == "failed"
    # Whatever statistics of the old input were saved (the failing half stops the other at its
    # next batch) are not reused: the pass runs again.
    code, err = run_cli(capsys, "reconstruct", star, "-o", out, "--restart", *FAST)
    assert code == 0, err
    assert status(out)["status"] == "complete" and (out / "map.mrc").is_file()
    log = (out / "log.txt").read_text()
    assert "discarded the earlier run" in log and "statistics gathered" in log


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


def test_2_info_reports_what_reconstruct_would_stop_on(tmp_path, capsys):
    star = write_set(tmp_path, subset=np.full(40, 2))
    assert main(["info", str(star)]) == 0
    out = capsys.readouterr().out
    assert "warning: data_particles, column rlnRandomSubset: every particle is in subset 2" in out
    assert "unless --accept-warnings" in out


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


def test_2_inverted_contrast_names_the_option_either_way(tmp_path, capsys):
    """Images read with the wrong contrast (dark protein without --invert-contrast, or bright
    with it) stop the run, naming the option both ways."""
    from test_statistics import simulate_particles

    from cryosplat.io.star import write_relion31_particles

    particles, _, _ = simulate_particles(tmp_path, n=60, noise=0.5, seed=2)
    star = tmp_path / "bright.star"
    write_relion31_particles(
        star,
        image_names=[f"{i + 1}@{particles.stacks[0].path}" for i in range(60)],
        rotations=particles.rotations,
        shifts_angstrom=particles.shifts_angstrom,
        ctf=particles.ctf,
        pixel_size_angstrom=particles.pixel_size_angstrom,
        box=particles.box,
    )
    out = tmp_path / "run"
    code, err = run_cli(capsys, "reconstruct", star, "-o", out, "--invert-contrast", *FAST)
    assert code == 2 and "--invert-contrast was passed (leave it out)" in err, err
