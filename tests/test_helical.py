"""Helical symmetry (``cryosplat.core.helical``, ``reconstruct.grid.helical_statistics`` and
``helical_check``): RELION's operators, the statistics summed over the units equal to the units'
maps summed in real space, the check that tells a helix's hand, the command-line options, and a
run against ``relion_reconstruct`` with the same options."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_helical import helix_map  # noqa: E402

from cryosplat.cli.helical_options import add_helical_arguments, helical_from_args
from cryosplat.core.errors import InputError
from cryosplat.core.helical import HelicalSymmetry
from cryosplat.core.padded_transform import volume_to_padded_ft
from cryosplat.io.mrc import read_map, write_map
from cryosplat.particles.halves import split_halves
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.config import ReconstructConfig
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.grid.helical_check import check_helix, unit_moved
from cryosplat.reconstruct.grid.helical_statistics import helically_symmetrized
from cryosplat.reconstruct.grid.statistics import FourierStatistics
from cryosplat.validation.fsc import fsc


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7])
def test_the_units_are_relions(n):
    # BackProjector::applyHelicalSymmetry: h_min = -n/2, h_max = -h_min + n%2 (C++ division)
    low = -(n // 2)
    assert HelicalSymmetry(30.0, 5.0, n).steps() == list(range(low, -low + n % 2))


@pytest.mark.parametrize(
    ("twist", "rise", "n", "what"),
    [(30.0, 5.0, 1, "2 to"), (30.0, -1.0, 3, "rise"), (400.0, 5.0, 3, "twist"), (0, 0, 3, "both")],
)
def test_bad_helices_are_named(twist, rise, n, what):
    with pytest.raises(InputError, match=what):
        HelicalSymmetry(twist, rise, n).validate()


def _blobs(box: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    c = torch.arange(box, dtype=torch.float64) - box // 2
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    volume = torch.zeros(box, box, box, dtype=torch.float64)
    for p in rng.uniform(-box / 4, box / 4, (12, 3)):
        volume += torch.exp(-((x - p[0]) ** 2 + (y - p[1]) ** 2 + (z - p[2]) ** 2) / 4.5)
    return volume


@pytest.mark.parametrize(
    ("twist", "rise", "tolerance"), [(90.0, 4.0, 1e-4), (30.0, 3.0, 3e-3), (-45.0, 5.0, 3e-3)]
)
def test_the_summed_statistics_are_the_units_maps_summed(twist, rise, tolerance):
    """Trilinear on the padded grid with a phase (RELION's way) against each unit's map turned
    and moved in real space (the check's way): the same sum, exactly where the turn moves grid
    points onto grid points (90°, a rise of whole voxels)."""
    box, pad, pixel = 24, 2, 2.0
    volume = _blobs(box, 0)
    spectrum = volume_to_padded_ft(volume, pad, pixel, half=True)
    radius = box / 2 - 1
    power = torch.zeros(int(radius**2) + 1)
    weights = torch.ones(spectrum.shape, dtype=torch.float64)
    stats = FourierStatistics(weights, spectrum, box, pad, pixel, 1, power, radius)
    helix = HelicalSymmetry(twist, rise, 3)
    summed = helically_symmetrized(stats, helix)
    units = sum(unit_moved(volume, helix, step, pixel) for step in helix.steps())
    expected = volume_to_padded_ft(units, pad, pixel, half=True)
    size = pad * box
    k = torch.arange(size, dtype=torch.float64) - size // 2
    kz, ky, kx = torch.meshgrid(
        k, k, torch.arange(size // 2 + 1, dtype=torch.float64), indexing="ij"
    )
    inside = kx**2 + ky**2 + kz**2 <= (radius * pad - 1) ** 2
    error = (summed.data - expected)[inside].abs().square().sum()
    assert float(error / expected[inside].abs().square().sum()) < tolerance
    assert torch.allclose(summed.weights[inside], torch.full_like(weights[inside], 3.0))
    assert torch.equal(summed.power, power * 3) and "helical symmetry imposed" in summed.notes[-1]


UNIT = [(16.0, 0.0, 0.0, 1.0, 3.5), (21.0, 4.0, 3.0, 0.7, 3.0), (13.0, -5.0, 5.0, 0.5, 3.0)]
"""Three blobs (x, y, z, amplitude, s.d.; Å) of a helix narrow enough for a box of 32 at 3 Å."""


def _helix_map(box: int, pixel: float, twist: float, rise: float) -> np.ndarray:
    """A right-handed helix (for a positive twist) of :data:`UNIT` along z, through the box."""
    return helix_map(twist, rise, box, pixel, UNIT, reach=1.0)


@pytest.fixture(scope="module")
def helical_set(tmp_path_factory):
    from dataclasses import replace

    from cryosplat.simulate.simulation import SimulationConfig, simulate

    folder = tmp_path_factory.mktemp("helix")
    write_map(folder / "helix.mrc", _helix_map(32, 3.0, 40.0, 9.0), 3.0)
    config = SimulationConfig(
        n_particles=800, box=32, pixel_size_angstrom=3.0, snr=0.3, seed=3, shift_sd_angstrom=2.0
    )
    config = replace(config, defocus_min_um=1.0, defocus_max_um=2.0)
    return simulate(folder / "helix.mrc", folder / "sim", config).star_path


def test_the_check_tells_the_helix_from_its_other_hand(helical_set):
    particles = read_particles(helical_set)
    halves = split_halves(particles)[:2]
    right = check_helix(particles, halves, HelicalSymmetry(40.0, 9.0, 3), AccumulateConfig())
    left = check_helix(particles, halves, HelicalSymmetry(-40.0, 9.0, 3), AccumulateConfig())
    assert right is not None and left is not None
    assert right.held and right.agreement > 0.8, right.describe()
    assert not left.held and left.agreement < 0.3, left.describe()
    assert "is the hand right" in left.describe()
    assert right.other_hand == pytest.approx(left.agreement, abs=0.02)
    assert left.other_hand == pytest.approx(right.agreement, abs=0.02)


def test_a_helix_whose_other_hand_agrees_better_is_not_held():
    from cryosplat.reconstruct.grid.helical_check import HAND_MARGIN, MIN_AGREEMENT, HelicalCheck

    def held(agreement, other):
        return HelicalCheck(HelicalSymmetry(-1.2, 4.75, 9), agreement, 4, (2, 3), 10.0, 100, other)

    assert held(0.85, 0.50).held and not held(0.50 + 0.01, 0.85).held
    assert held(0.7, 0.7 + HAND_MARGIN - 0.01).held and not held(0.7, 0.7 + HAND_MARGIN + 0.01).held
    assert held(0.9, None).held and not held(MIN_AGREEMENT - 0.01, None).held
    assert "the other hand agrees better" in held(0.6, 0.85).describe()


def test_the_summed_halves_agree_better_with_the_truth(helical_set):
    particles = read_particles(helical_set)
    half = split_halves(particles)[0]
    stats = accumulate(particles, half, AccumulateConfig())
    truth = torch.as_tensor(read_map(helical_set.parent / "truth.mrc")[0], dtype=torch.float64)
    plain = np.asarray(fsc(stats.reconstruct_wiener().double(), truth))
    right = helically_symmetrized(stats, HelicalSymmetry(40.0, 9.0, 3)).reconstruct_wiener()
    left = helically_symmetrized(stats, HelicalSymmetry(-40.0, 9.0, 3)).reconstruct_wiener()
    shells = slice(3, 12)
    assert np.mean(np.asarray(fsc(right.double(), truth))[shells]) > np.mean(plain[shells]) + 0.05
    assert np.mean(np.asarray(fsc(left.double(), truth))[shells]) < np.mean(plain[shells]) - 0.2


def _options(*argv):
    parser = argparse.ArgumentParser()
    add_helical_arguments(parser)
    return helical_from_args(parser.parse_args(list(argv)))


def test_the_options_come_together_or_not_at_all():
    assert _options() is None
    helix = _options("--helical-twist", "-1.5", "--helical-rise", "4.75", "--helical-asu", "5")
    assert helix == HelicalSymmetry(-1.5, 4.75, 5)
    with pytest.raises(InputError, match="--helical-asu is missing"):
        _options("--helical-twist", "30", "--helical-rise", "4")
    with pytest.raises(InputError, match="the per-image engine"):
        ReconstructConfig(engine="splat", helical=helix).validate()


@pytest.mark.relion
def test_the_summed_inversion_matches_relion_reconstruct_with_the_same_options(tmp_path):
    if shutil.which("relion_project") is None:
        pytest.skip("RELION absent")
    from cryosplat.core.conventions import euler_relion_to_matrix
    from cryosplat.core.ctf import CTFParams
    from cryosplat.io.star import write_relion31_particles

    box, pixel, n = 32, 3.0, 600
    write_map(tmp_path / "helix.mrc", _helix_map(box, pixel, 40.0, 9.0), pixel)
    rng = np.random.default_rng(5)
    defocus = rng.uniform(10000, 20000, n)
    angles = [rng.uniform(-180, 180, n), 90 + rng.normal(0, 8, n), rng.uniform(-180, 180, n)]
    write_relion31_particles(
        tmp_path / "in.star",
        image_names=None,
        rotations=euler_relion_to_matrix(*angles),
        shifts_angstrom=np.zeros((n, 2)),
        ctf=CTFParams.create(n, defocus_u_angstrom=defocus, defocus_v_angstrom=defocus),
        pixel_size_angstrom=pixel,
        box=box,
    )
    run = {"cwd": tmp_path, "check": True, "capture_output": True}
    project = ["relion_project", "--i", "helix.mrc", "--o", "proj", "--ang", "in.star", "--ctf"]
    subprocess.run([*project, "--angpix", str(pixel), "--add_noise", "--white_noise", "2"], **run)
    helix = ["--helical_twist", "40", "--helical_rise", "9", "--nr_helical_asu", "3"]
    reconstruct = ["relion_reconstruct", "--i", "proj.star", "--ctf", "--angpix", str(pixel)]
    subprocess.run([*reconstruct, "--o", "relion.mrc", *helix], **run)
    relion = torch.as_tensor(read_map(tmp_path / "relion.mrc")[0], dtype=torch.float64)
    particles = read_particles(tmp_path / "proj.star")
    stats = accumulate(particles, np.arange(n), AccumulateConfig())
    agreement = {}
    for twist in (40.0, -40.0):
        ours = helically_symmetrized(stats, HelicalSymmetry(twist, 9.0, 3)).reconstruct_wiener()
        agreement[twist] = float(np.mean(np.asarray(fsc(ours.double(), relion))[2:12]))
    assert agreement[40.0] > 0.9 and agreement[-40.0] < agreement[40.0] - 0.2, agreement


def test_a_run_imposes_the_helix_refuses_its_other_hand_and_resumes_runs_from_before(
    helical_set, tmp_path, capsys
):
    import json

    from cryosplat.cli.main import main
    from tests.conftest import QUICK_STAGES

    def run(*args):
        code = main(["reconstruct", str(helical_set), *args, *QUICK_STAGES])
        return code, capsys.readouterr().err

    helix = ["--helical-twist", "40", "--helical-rise", "9", "--helical-asu", "3"]
    out = tmp_path / "run"
    code, err = run("-o", str(out), *helix, "--accept-warnings", "--keep-checkpoints")
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["helical"] == {"twist_degrees": 40.0, "rise_angstrom": 9.0, "n_asu": 3}
    log = (out / "log.txt").read_text()
    assert "helical check: the data hold the helix of twist 40° and rise 9 Å" in log
    assert "helical symmetry: twist 40°, rise 9 Å, 3 asymmetric units summed" in log
    from cryosplat.cli.info_run import format_run
    from cryosplat.reconstruct.run_summary import read_run

    assert "symmetry C1, helix twist 40.0°, rise 9.0 Å, 3 units summed" in format_run(read_run(out))
    wrong = ["--helical-twist", "-40", "--helical-rise", "9", "--helical-asu", "3"]
    code, err = run("-o", str(tmp_path / "wrong"), *wrong)
    assert code != 0 and "do not hold the helix of twist -40°" in err
    # a C1 run made before the setting records no "helical": it resumes as one without a helix
    plain = tmp_path / "plain"
    code, err = run("-o", str(plain), "--accept-warnings", "--keep-checkpoints")
    assert code == 0, err
    record = json.loads((plain / "run.json").read_text())
    del record["identity"]["helical"]
    (plain / "run.json").write_text(json.dumps(record))
    code, err = run("-o", str(plain), "--resume", "--accept-warnings")
    assert code == 0, err


def test_units_spanning_more_than_half_the_box_are_warned_of(helical_set):
    from cryosplat.reconstruct.grid.helical_check import apply_helical_check

    particles = read_particles(helical_set)  # box 32 at 3 Å: 96 Å
    halves = split_halves(particles)[:2]
    apply_helical_check(particles, halves, HelicalSymmetry(40.0, 9.0, 5), AccumulateConfig())
    assert not any("helical units summed span" in w for w in particles.warnings)  # 36 Å
    apply_helical_check(particles, halves, HelicalSymmetry(40.0, 9.0, 7), AccumulateConfig())
    assert any("the 7 helical units summed span 54 Å" in w for w in particles.warnings)


def test_halves_drawn_here_without_tubes_are_warned_of_under_a_helix(helical_set):
    from cryosplat.reconstruct.grid.helical_check import apply_helical_check

    particles = read_particles(helical_set)  # simulated: no micrographs, no tubes
    halves = split_halves(particles)[:2]
    helix = HelicalSymmetry(40.0, 9.0, 3)
    apply_helical_check(particles, halves, helix, AccumulateConfig(), drawn_here=False)
    assert not any("records no helical tubes" in w for w in particles.warnings)
    apply_helical_check(particles, halves, helix, AccumulateConfig(), drawn_here=True)
    assert any("records no helical tubes" in w for w in particles.warnings)
