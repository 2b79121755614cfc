"""Shared pytest fixtures: the real-data folder (skipping when absent), a small synthetic stack."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the read-only real data folder ``../shared/data``; skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture
def relion_available() -> None:
    """Skip unless RELION's programs are on PATH."""
    if shutil.which("relion_project") is None:
        pytest.skip("RELION (relion_project) not on PATH")


@pytest.fixture
def small_stack(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A seeded stack of 6 random 16×16 images at 2.0 Å/px: ``(path, images)``."""
    from cryosplat.io.mrc import write_stack

    images = np.random.default_rng(0).normal(size=(6, 16, 16)).astype(np.float32)
    path = tmp_path / "stack.mrcs"
    write_stack(path, images, 2.0)
    return path, images


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory) -> Path:
    """120 particles of a 40-Gaussian blob, box 24, 4 Å/px, SNR 1 (``particles.star``; the
    truth map as ``truth.mrc`` beside it)."""
    from cryosplat.model.gaussians import GaussianModel
    from cryosplat.simulate.simulation import SimulationConfig, simulate

    box, pixel = 24, 4.0
    d = tmp_path_factory.mktemp("tiny")
    truth = GaussianModel.random(40, box, pixel, seed=5, radius_fraction=0.2, scale_angstrom=5.0)
    truth.save(d / "truth.npz")
    sim = simulate(
        d / "truth.npz",
        d / "sim",
        SimulationConfig(
            n_particles=120,
            box=box,
            pixel_size_angstrom=pixel,
            snr=1.0,
            seed=1,
            shift_sd_angstrom=2.0,
            defocus_min_um=1.0,
            defocus_max_um=2.0,
        ),
    )
    return sim.star_path
