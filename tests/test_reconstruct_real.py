"""``cryosplat reconstruct`` runs on the real particle sets of ../shared/data without error."""

from __future__ import annotations

import json

import pytest

from cryosplat.cli.main import main

FAST_GRID = ["--stage-steps", "10,10", "--stage-fractions", "0.5,1.0"]


@pytest.mark.parametrize("engine", ["splat", "grid"])
def test_trpv1_real_particles(shared_data, tmp_path, engine):
    star = shared_data / "particles" / "trpv1_10" / "trpv1_small_stack.local.star"
    out = tmp_path / engine
    extra = ["--epochs", "1"] if engine == "splat" else FAST_GRID
    code = main(
        [
            "reconstruct",
            str(star),
            "-o",
            str(out),
            "--engine",
            engine,
            "--n-gaussians",
            "100",
            "--no-progress",
            *extra,
        ]
    )
    assert code == 0
    status = json.loads((out / "run.json").read_text())
    assert status["status"] == "complete"
    assert status["summary"]["box"] == 48
    assert (out / "map.mrc").is_file()


def test_betagal_real_particles(shared_data, tmp_path):
    star = shared_data / "particles" / "betagal_17" / "sample_relion_data.star"
    out = tmp_path / "betagal"
    code = main(
        [
            "reconstruct",
            str(star),
            "-o",
            str(out),
            "--n-gaussians",
            "100",
            "--no-progress",
            "--pad",
            "1",
            *FAST_GRID,
        ]
    )
    assert code == 0
    status = json.loads((out / "run.json").read_text())
    assert status["status"] == "complete"
    assert status["summary"]["box"] == 200
    assert status["summary"]["pixel_size_angstrom"] == pytest.approx(1.338, abs=1e-3)
