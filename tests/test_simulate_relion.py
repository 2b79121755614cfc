"""``cryosplat simulate`` output as RELION sees it: relion_project agrees, relion_reconstruct recovers.

The acceptance check of the simulator is that RELION, reading our STAR and stacks, reconstructs the
structure: ``relion_reconstruct --ctf`` on particles simulated from the 8ZPM atoms gives a map whose
FSC with the voxelised atom model (``truth.mrc``) crosses 0.5 finer than 2.5× Nyquist. The full-size
version (3,000 splatted particles, box 128, 1.5 Å/px, SNR 0.01) is
``benchmarks/acceptance_simulate.py``. To stay within the test budget on 2 CPUs, the test here uses
1,500 particles, box 64, 2 Å/px, SNR 0.01 with the same threshold (2.5× Nyquist = 10 Å), projected by
Fourier slices of the voxelised atoms (``projection="fourier"``, ~10× faster than splatting 16,000
Gaussians per image); the splatting path is checked image by image against ``relion_project``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from cryosplat.io.mrc import MRCStack, read_map, write_map
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.read import read_particles
from cryosplat.simulate.simulation import SimulationConfig, simulate
from cryosplat.validation.fsc import fsc, resolution_at

pytestmark = [
    pytest.mark.relion,
    pytest.mark.skipif(shutil.which("relion_project") is None, reason="RELION not on PATH"),
]

N_PARTICLES, BOX, PIXEL, SNR = 1500, 64, 2.0, 0.01


def _relion(args: list[str], cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.parametrize("bfactor", [0.0, 150.0])
def test_map_projections_match_relion_project(tmp_path, bfactor):
    """Fourier-slice path: same angles, shifts and astigmatic CTF as relion_project, to 1e-4;
    with an envelope B-factor too (``rlnCtfBfactor``, which relion_project applies)."""
    model = GaussianModel.random(
        60, 48, 2.0, seed=5, radius_fraction=0.25, scale_angstrom=3.0, total_amplitude=1000.0
    )
    with torch.no_grad():
        write_map(tmp_path / "map.mrc", model.voxelize().numpy(), 2.0)
    config = SimulationConfig(
        n_particles=24,
        snr=float("inf"),
        seed=2,
        shift_sd_angstrom=4.0,
        astigmatism_max_angstrom=1000.0,
        batch_size=10,
        bfactor_angstrom2=bfactor,
    )
    result = simulate(tmp_path / "map.mrc", tmp_path / "sim", config)
    _relion(
        ["relion_project", "--i", "map.mrc", "--ang", "sim/particles.star", "--o", "proj", "--ctf"],
        tmp_path,
    )
    ours = read_particles(result.star_path).read_images(np.arange(24))
    theirs = MRCStack(tmp_path / "proj.mrcs").read(np.arange(24))
    # RELION's projections are line sums in voxels; ours are per Å² (× pixel size).
    for a, b in zip(ours, theirs, strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9999
        assert (a * b).sum() / (b * b).sum() == pytest.approx(2.0, rel=2e-3)


def test_splatted_atoms_match_relion_project(tmp_path, shared_data):
    """Splatted 8ZPM atoms vs relion_project of their voxelised map: same images, per Å²."""
    config = SimulationConfig(
        n_particles=12,
        box=BOX,
        pixel_size_angstrom=PIXEL,
        snr=float("inf"),
        seed=4,
        shift_sd_angstrom=4.0,
        astigmatism_max_angstrom=800.0,
    )
    result = simulate(shared_data / "models" / "8zpm.cif", tmp_path, config)
    _relion(
        ["relion_project", "--i", "truth.mrc", "--ang", "particles.star", "--o", "proj", "--ctf"],
        tmp_path,
    )
    ours = read_particles(result.star_path).read_images(np.arange(12))
    theirs = MRCStack(tmp_path / "proj.mrcs").read(np.arange(12))
    for a, b in zip(ours, theirs, strict=True):
        # Atoms narrower than a voxel: the map is point-sampled, the splat is not (~0.98).
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
        assert (a * b).sum() / (b * b).sum() == pytest.approx(PIXEL, rel=0.03)


def test_relion_reconstruct_recovers_8zpm(tmp_path, shared_data):
    """Atoms → cryosplat simulate → relion_reconstruct --ctf: FSC(truth) = 0.5 beyond 2.5× Nyquist."""
    config = SimulationConfig(
        n_particles=N_PARTICLES,
        box=BOX,
        pixel_size_angstrom=PIXEL,
        snr=SNR,
        seed=0,
        shift_sd_angstrom=3.0,
        defocus_min_um=0.8,
        defocus_max_um=2.5,
        astigmatism_max_angstrom=300.0,
        projection="fourier",
    )
    result = simulate(shared_data / "models" / "8zpm.cif", tmp_path / "sim", config)
    _relion(
        ["relion_reconstruct", "--i", "particles.star", "--o", "relion.mrc", "--ctf"],
        result.output_dir,
    )
    recon, voxel = read_map(result.output_dir / "relion.mrc")
    truth, _ = read_map(result.truth_path)
    assert voxel == pytest.approx(PIXEL)
    curve = fsc(recon, truth)
    resolution = resolution_at(curve, 0.5, BOX, PIXEL)
    print(f"relion_reconstruct: FSC(truth) 0.5 at {resolution:.2f} Å")
    assert resolution < 2.5 * (2 * PIXEL), f"FSC 0.5 at {resolution:.2f} Å"
    assert curve[1:4].min() > 0.9  # low resolution: right sign and hand
