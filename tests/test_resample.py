"""Maps resampled onto another grid (:mod:`cryosplat.core.resample`): every voxel kept on its own
grid, a density sampled on one grid found on another, no aliasing, the centre voxel fixed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.core.fourier import fourier_crop_volume
from cryosplat.core.resample import interpolation_weights, resample_volume

# Blobs (centre Å from the box centre, width Å, amplitude): smooth enough for a 2 Å grid.
BLOBS = (((5.0, -3.0, 2.0), 4.0, 1.0), ((-6.0, 4.0, 1.0), 3.0, 0.7), ((0.0, 7.0, -5.0), 5.0, -0.4))


def _sampled(box: int | tuple[int, int, int], pixel_angstrom: float) -> np.ndarray:
    """The blobs sampled on a grid (a box, or (z, y, x) sizes) whose voxel ``n // 2`` along each
    axis lies at the origin."""
    sizes = (box,) * 3 if isinstance(box, int) else box
    axes = [(np.arange(n) - n // 2) * pixel_angstrom for n in sizes]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    volume = np.zeros(sizes)
    for (cx, cy, cz), width, amplitude in BLOBS:
        r2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
        volume += amplitude * np.exp(-r2 / (2 * width**2))
    return volume.astype(np.float32)


@pytest.mark.parametrize("box", [7, 8])
def test_at_the_samples_the_weights_are_the_identity(box):
    weights = interpolation_weights(box, np.arange(box, dtype=float))
    assert np.allclose(weights, np.eye(box), atol=1e-12)


@pytest.mark.parametrize("box", [31, 32])
def test_the_same_grid_gives_the_same_map(box):
    volume = np.random.default_rng(1).normal(size=(box,) * 3).astype(np.float32)
    assert np.allclose(resample_volume(volume, 1.3, box, 1.3), volume, atol=1e-4)


@pytest.mark.parametrize(
    ("box_in", "pixel_in", "box_out", "pixel_out"),
    [(64, 1.0, 50, 1.37), (50, 1.37, 64, 1.0), (65, 1.0, 49, 1.37), (40, 2.0, 33, 1.9)],
)
def test_a_density_sampled_on_one_grid_is_found_on_another(box_in, pixel_in, box_out, pixel_out):
    resampled = resample_volume(_sampled(box_in, pixel_in), pixel_in, box_out, pixel_out)
    assert resampled.shape == (box_out,) * 3 and resampled.dtype == np.float32
    assert np.abs(resampled - _sampled(box_out, pixel_out)).max() < 1e-4


@pytest.mark.parametrize("pixel_out", [2.0, 1.9])
def test_a_map_that_is_not_cubic_is_put_on_a_cubic_grid_about_each_axis_s_centre(pixel_out):
    """A deposited map boxed around its model (36 × 40 × 34 voxels): each axis about its own centre
    voxel; at the same voxel size, the cube is the map itself, zero beyond it."""
    shape = (34, 40, 36)  # z, y, x
    resampled = resample_volume(_sampled(shape, 2.0), 2.0, 33, pixel_out)
    assert resampled.shape == (33,) * 3
    assert np.abs(resampled - _sampled(33, pixel_out)).max() < 1e-4
    volume = np.random.default_rng(4).normal(size=(5, 8, 7)).astype(np.float32)
    cube = resample_volume(volume, 1.0, 8, 1.0)
    # centre voxels 2, 4, 3 land on 4: z from 2 to 6, x from 1 to 7, y as it is
    np.testing.assert_allclose(cube[2:7, :, 1:8], volume, atol=1e-5)
    assert not cube[:2].any() and not cube[7:].any() and not cube[:, :, 0].any()


def test_a_band_limited_map_downsampled_is_its_fourier_crop():
    rng = np.random.default_rng(2)
    spectrum = np.fft.fftn(rng.normal(size=(48,) * 3))
    k = np.abs(np.fft.fftfreq(48) * 48)
    keep = (k[:, None, None] < 11) & (k[None, :, None] < 11) & (k[None, None, :] < 11)
    volume = np.fft.ifftn(spectrum * keep).real.astype(np.float32)
    cropped = fourier_crop_volume(torch.from_numpy(volume), 24).numpy()
    assert np.allclose(resample_volume(volume, 1.0, 24, 2.0), cropped, atol=1e-4)


def test_what_the_coarser_grid_cannot_hold_is_removed_not_aliased():
    box = 48
    x = np.arange(box) - box // 2
    # 18 cycles per box: under the input's Nyquist (24), over a grid of half the voxels (12).
    wave = np.cos(2 * np.pi * 18 * x / box)
    volume = np.broadcast_to(wave, (box,) * 3).astype(np.float32)
    assert np.abs(resample_volume(volume, 1.0, 24, 2.0)).max() < 1e-4
    assert np.abs(resample_volume(volume, 1.0, 30, 1.6)).max() < 1e-4


def test_the_centre_voxel_stays_and_beyond_the_map_s_box_is_zero():
    volume = _sampled(32, 2.0)
    out = resample_volume(volume, 2.0, 64, 1.5)  # 96 Å from 64 Å: the edges lie outside
    assert out[32, 32, 32] == pytest.approx(volume[16, 16, 16], abs=1e-5)
    assert np.all(out[:, :, :10] == 0) and np.all(out[:, :, -10:] == 0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="3D"):
        resample_volume(np.zeros((4, 5)), 1.0, 4, 1.0)
    with pytest.raises(ValueError, match="positive, got 0.0"):
        resample_volume(np.zeros((4, 4, 4)), 0.0, 4, 1.0)
    with pytest.raises(ValueError, match="box_out must be at least 1, got 0"):
        resample_volume(np.zeros((4, 4, 4)), 1.0, 0, 1.0)
