"""The local-resolution benchmark's reading of the truth (``benchmarks/bench_local_resolution.py``):
the same windows as the run's, read at 0.5 of the map against the truth."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_local_resolution import row, truth_in_windows  # noqa: E402

from cryosplat.cli.main import main  # noqa: E402
from cryosplat.io.mrc import read_map  # noqa: E402


@pytest.fixture(scope="module")
def run(tiny_set, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("locres") / "run"
    steps = ["--stage-fractions", "0.5,1.0", "--stage-steps", "20,20", "--no-progress"]
    assert main(["reconstruct", str(tiny_set), "-o", str(out), *steps]) == 0
    return out


def test_the_map_against_itself_reads_nyquist_in_every_window(run):
    reported, expected, inside = truth_in_windows(run, run / "map.mrc")
    pixel = read_map(run / "map.mrc")[1]
    assert len(reported) == len(expected) == len(inside) and inside.any()
    np.testing.assert_allclose(expected, 2 * pixel)


def test_a_truth_that_differs_reads_coarser_and_the_row_says_so(run, tmp_path):
    """A 'truth' that is the map plus white noise of its own s.d. reads coarser than Nyquist in
    the windows (the noise outweighs the map's fine detail); the table's row counts the windows
    it used."""
    from cryosplat.io.mrc import write_map

    made, pixel = read_map(run / "map.mrc")
    noisy = made + np.random.default_rng(0).normal(size=made.shape) * made.std()
    write_map(truth := tmp_path / "noisy.mrc", noisy.astype(np.float32), pixel)
    _, expected, inside = truth_in_windows(run, truth)
    assert np.median(expected[inside]) > 1.5 * 2 * pixel
    text = row("tiny", run, truth)
    assert text.startswith(f"| tiny | {int((inside & np.isfinite(expected)).sum())} |")
    assert text.count("|") == 8
