"""The benchmark sets' envelope B-factors and phase-plate shifts (``benchmarks/bench_datasets``'s
``_with_bfactors`` and ``_with_phase_shifts``): one per image in the spec's range, drawn apart from
the rest of the metadata, and recorded in the STAR the simulator and the methods read."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_datasets import (  # noqa: E402
    DatasetSpec,
    _config,
    _with_bfactors,
    _with_phase_shifts,
)

from cryosplat.io.star import read_star, write_relion31_particles  # noqa: E402
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


def test_phase_plate_shifts_lie_in_range_one_per_image_and_reach_the_star(tmp_path):
    plain = DatasetSpec("s", "maps/m.mrc", 32, 2.0, 400, 0.01, seed=5)
    plate = replace(plain, phase_shift_degrees=(20.0, 120.0))
    meta = _metadata(plain)
    assert _with_phase_shifts(meta.ctf, plain) is meta.ctf
    shifted = _with_phase_shifts(_with_bfactors(_metadata(plate).ctf, plate), plate)
    phase = shifted.phase_shift_degrees
    assert phase.shape == (400,)
    assert 20.0 <= phase.min() and phase.max() <= 120.0 and phase.std() > 20.0
    np.testing.assert_array_equal(shifted.defocus_u_angstrom, meta.ctf.defocus_u_angstrom)
    star = tmp_path / "in.star"
    write_relion31_particles(
        star,
        image_names=[f"{i + 1}@p.mrcs" for i in range(400)],
        rotations=meta.rotations,
        shifts_angstrom=meta.shifts_angstrom,
        ctf=shifted,
        pixel_size_angstrom=2.0,
        box=32,
    )
    recorded = read_star(star)["particles"].get_float("rlnPhaseShift")
    np.testing.assert_allclose(recorded, phase, rtol=1e-5)
