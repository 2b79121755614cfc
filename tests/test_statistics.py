"""Fourier sufficient statistics: gathering, additivity, Friedel layout, cropping, Wiener map, I/O."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cryosplat.core.ctf import CTFParams, ctf_from_params
from cryosplat.core.errors import InputError
from cryosplat.core.fourier import fft2_centered, ifft2_centered, phase_shift_2d
from cryosplat.core.fourier_slice import default_max_radius, extract_slices
from cryosplat.core.padded_transform import full_to_half, volume_to_padded_ft
from cryosplat.core.rotations import random_rotations
from cryosplat.core.slice_insertion import insert_slices
from cryosplat.io.mrc import MRCStack, write_stack
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.grid.statistics import FourierStatistics, wiener_inversion
from cryosplat.validation.fsc import fsc

BOX, PIXEL = 24, 3.0


def simulate_particles(
    folder: Path,
    n: int = 80,
    box: int = BOX,
    pixel: float = PIXEL,
    noise: float = 1.0,
    seed: int = 0,
    n_gaussians: int = 60,
    truth: GaussianModel | None = None,
):
    """A small particle set from a random Gaussian model, projected by Fourier slices.

    Uniform random views, Gaussian RELION origins (sd 0.7 px), defocus 0.8–2 µm with astigmatism,
    white noise of ``noise`` × the clean images' standard deviation. Returns ``(particles,
    truth_volume (box³, float64), truth_model)``. ``truth`` replaces the random model.
    """
    truth = (
        truth
        if truth is not None
        else GaussianModel.random(
            n_gaussians,
            box,
            pixel,
            seed=seed,
            radius_fraction=0.22,
            scale_angstrom=1.4 * pixel,
            dtype=torch.float64,
        )
    )
    rng = np.random.default_rng(seed + 1)
    rotations = random_rotations(n, rng)
    shifts = rng.normal(scale=0.7 * pixel, size=(n, 2))
    defocus = rng.uniform(8000, 20000, n)
    ctf = CTFParams.create(
        n,
        defocus_u_angstrom=defocus,
        defocus_v_angstrom=defocus - 300,
        defocus_angle_degrees=rng.uniform(0, 180, n),
    )
    with torch.no_grad():
        volume = truth.voxelize()
    grid = volume_to_padded_ft(volume, 2, pixel, gridding_correction=True, half=True)
    spectra = extract_slices(grid, torch.tensor(rotations), box, 2)
    spectra = phase_shift_2d(spectra, torch.tensor(shifts), pixel)
    clean = ifft2_centered(spectra * ctf_from_params(ctf, box, pixel, dtype=torch.float64)).real
    images = clean.numpy() + rng.normal(scale=noise * float(clean.std()), size=clean.shape)
    path = folder / f"particles_{seed}.mrcs"
    write_stack(path, images, pixel)
    particles = ParticleSet(
        box,
        pixel,
        [MRCStack(path)],
        np.zeros(n, dtype=np.int64),
        np.arange(n),
        rotations,
        shifts,
        ctf,
    )
    return particles, volume.numpy(), truth


def write_star_of(particles: ParticleSet, star: Path, random_subset=None) -> Path:
    """A RELION 3.1 STAR of a one-stack particle set (its poses and CTF), for the commands;
    ``random_subset`` (N,): half-set labels to write (none by default)."""
    from cryosplat.io.star import write_relion31_particles

    write_relion31_particles(
        star,
        image_names=[f"{i + 1}@{particles.stacks[0].path}" for i in range(len(particles))],
        rotations=particles.rotations,
        shifts_angstrom=particles.shifts_angstrom,
        ctf=particles.ctf,
        pixel_size_angstrom=particles.pixel_size_angstrom,
        box=particles.box,
        random_subset=random_subset,
    )
    return star


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return simulate_particles(tmp_path_factory.mktemp("stats"), n=80, noise=1.0)


def test_statistics_are_additive_and_independent_of_batching(dataset):
    particles = dataset[0]
    # as gathered: each pass's background level is its own images' (test_background.py)
    whole = accumulate(particles, config=AccumulateConfig(batch_size=64), take_off_background=False)
    first, second = np.arange(0, 50), np.arange(50, 80)
    parts = accumulate(
        particles, first, AccumulateConfig(batch_size=3), take_off_background=False
    ) + accumulate(particles, second, AccumulateConfig(batch_size=7), take_off_background=False)
    assert parts.n_particles == whole.n_particles == 80
    scale_w, scale_b = float(whole.weights.abs().max()), float(whole.data.abs().max())
    assert torch.allclose(parts.weights, whole.weights, atol=1e-5 * scale_w)
    assert torch.allclose(parts.data, whole.data, atol=1e-5 * scale_b)
    assert np.isclose(parts.data_power, whole.data_power, rtol=1e-9)


def test_statistics_equal_a_direct_full_grid_sum(dataset):
    """W and B on the half grid = CTF² and CTF·(shift-corrected spectra) inserted on the full grid."""
    particles = dataset[0]
    rows = np.arange(20)
    stats = accumulate(particles, rows, take_off_background=False)  # the images as they are
    images = torch.from_numpy(particles.read_images(rows)).double()
    spectra = phase_shift_2d(
        fft2_centered(images), -torch.tensor(particles.shifts_angstrom[rows]), PIXEL
    )
    ctf = ctf_from_params(particles.ctf.subset(rows), BOX, PIXEL, dtype=torch.float64)
    size = 2 * BOX
    data = torch.zeros(size, size, size, dtype=torch.complex128)
    weights = torch.zeros(size, size, size, dtype=torch.float64)
    insert_slices(
        spectra * ctf, torch.tensor(particles.rotations[rows]), BOX, 2, data, ctf**2, weights
    )
    assert stats.weights.dtype == torch.float32 and stats.data.dtype == torch.complex64
    assert torch.allclose(
        stats.weights.double(), full_to_half(weights), atol=1e-5 * float(weights.max())
    )
    assert torch.allclose(
        stats.data.to(torch.complex128), full_to_half(data), atol=1e-5 * float(data.abs().max())
    )
    k = torch.arange(BOX) - BOX // 2
    inside = (k[:, None] ** 2 + k[None, :] ** 2) <= stats.max_radius**2
    power = float((spectra.abs() ** 2)[:, inside].sum())
    assert np.isclose(stats.data_power, power, rtol=1e-6)
    assert stats.power.shape == (int(stats.max_radius**2) + 1,)


def test_crop_masks_the_sphere_slab_by_slab(monkeypatch):
    """The crop keeps the points within the new limit (scaled to the smaller box's spectra) and
    zeroes the rest, whatever the slab it masks at a time."""
    from cryosplat.core.fourier import squared_radius
    from cryosplat.reconstruct.grid import statistics as module

    box, pad, small = 20, 2, 12
    size = box * pad
    rng = torch.Generator().manual_seed(3)
    weights = torch.rand(size, size, size // 2 + 1, generator=rng)
    data = torch.randn(size, size, size // 2 + 1, dtype=torch.complex64, generator=rng)
    max_radius = box / 2 - 1
    stats = FourierStatistics(
        weights, data, box, pad, 1.5, 10, torch.ones(int(max_radius**2) + 1), max_radius
    )
    lo, p = size // 2 - small * pad // 2, small * pad
    region = (slice(lo, lo + p), slice(lo, lo + p), slice(0, p // 2 + 1))
    limit = min(max_radius, default_max_radius(small, pad))
    inside = squared_radius(p, 3, half=True) <= (pad * limit) ** 2
    ratio = small / box
    for slab in (2**20, p * (p // 2 + 1), 5 * p * (p // 2 + 1)):  # one, one plane, five planes
        monkeypatch.setattr(module, "SLAB_POINTS", slab)
        cropped = stats.crop(small)
        assert torch.equal(cropped.weights, weights[region] * inside)
        assert torch.equal(cropped.data, data[region] * (inside * ratio**2))
    assert 0 < int(inside.sum()) < inside.numel()


def test_crop_equals_statistics_of_downsampled_images(tmp_path, dataset):
    particles = dataset[0]
    small = 16
    stats = accumulate(particles, take_off_background=False).crop(small)
    images = torch.from_numpy(particles.read_images(np.arange(len(particles)))).double()
    lo = BOX // 2 - small // 2
    spectra = fft2_centered(images)[:, lo : lo + small, lo : lo + small] * (small / BOX) ** 2
    path = tmp_path / "small.mrcs"
    write_stack(path, ifft2_centered(spectra).real.numpy(), PIXEL * BOX / small)
    down = ParticleSet(
        small,
        PIXEL * BOX / small,
        [MRCStack(path)],
        particles.stack_index,
        particles.image_index,
        particles.rotations,
        particles.shifts_angstrom,
        particles.ctf,
    )
    direct = accumulate(down, take_off_background=False)
    assert stats.box == direct.box == small
    assert np.isclose(stats.pixel_size_angstrom, direct.pixel_size_angstrom)
    assert np.isclose(stats.max_radius, direct.max_radius)
    # Compare away from the outermost shell, where trilinear spreading crosses the limit.
    size = 2 * small
    k = torch.arange(size) - size // 2
    kx = torch.arange(size // 2 + 1)
    r2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2
    core = r2 <= (2 * (stats.max_radius - 1)) ** 2
    assert torch.allclose(
        stats.weights[core], direct.weights[core], atol=1e-4 * float(direct.weights.max())
    )
    assert torch.allclose(
        stats.data[core], direct.data[core], atol=1e-4 * float(direct.data.abs().max())
    )
    assert np.isclose(stats.data_power, direct.data_power, rtol=1e-4)


def test_wiener_reconstruction_recovers_noise_free_map(tmp_path):
    particles, truth, _ = simulate_particles(tmp_path, n=300, noise=0.0, seed=4)
    volume = accumulate(particles).reconstruct_wiener(regularization=1e-3).numpy()
    curve = fsc(volume, truth)
    assert curve[1:9].min() > 0.98  # beyond, the simulated signal is < 1% of its peak
    scale = float((volume * truth).sum() / (truth * truth).sum())
    assert 0.9 < scale < 1.1


def test_wiener_inversion_of_parts_equals_that_of_their_sum(dataset):
    particles = dataset[0]
    a = accumulate(particles, np.arange(0, 50))
    b = accumulate(particles, np.arange(50, 80))
    together = wiener_inversion([a, b])
    summed = (a + b).reconstruct_wiener()
    assert torch.allclose(together, summed, atol=1e-6 * float(summed.abs().max()))
    assert torch.equal(a.reconstruct_wiener(), wiener_inversion([a]))
    with pytest.raises(ValueError, match="regularization"):
        wiener_inversion([a], regularization=-1.0)


def test_save_load_roundtrip_and_errors(tmp_path, dataset):
    stats = accumulate(dataset[0], np.arange(30))
    path = tmp_path / "sub" / "stats.npz"
    stats.save(path)
    back = FourierStatistics.load(path)
    assert torch.equal(back.weights, stats.weights) and torch.equal(back.data, stats.data)
    assert (back.box, back.pad, back.n_particles) == (stats.box, stats.pad, 30)
    assert back.pixel_size_angstrom == stats.pixel_size_angstrom
    assert back.data_power == stats.data_power
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="not a cryosplat Fourier-statistics"):
        FourierStatistics.load(tmp_path / "other.npz")
    with pytest.raises(InputError, match="not found"):
        FourierStatistics.load(tmp_path / "missing.npz")
    other = accumulate(dataset[0], np.arange(5), AccumulateConfig(pad=3))
    with pytest.raises(ValueError, match="differ"):
        stats + other


def test_accumulate_rejects_bad_input(dataset):
    particles = dataset[0]
    with pytest.raises(InputError, match="interpolation"):
        accumulate(particles, config=AccumulateConfig(interpolation="nearest"))
    with pytest.raises(InputError, match="outside"):
        accumulate(particles, [0, 80])
    with pytest.raises(InputError, match="poses"):
        accumulate(
            ParticleSet(
                BOX,
                PIXEL,
                particles.stacks,
                particles.stack_index,
                particles.image_index,
                None,
                None,
                particles.ctf,
            )
        )


def test_progress_and_resolution_limit(dataset):
    calls = []
    stats = accumulate(
        dataset[0],
        np.arange(10),
        AccumulateConfig(batch_size=4, max_resolution_angstrom=12.0),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(4, 10), (8, 10), (10, 10)]
    assert np.isclose(stats.resolution_limit_angstrom, 12.0)
    k = torch.arange(2 * BOX) - BOX
    kx = torch.arange(BOX + 1)
    r2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2
    beyond = r2 > (2 * stats.max_radius + 2) ** 2
    assert float(stats.weights[beyond].abs().max()) == 0.0
