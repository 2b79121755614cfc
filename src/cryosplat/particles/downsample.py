"""Particles Fourier-cropped to a smaller box: the same physical extent at a coarser pixel.

Keeping the frequencies ``|kx|, |ky| < d/2`` of a D-pixel image and transforming back at ``d``
pixels gives the image a detector with pixel ``pixel · D / d`` would have recorded, band-limited to
its Nyquist frequency (cryoDRGN's ``downsample``; RELION's ``--maxres`` keeps the box and drops
the same frequencies). Pixel values are kept (a constant image stays that constant), the convention
of :meth:`cryosplat.reconstruct.grid.statistics.FourierStatistics.crop`. Poses, shifts (Å) and the
CTF (Å) do not change, so a :class:`ParticleSet` view with the small box and its pixel size feeds
every engine unchanged, and a map made from it has ``d`` voxels of ``pixel · D / d`` Å. Memory of a
reconstruction scales as ``d³`` and its time nearly so (:mod:`cryosplat.reconstruct.grid.memory_plan`).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.conventions import source_box_to_write
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.wrapped_stack import WrappedStack

__all__ = [
    "even_box",
    "fourier_crop_images",
    "fourier_resample_images",
    "ResampledStack",
    "downsample_particles",
    "box_for_resolution",
]


def even_box(box: int) -> int:
    """The box images of ``box`` pixels are reconstructed at: itself when even, ``box − 1`` when
    odd (Fourier-cropped: the engines' grids and transforms are laid out for even boxes)."""
    return box - box % 2


def box_for_resolution(box: int, pixel_size_angstrom: float, resolution_angstrom: float) -> int:
    """Smallest even box ``d ≤ D`` whose gathered frequencies reach ``resolution_angstrom``.

    The statistics keep frequencies up to ``d/2 − 1/2`` pixels (pad 2,
    :func:`cryosplat.core.fourier_slice.default_max_radius`); frequency ``D · pixel / resolution``
    pixels must lie within ``d/2 − 1`` of them (half a pixel to spare).
    """
    if not resolution_angstrom > 0:
        raise ValueError(f"resolution_angstrom must be positive, got {resolution_angstrom}")
    radius = box * pixel_size_angstrom / resolution_angstrom
    d = 2 * math.ceil(radius + 1.0)
    return int(min(box, max(8, d + d % 2)))


def fourier_crop_images(images: np.ndarray, box: int) -> np.ndarray:
    """Fourier-crop images (N, D, D) to (N, d, d), float32, pixel values kept.

    Parameters
    ----------
    images : np.ndarray, shape (N, D, D), centre at pixel D//2
    box : int
        Even ``d ≤ D``.
    """
    size = images.shape[-1]
    if box % 2 or not 2 <= box <= size:
        raise ValueError(f"crop box must be even and in [2, {size}], got {box}")
    return fourier_resample_images(images, box)


def fourier_resample_images(images: np.ndarray, box: int) -> np.ndarray:
    """Images (N, D, D) resampled to (N, d, d) over the same extent, float32, pixel values kept.

    ``d < D`` keeps the frequencies ``|kx|, |ky| < d/2`` (a Fourier crop: pixel ``p·D/d``,
    band-limited to its Nyquist); ``d > D`` places all of them, but an even ``D``'s Nyquist
    row and column (whose sign is ambiguous), in a larger grid (a Fourier pad: band-limited
    interpolation at the finer pixel ``p·D/d``; the frequencies beyond the image's own Nyquist
    are zero). Either way the image is the one a detector of pixel ``p·D/d`` would have
    recorded over the same field of view, band-limited to the coarser of the two Nyquists.

    Parameters
    ----------
    images : np.ndarray, shape (N, D, D), centre at pixel D//2
    box : int
        ``d ≥ 2``, even when ``d < D``.
    """
    size = images.shape[-1]
    if box < 2 or (box < size and box % 2):
        raise ValueError(f"resample box must be at least 2, and even below {size}, got {box}")
    if box == size:
        return np.asarray(images, dtype=np.float32)
    if images.shape[0] == 0:
        return np.zeros((0, box, box), dtype=np.float32)
    t = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    spectra = torch.fft.rfft2(torch.fft.ifftshift(t, dim=(-2, -1)))
    if box < size:
        h = box // 2
        kept = torch.cat([spectra[:, :h, : h + 1], spectra[:, size - h :, : h + 1]], dim=1)
    else:
        up = (size - 1) // 2  # the highest unambiguous frequency of either sign
        kept = spectra.new_zeros((spectra.shape[0], box, box // 2 + 1))
        kept[:, : up + 1, : up + 1] = spectra[:, : up + 1, : up + 1]
        kept[:, box - up :, : up + 1] = spectra[:, size - up :, : up + 1]
    resampled = torch.fft.irfft2(kept, s=(box, box)) * (box / size) ** 2
    return torch.fft.fftshift(resampled, dim=(-2, -1)).numpy()


class ResampledStack(WrappedStack):
    """A stack (:class:`cryosplat.io.mrc.MRCStack` interface) read at another box: its images
    Fourier-resampled to ``resample_box`` (:func:`fourier_resample_images`: the same field at
    pixel ``p · D / resample_box``), then, where ``box`` is smaller, cropped in real space about
    their centre (pixel ``D//2``).

    Parameters
    ----------
    stack : MRCStack
    box : int
        The box its images are read at.
    resample_box : int, optional
        The box they are Fourier-resampled to first (even when smaller than the stack's; at least
        ``box``); ``box`` by default (a Fourier crop or pad alone).
    """

    def __init__(self, stack, box: int, resample_box: int | None = None) -> None:
        self.stack = stack
        self.box = int(box)
        self.resample_box = self.box if resample_box is None else int(resample_box)
        self.n_images = stack.n_images
        ratio = stack.box / self.resample_box
        self.pixel_size_angstrom = float(stack.pixel_size_angstrom) * ratio

    def read(self, indices: ArrayLike) -> np.ndarray:
        """Images at 0-based ``indices``: float32, shape (len(indices), box, box)."""
        images = fourier_resample_images(self.stack.read(indices), self.resample_box)
        if self.resample_box == self.box:
            return images
        start = self.resample_box // 2 - self.box // 2
        return np.ascontiguousarray(images[:, start : start + self.box, start : start + self.box])


def downsample_particles(particles: ParticleSet, box: int) -> ParticleSet:
    """A view of ``particles`` with images Fourier-cropped to ``box`` (pixel ``pixel · D / box``).

    Returns ``particles`` itself when ``box`` is its box.
    """
    if box % 2 or not 8 <= box <= particles.box:
        raise ValueError(f"downsample box must be even and in [8, {particles.box}], got {box}")
    if box == particles.box:
        return particles
    ratio = particles.box / box
    pixel = particles.pixel_size_angstrom * ratio
    if source_box_to_write(particles.box, box) is not None:
        where = (
            f"box {particles.box} is odd and the engines work at even boxes: the maps are "
            f"written back at box {particles.box} and {particles.pixel_size_angstrom:.4g} Å/px"
        )
    else:
        where = f"the maps are written at box {box}" + (
            f" (their header origin puts them where a box-{particles.box} map would lie)"
            if particles.box % 2
            else ""
        )
    return replace(
        particles,
        box=box,
        pixel_size_angstrom=pixel,
        stacks=[ResampledStack(s, box) for s in particles.stacks],
        optics=[
            replace(o, box=box, pixel_size_angstrom=o.pixel_size_angstrom * ratio)
            for o in particles.optics
        ],
        notes=[
            *particles.notes,
            f"images Fourier-cropped from box {particles.box} ({particles.pixel_size_angstrom:.4g} "
            f"Å/px) to box {box} ({pixel:.4g} Å/px); {where}",
        ],
    )
