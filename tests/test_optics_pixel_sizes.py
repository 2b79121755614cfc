"""Optics groups with different pixel sizes: each group is reconstructed with its own pixel size.

A noise-free simulated set is split into two optics groups; the second group's particles are
projected into a larger box at the same pixel size and Fourier-cropped back to the box, so that
they have another pixel size (as ``relion_preprocess --scale`` or cryoSPARC downsampling makes
them). The statistics of the mixed set must give the same map as those of the single-group set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cryosplat.core.ctf import CTFParams, ctf_from_params
from cryosplat.core.errors import InputError
from cryosplat.core.fourier import fft2_centered, ifft2_centered, phase_shift_2d
from cryosplat.core.fourier_slice import extract_slices
from cryosplat.core.padded_transform import volume_to_padded_ft
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import MRCStack, write_stack
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.particle_set import OpticsGroup, ParticleSet
from cryosplat.reconstruct.grid.gather import accumulate
from cryosplat.reconstruct.run import check_engine_particles
from cryosplat.validation.fsc import fsc

BOX, PIXEL, BIG = 24, 3.0, 30  # group 2: box 30 at 3 Å Fourier-cropped to 24 → 3.75 Å
N = 600


def _project(truth: GaussianModel, rotations, shifts, ctf: CTFParams, box: int) -> np.ndarray:
    """Noise-free CTF-modulated projections of ``truth`` in a ``box`` at ``PIXEL`` Å."""
    with torch.no_grad():
        volume = truth.voxelize(box, PIXEL)
    grid = volume_to_padded_ft(volume, 2, PIXEL, gridding_correction=True, half=True)
    spectra = extract_slices(grid, torch.tensor(rotations), box, 2)
    spectra = phase_shift_2d(spectra, torch.tensor(shifts), PIXEL)
    return ifft2_centered(spectra * ctf_from_params(ctf, box, PIXEL, dtype=torch.float64)).real


def _fourier_crop(images: torch.Tensor, box: int) -> np.ndarray:
    """Downsample (B, D, D) images to ``box`` by Fourier cropping, keeping their pixel values."""
    big = images.shape[-1]
    lo = big // 2 - box // 2
    spectra = fft2_centered(images)[:, lo : lo + box, lo : lo + box]
    return (ifft2_centered(spectra).real * (box / big) ** 2).numpy()


def truth_and_metadata(defocus_angstrom: tuple[float, float], n: int = N):
    """A 60-Gaussian truth in a box of ``BOX`` at ``PIXEL`` Å and ``n`` particles' poses and CTF
    (defocus drawn uniformly over ``defocus_angstrom``, seeded): ``(truth, rotations, shifts,
    ctf)``."""
    truth = GaussianModel.random(
        60, BOX, PIXEL, seed=3, radius_fraction=0.2, scale_angstrom=0.8 * PIXEL, dtype=torch.float64
    )
    rng = np.random.default_rng(4)
    rotations = random_rotations(n, rng)
    shifts = rng.normal(scale=2.0, size=(n, 2))
    defocus = rng.uniform(*defocus_angstrom, n)
    ctf = CTFParams.create(
        n,
        defocus_u_angstrom=defocus,
        defocus_v_angstrom=defocus - 300,
        defocus_angle_degrees=rng.uniform(0, 180, n),
    )
    return truth, rotations, shifts, ctf


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    """(single-group set, two-group set with group 2 at 3.75 Å) of the same particles."""
    folder: Path = tmp_path_factory.mktemp("optics")
    truth, rotations, shifts, ctf = truth_and_metadata((8000, 20000))
    single = _project(truth, rotations, shifts, ctf, BOX).numpy()
    second = np.arange(N // 2, N)
    cropped = _fourier_crop(
        _project(truth, rotations[second], shifts[second], ctf.subset(second), BIG), BOX
    )
    mixed = single.copy()
    mixed[second] = cropped
    sets = []
    for name, images in (("single", single), ("mixed", mixed)):
        write_stack(folder / f"{name}.mrcs", images, PIXEL)
        sets.append(
            ParticleSet(
                BOX,
                PIXEL,
                [MRCStack(folder / f"{name}.mrcs")],
                np.zeros(N, dtype=np.int64),
                np.arange(N),
                rotations,
                shifts,
                ctf,
            )
        )
    groups = np.zeros(N, dtype=np.int64)
    groups[second] = 1
    sets[1].optics_group = groups
    sets[1].optics = [
        OpticsGroup("fine", PIXEL, BOX, 300.0, 2.7, 0.1),
        OpticsGroup("coarse", PIXEL * BIG / BOX, BOX, 300.0, 2.7, 0.1),
    ]
    return sets


def _wiener(particles: ParticleSet) -> np.ndarray:
    return accumulate(particles).reconstruct_wiener(regularization=1e-4).numpy()


@pytest.mark.slow
def test_each_optics_group_reconstructs_with_its_own_pixel_size(two_sets):
    single, mixed = two_sets
    assert mixed.mixed_pixel_sizes and not single.mixed_pixel_sizes
    reference = _wiener(single)
    # Shells 1 .. D/2 - 1: every frequency gathered (up to D/2 - 2/pad), i.e. to Nyquist.
    curve = fsc(reference, _wiener(mixed))[1 : BOX // 2]
    assert curve.min() >= 0.99, np.round(curve, 4)
    # The same images taken at the reconstruction's pixel size (the old behaviour) are wrong.
    mixed.optics[1].pixel_size_angstrom = PIXEL
    try:
        wrong = fsc(reference, _wiener(mixed))[1 : BOX // 2]
    finally:
        mixed.optics[1].pixel_size_angstrom = PIXEL * BIG / BOX
    assert wrong.min() < 0.9, np.round(wrong, 4)


def test_the_per_image_engine_refuses_mixed_pixel_sizes(two_sets):
    single, mixed = two_sets
    check_engine_particles(single, "splat")
    check_engine_particles(mixed, "grid")
    with pytest.raises(InputError, match=r"fine 3 Å, coarse 3\.75 Å"):
        check_engine_particles(mixed, "splat")
