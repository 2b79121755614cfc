"""The benchmark sets' envelope B-factors (``benchmarks/bench_datasets._with_bfactors``): one per
image in the spec's range, drawn apart from the rest of the metadata."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_datasets import DatasetSpec, _config, _with_bfactors  # noqa: E402

from cryosplat.simulate.simulation import draw_metadata  # noqa: E402


def _metadata(spec: DatasetSpec):
    return draw_metadata(_config(spec), np.random.default_rng(spec.seed))


def test_envelope_b_factors_lie_in_range_one_per_image_and_leave_the_rest():
    plain = DatasetSpec("s", "maps/m.mrc", 32, 2.0, 500, 0.01, seed=3)
    decayed = replace(plain, ctf_bfactor_angstrom2=(100.0, 300.0))
    ctf = _metadata(plain).ctf
    assert _with_bfactors(ctf, plain) is ctf
    b = _with_bfactors(_metadata(decayed).ctf, decayed)
    assert b.bfactor_angstrom2.shape == (500,)
    assert 100.0 <= b.bfactor_angstrom2.min() and b.bfactor_angstrom2.max() <= 300.0
    assert b.bfactor_angstrom2.std() > 40.0  # spread over the range, not one value
    np.testing.assert_array_equal(b.defocus_u_angstrom, ctf.defocus_u_angstrom)
    np.testing.assert_array_equal(
        _with_bfactors(ctf, decayed).bfactor_angstrom2, b.bfactor_angstrom2
    )
