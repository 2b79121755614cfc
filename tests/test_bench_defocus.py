"""The defocus benchmark's helpers (``benchmarks/bench_defocus.py``): RELION's STAR names a
micrograph per hundred particles and reads the stacks from its own folder; the defocus errors are
matched by image name."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_defocus  # noqa: E402
from bench_defocus import with_micrographs  # noqa: E402

from cryosplat.io.star import read_star, write_star  # noqa: E402
from cryosplat.particles.read import read_particles  # noqa: E402
from tests.conftest import simulate_tiny  # noqa: E402


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    from cryosplat.model.gaussians import GaussianModel

    folder = tmp_path_factory.mktemp("bench_defocus")
    truth = GaussianModel.random(20, 24, 4.0, seed=2, radius_fraction=0.2, scale_angstrom=5.0)
    return simulate_tiny(folder, truth, n_particles=250)


def test_relions_star_names_micrographs_and_reads_the_stacks_beside_it(small_set, tmp_path):
    out = with_micrographs(small_set, tmp_path / "work" / "relion.star")
    block = read_star(out)["particles"]
    names = block.columns["rlnMicrographName"]
    assert names[0] == names[99] != names[100] and len(set(names)) == 3
    original = read_star(small_set)["particles"]
    for column, values in original.columns.items():
        assert block.columns[column] == values
    moved = read_particles(out)  # the stacks read from the new STAR's folder
    np.testing.assert_array_equal(
        moved.read_images([0, 249]), read_particles(small_set).read_images([0, 249])
    )


def test_ctf_errors_are_matched_by_image_name(small_set, tmp_path):
    blocks = {name: dict(block.columns) for name, block in read_star(small_set).items()}
    particles = blocks["particles"]
    truth = read_particles(small_set).ctf
    truth_star = tmp_path / "in.star"  # as relion_project reads it: no image names
    unnamed = {k: v for k, v in particles.items() if k != "rlnImageName"}
    write_star(truth_star, {**blocks, "particles": unnamed})

    def written(ctf, order):
        for column, values in (
            ("rlnDefocusU", ctf.defocus_u_angstrom),
            ("rlnDefocusV", ctf.defocus_v_angstrom),
            ("rlnDefocusAngle", ctf.defocus_angle_degrees),
        ):
            particles[column] = [f"{values[i]:.6f}" for i in order]
        return {**blocks, "particles": {k: v for k, v in particles.items()}}

    rows = np.arange(len(truth))
    moves = np.tile([30.0, -40.0], (len(truth), 1))  # 50 Å of astigmatism
    recorded_star, new_star = tmp_path / "recorded.star", tmp_path / "new.star"
    write_star(recorded_star, written(truth.moved(300.0, moves), rows))
    original = {k: list(v) for k, v in particles.items()}
    order = rows[::-1]  # another order: matched by name, not by row
    particles.update({k: [v[i] for i in order] for k, v in original.items()})
    write_star(new_star, written(truth.moved(100.0), order))
    errors = bench_defocus.ctf_errors(new_star, truth_star, recorded_star)
    assert errors["defocus_before"] == pytest.approx(300.0, abs=1e-4)
    assert errors["defocus_after"] == pytest.approx(100.0, abs=1e-4)
    assert errors["astigmatism_before"] == pytest.approx(50.0, abs=1e-4)
    assert errors["astigmatism_after"] == pytest.approx(0.0, abs=1e-4)
