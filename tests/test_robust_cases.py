"""Issue 16's numbered failure cases: each gets one clear message and nothing is lost or marked wrongly.

Every case checks the exit code, the message, and what is left on disk: no map written, no run
marked ``complete`` (``failed`` with its reason where a run folder was made), no file overwritten.
Cases 1-3 (bad pixels, numbers that ruin the map, a resume after the input changed) are here, with
the seeded set and CLI helpers; cases 4-8 in :mod:`test_robust_cases_runs`.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cryosplat.cli.main import main
from cryosplat.core.conventions import euler_relion_to_matrix
from cryosplat.core.ctf import CTFParams
from cryosplat.core.errors import CryosplatError, InputError
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import write_stack
from cryosplat.io.star import write_relion31_particles
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.fit import GridFitConfig, fit_gaussians
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.run import ReconstructConfig
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
    assert any("subset 1" in w and "accepted" in w for w in particles.warnings)


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
    """Half the views within 20° of one axis: a finding kept in the set's warnings (which the
    run's log gives once), not one a run stops on; uniform views and sets too small to say give
    none."""
    from cryosplat.particles.validate import apply_findings, check_particles
    from cryosplat.simulate.views import PreferredViews, preferred_rotations

    pref = preferred_rotations(200, PreferredViews(0.9, 15.0), np.random.default_rng(5))
    particles = read_particles(write_set(tmp_path / "p", n=200, rotations=pref))
    findings = check_particles(particles)
    assert [f.refuse for f in findings] == [False]
    assert findings[0].message.startswith("preferred orientation: 9")
    apply_findings(particles, findings)
    assert [w[:22] for w in particles.warnings] == ["preferred orientation:"]
    assert not any("preferred orientation" in note for note in particles.notes)
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


def test_2_info_reports_what_reconstruct_would_stop_on(tmp_path, capsys):
    star = write_set(tmp_path, subset=np.full(40, 2))
    assert main(["info", str(star)]) == 0
    out = capsys.readouterr().out
    assert "warning: data_particles, column rlnRandomSubset: every particle is in subset 2" in out
    assert "unless --accept-warnings" in out


def test_2_a_runs_findings_are_logged_once_and_kept_with_its_resolution(tmp_path, capsys):
    """A finding on the metadata (here one half-set label for every particle, accepted) reaches
    the run's log once, at the warning level, and its ``fsc.json``, which ``info RUN`` reads."""
    from test_statistics import simulate_particles, write_star_of

    particles, _, _ = simulate_particles(tmp_path / "d", n=80)
    star = write_star_of(particles, tmp_path / "d" / "one_subset.star", np.ones(80, dtype=int))
    out = tmp_path / "run"
    fast = ["--stage-steps", "2", "--stage-fractions", "1.0", "--n-gaussians", "20"]
    args = [*fast, "--no-progress", "--accept-warnings"]
    assert main(["reconstruct", str(star), "-o", str(out), *args]) == 0
    capsys.readouterr()
    log = [line for line in (out / "log.txt").read_text().splitlines() if "subset 1" in line]
    assert len(log) == 1 and " WARNING warning: " in log[0] and "(accepted)" in log[0]
    warnings = json.loads((out / "fsc.json").read_text())["warnings"]
    assert len([w for w in warnings if "subset 1" in w and w.endswith("(accepted)")]) == 1
    assert main(["info", str(out)]) == 0
    assert sum("subset 1" in line for line in capsys.readouterr().out.splitlines()) == 1
