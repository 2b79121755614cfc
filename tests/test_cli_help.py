"""One command-line dialect: fast help (no torch, no gemmi), one meaning per option, clear refusals."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cryosplat.cli import names
from cryosplat.cli.main import build_parser, main

CHECK = (
    "import sys; from cryosplat.cli.main import build_parser; build_parser(); "
    "heavy = sorted(m for m in ('torch', 'gemmi') if m in sys.modules); print(heavy)"
)


def test_building_the_parser_imports_neither_torch_nor_gemmi():
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_choices_equal_the_packages_own():
    from cryosplat.particles.dust import DUST_SDS
    from cryosplat.reconstruct.config import ENGINES
    from cryosplat.reconstruct.run import _ENGINE_RUNS
    from cryosplat.render import BACKENDS

    assert names.ENGINES == ENGINES and names.BACKENDS == BACKENDS
    assert names.DUST_SDS == DUST_SDS
    assert tuple(_ENGINE_RUNS) == ENGINES  # every engine a config may name has a run


@pytest.mark.parametrize(
    "command", ["info", "project", "simulate", "reconstruct", "sharpen", "demo"]
)
def test_every_command_takes_output_as_o_or_output(command):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    flags = {f for a in sub._actions for f in a.option_strings}
    assert "--out" not in flags
    if command != "info":
        assert {"-o", "--output"} <= flags


@pytest.mark.parametrize(
    "engine,option",
    [
        ("grid", ["--epochs", "3"]),
        ("grid", ["--backend", "fast"]),
        ("splat", ["--pad", "3"]),
        ("splat", ["--prior-strength", "0"]),
    ],
)
def test_an_option_of_the_other_engine_is_refused(tmp_path, capsys, engine, option):
    args = ["reconstruct", str(tmp_path / "none.star"), "-o", str(tmp_path / "o")]
    assert main([*args, "--engine", engine, *option]) == 2
    err = capsys.readouterr().err
    assert f"{option[0]}: option(s) of --engine" in err and f"({engine})" in err
    assert not (tmp_path / "o").exists()


def test_simulate_help_states_the_configs_defaults_in_angstrom():
    from cryosplat.simulate.simulation import SimulationConfig

    d = SimulationConfig(n_particles=1)
    sub = build_parser()._subparsers._group_actions[0].choices["simulate"]
    helps = {a.option_strings[-1]: a.help for a in sub._actions if a.option_strings}
    expected = {
        "--defocus-min": d.defocus_min_um * 1e4,
        "--defocus-max": d.defocus_max_um * 1e4,
        "--voltage": d.voltage_kv,
        "--cs": d.cs_mm,
        "--amplitude-contrast": d.amplitude_contrast,
        "--shift-sd": d.shift_sd_angstrom,
        "--batch-size": d.batch_size,
        "--images-per-stack": d.images_per_stack,
        "--seed": d.seed,
    }
    for flag, value in expected.items():
        stated = float(re.search(r"default ([0-9.]+)", helps[flag]).group(1))
        assert stated == pytest.approx(value), flag
    assert "Å" in helps["--defocus-min"] and "µm" not in helps["--defocus-min"]


def test_reconstruct_help_states_the_configs_defaults():
    from cryosplat.reconstruct.grid.fit import GridFitConfig
    from cryosplat.reconstruct.run import ReconstructConfig

    sub = build_parser()._subparsers._group_actions[0].choices["reconstruct"]
    helps = {a.option_strings[-1]: a.help for a in sub._actions if a.option_strings}
    fit = GridFitConfig()
    from cryosplat.validation.local_weight import DEFAULT_SIGMA_PX

    assert ReconstructConfig().local_weight_sigma_px is None  # from the resolution:
    stated = re.search(
        r"a third of the fit's .* at least ([0-9.]+)\)", helps["--local-weight-sigma"]
    )
    assert float(stated.group(1)) == DEFAULT_SIGMA_PX
    expected = {
        "--prior-strength": fit.prior_strength,
        "--density-control": fit.density_control_fraction,
    }
    for flag, value in expected.items():
        stated = float(re.search(r"default ([0-9.]+)\)", helps[flag]).group(1))
        assert stated == pytest.approx(value), flag


def test_a_command_imports_torch_with_its_objects_frozen():
    # In a fresh interpreter: the collector is on again afterwards and the import's objects are
    # frozen (the final collections at exit skip them); in a program that already holds PyTorch
    # (as this test session does) nothing is frozen.
    code = (
        "import gc; from cryosplat.cli.main import import_torch; import_torch(); "
        "print(gc.isenabled(), gc.get_freeze_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    enabled, frozen = out.stdout.split()
    assert enabled == "True" and int(frozen) > 50_000
    import gc

    import torch  # noqa: F401

    from cryosplat.cli.main import import_torch

    before = gc.get_freeze_count()
    import_torch()
    assert gc.get_freeze_count() == before and gc.isenabled()
