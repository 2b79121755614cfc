"""Defocus recorded with errors for the benchmark sets (``benchmarks/bench_ctf_errors.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_ctf_errors import one_defocus_per_micrograph, recorded_defocus  # noqa: E402
from bench_datasets import DatasetSpec, make_dataset  # noqa: E402

from cryosplat.core.ctf import CTFParams  # noqa: E402
from cryosplat.io.mrc import MRCStack  # noqa: E402
from cryosplat.io.star import read_star  # noqa: E402


def _ctf(n: int) -> CTFParams:
    rng = np.random.default_rng(1)
    u = rng.uniform(8_000, 25_000, n)
    return CTFParams.create(n, defocus_u_angstrom=u, defocus_v_angstrom=u - 300.0)


def test_each_defocus_moves_by_the_asked_error_its_astigmatism_kept():
    ctf = _ctf(20_000)
    moved = recorded_defocus(ctf, 300.0, seed=4)
    error = moved.defocus_u_angstrom - ctf.defocus_u_angstrom
    assert np.std(error) == pytest.approx(300.0, rel=0.02)
    assert abs(np.mean(error)) < 10.0
    np.testing.assert_allclose(moved.defocus_u_angstrom - moved.defocus_v_angstrom, 300.0)
    np.testing.assert_array_equal(moved.defocus_angle_degrees, ctf.defocus_angle_degrees)
    np.testing.assert_array_equal(moved.voltage_kv, ctf.voltage_kv)


def test_the_errors_are_seeded_absent_at_zero_and_refused_below_it():
    ctf = _ctf(100)
    a, b = recorded_defocus(ctf, 100.0, 7), recorded_defocus(ctf, 100.0, 7)
    np.testing.assert_array_equal(a.defocus_u_angstrom, b.defocus_u_angstrom)
    other = recorded_defocus(ctf, 100.0, 8).defocus_u_angstrom
    assert not np.array_equal(a.defocus_u_angstrom, other)
    assert recorded_defocus(ctf, 0.0, 7) is ctf
    with pytest.raises(ValueError, match="-5"):
        recorded_defocus(ctf, -5.0, 7)


def test_a_micrographs_particles_share_its_error_besides_their_own():
    ctf = _ctf(20_000)
    micrographs = np.arange(20_000) // 50
    moved = recorded_defocus(ctf, 100.0, 5, micrographs, 250.0)
    error = moved.defocus_u_angstrom - ctf.defocus_u_angstrom
    own = recorded_defocus(ctf, 100.0, 5).defocus_u_angstrom - ctf.defocus_u_angstrom
    shared = (error - own).reshape(-1, 50)
    np.testing.assert_allclose(shared, shared[:, :1].repeat(50, 1), atol=1e-6)
    assert np.std(shared[:, 0]) == pytest.approx(250.0, rel=0.1)
    with pytest.raises(ValueError, match="micrograph"):
        recorded_defocus(ctf, 0.0, 5, None, 250.0)


def test_a_micrographs_particles_are_imaged_at_its_defocus_plus_their_heights():
    ctf = _ctf(6_000)
    micrographs = np.arange(6_000) // 30
    imaged, estimated = one_defocus_per_micrograph(ctf, micrographs, 120.0, seed=3)
    per_micrograph = estimated.defocus_u_angstrom.reshape(-1, 30)
    np.testing.assert_array_equal(per_micrograph, per_micrograph[:, :1].repeat(30, 1))
    np.testing.assert_array_equal(per_micrograph[:, 0], ctf.defocus_u_angstrom[::30])
    height = imaged.defocus_u_angstrom - estimated.defocus_u_angstrom
    np.testing.assert_allclose(imaged.defocus_v_angstrom - estimated.defocus_v_angstrom, height)
    assert np.std(height) == pytest.approx(120.0, rel=0.05)
    with pytest.raises(ValueError, match="-1"):
        one_defocus_per_micrograph(ctf, micrographs, -1.0, seed=3)


def test_a_set_with_defocus_errors_holds_the_same_images(tmp_path, relion_available, shared_data):
    exact = DatasetSpec("exact", "maps/EMD-3197.map", 20, 11.4, 300, 1.0, seed=9)
    moved = DatasetSpec(
        "moved", "maps/EMD-3197.map", 20, 11.4, 300, 1.0, seed=9, defocus_error_angstrom=250.0
    )
    a, b = (make_dataset(s, tmp_path, log=lambda _: None) for s in (exact, moved))
    images = [MRCStack(d.folder / "particles.mrcs").read(np.arange(300)) for d in (a, b)]
    np.testing.assert_array_equal(images[0], images[1])
    tables = [read_star(d.star)["particles"] for d in (a, b)]
    du = tables[1].get_float("rlnDefocusU") - tables[0].get_float("rlnDefocusU")
    assert np.std(du) == pytest.approx(250.0, rel=0.15)
    for name in ("rlnAngleRot", "rlnOriginXAngst", "rlnRandomSubset", "rlnImageName"):
        assert tables[1].columns[name] == tables[0].columns[name], name


def test_defocus_errors_need_relion_project(tmp_path):
    spec = DatasetSpec(
        "x", "models/8zpm.cif", 32, 2.0, 10, 0.1, simulator="cryosplat", defocus_error_angstrom=50.0
    )
    with pytest.raises(ValueError, match="defocus_error_angstrom 50.0 need the relion_project"):
        make_dataset(spec, tmp_path, log=lambda _: None)
    named = DatasetSpec(
        "x", "models/8zpm.cif", 32, 2.0, 10, 0.1, simulator="cryosplat", particles_per_micrograph=5
    )
    with pytest.raises(ValueError, match="particles_per_micrograph 5"):
        make_dataset(named, tmp_path, log=lambda _: None)
