"""The defocus benchmark's helpers (``benchmarks/bench_defocus.py``): RELION's STAR names a
micrograph per hundred particles and reads the stacks from its own folder; the defocus errors are
matched by image name."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_defocus import defocus_error, with_micrographs  # noqa: E402

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


def test_defocus_errors_are_matched_by_image_name(small_set, tmp_path):
    blocks = {name: dict(block.columns) for name, block in read_star(small_set).items()}
    particles = blocks["particles"]
    truth = np.asarray(particles["rlnDefocusU"], dtype=np.float64)
    truth_star = tmp_path / "in.star"  # as relion_project reads it: no image names
    unnamed = {k: v for k, v in particles.items() if k != "rlnImageName"}
    write_star(truth_star, {**blocks, "particles": unnamed})
    recorded_star, new_star = tmp_path / "recorded.star", tmp_path / "new.star"
    particles["rlnDefocusU"] = [f"{v + 300.0:.6f}" for v in truth]
    write_star(recorded_star, blocks)
    order = np.arange(len(truth))[::-1]  # another order: matched by name, not by row
    particles = {k: [v[i] for i in order] for k, v in particles.items()}
    particles["rlnDefocusU"] = [f"{truth[i] + 100.0:.6f}" for i in order]
    write_star(new_star, {**blocks, "particles": particles})
    before, after = defocus_error(new_star, truth_star, recorded_star)
    assert before == pytest.approx(300.0) and after == pytest.approx(100.0)
