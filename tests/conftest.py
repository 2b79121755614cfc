"""Shared pytest fixtures: the real-data folder (skipping when absent), a small synthetic stack."""

from __future__ import annotations

import shutil
from dataclasses import replace
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


def simulate_tiny(folder: Path, truth, **changes) -> Path:
    """120 particles of ``truth`` (a GaussianModel) at box 24, 4 Å/px, SNR 1, defocus 1–2 µm,
    shifts 2 Å s.d., seed 1 (``changes``: other :class:`SimulationConfig` fields); the truth map
    as ``truth.mrc`` beside ``particles.star``, whose path is returned."""
    from cryosplat.simulate.simulation import SimulationConfig, simulate

    truth.save(folder / "truth.npz")
    config = SimulationConfig(
        n_particles=120,
        box=24,
        pixel_size_angstrom=4.0,
        snr=1.0,
        seed=1,
        shift_sd_angstrom=2.0,
        defocus_min_um=1.0,
        defocus_max_um=2.0,
    )
    return simulate(folder / "truth.npz", folder / "sim", replace(config, **changes)).star_path


def two_settings(particles):
    """The set as two optics settings of alternate rows (the second's Cs 10⁻⁴ mm apart: the same
    images, told apart as a merged set's sources are)."""
    group = particles.optics[0]
    second = replace(group, name="second", cs_mm=group.cs_mm + 1e-4)
    return replace(
        particles,
        optics=[replace(group, name="first"), second],
        optics_group=np.arange(len(particles)) % 2,
        notes=[],
        warnings=[],
    )


# Two short stages: a complete run in seconds, for tests of what reads a run.
QUICK_STAGES = ["--stage-fractions", "0.5,1.0", "--stage-steps", "40,40", "--no-progress"]


def reconstruct_quickly(*args: str) -> int:
    """``cryosplat reconstruct ARGS`` with :data:`QUICK_STAGES`; its exit code."""
    from cryosplat.cli.main import main

    return main(["reconstruct", *args, *QUICK_STAGES])


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory) -> Path:
    """:func:`simulate_tiny` of a 40-Gaussian blob."""
    from cryosplat.model.gaussians import GaussianModel

    truth = GaussianModel.random(40, 24, 4.0, seed=5, radius_fraction=0.2, scale_angstrom=5.0)
    return simulate_tiny(tmp_path_factory.mktemp("tiny"), truth)
