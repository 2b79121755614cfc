"""Hot pixels and dust: single pixels far outside their image, replaced as they are read.

A detector's defects, X-ray hits and specks of dust leave single pixels many standard deviations
from the rest of an extracted particle. RELION's extraction replaces them only when asked
(``--white_dust``/``--black_dust``), cryoSPARC's not at all, so a user's stack may hold them. A
squared-error fit takes each as signal of every frequency: measured (round 2, session 72;
``benchmarks/bench_catalogue_s72``), 0.05 % of the pixels at 30 noise s.d.s moved the 0.5
crossing of a beta-galactosidase set from 13.1 to 14.7 Å, and 0.1 % at 15 s.d.s that of an
EMD-5625 set from 19.5-19.7 to 20.0 Å (two seeds); replaced as below, they read 13.1 and
19.5-19.9 Å.

A pixel is replaced (:func:`remove_dust`) where it lies more than ``sds`` standard deviations of its
image from both the image's mean and the median of its eight neighbours (the image's edge
reflected): the first keeps the test to pixels far outside the image's noise (at the default
:data:`DUST_SDS` = 8, Gaussian noise reaches it once in 10¹⁵ pixels), the second to single pixels
(a molecule's density, band-limited by the CTF and the optics, spans several). It takes that
median's value. The real stacks in ``../shared/data`` hold none at 8 (their largest: one dark
speck of three pixels in betagal_17, 7.5 s.d.s, whose neighbours' median lies 6.8 s.d.s from it).

:class:`DustFreeStack` reads a stack through :func:`remove_dust` and keeps how many pixels each
image had replaced; :func:`without_dust` wraps a particle set's stacks, under any resampling (the
pixels are replaced where they were recorded, before a Fourier crop spreads them).
:func:`save_dust_counts` and :func:`restore_dust_counts` carry those counts across an interrupted
run, whose resumed statistics read no image again.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from cryosplat.core.errors import InputError
from cryosplat.io.atomic import atomic_path
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.validate import MAX_ABS_PIXEL
from cryosplat.particles.wrapped_stack import WrappedStack

__all__ = [
    "DUST_SDS",
    "MIN_DUST_SDS",
    "DustFreeStack",
    "check_dust_sds",
    "describe_dust",
    "dust_counts",
    "dust_summary",
    "remove_dust",
    "without_dust",
]

DUST_SDS = 8.0
"""Default threshold, in standard deviations of the pixel's image (see the module docstring)."""

MIN_DUST_SDS = 4.0
"""Lowest threshold a run accepts: Gaussian noise reaches 4 s.d.s once in 16,000 pixels."""


def check_dust_sds(sds: float) -> None:
    """:class:`InputError` unless ``sds`` is 0 (every pixel kept) or at least :data:`MIN_DUST_SDS`."""
    if not (sds == 0 or sds >= MIN_DUST_SDS):
        raise InputError(
            f"dust_sds must be 0 (off) or at least {MIN_DUST_SDS:g} standard deviations "
            f"(below that, noise is taken for dust), got {sds}"
        )


def remove_dust(images: np.ndarray, sds: float = DUST_SDS) -> tuple[np.ndarray, np.ndarray]:
    """Images with their hot pixels replaced by the median of their eight neighbours.

    Parameters
    ----------
    images : np.ndarray, shape (B, D, D)
    sds : float
        Threshold in standard deviations of each image (positive).

    Returns
    -------
    images : np.ndarray, shape (B, D, D), float32
        A copy where any pixel was replaced; ``images`` itself (as float32) where none was.
    replaced : np.ndarray of int, shape (B,)
        Pixels replaced in each image.
    """
    if not sds > 0:
        raise ValueError(f"sds must be positive, got {sds}")
    images = np.asarray(images, dtype=np.float32)
    n, box = len(images), images.shape[-1]
    replaced = np.zeros(n, dtype=np.int64)
    if n == 0 or box < 3:
        return images, replaced
    flat = images.reshape(n, -1)
    # the moments in double precision (an image in counts holds a large mean), then the images
    # whose extremes reach the limit: one pass each, where a deviation per pixel would be three
    # (box 256, 128 images of noise: 13-15 against 65 ms). An image with a NaN or infinite pixel
    # gets a NaN limit, so no suspect: it is left for the reader's check.
    with np.errstate(invalid="ignore", over="ignore"):
        mean = flat.sum(axis=1, dtype=np.float64) / flat.shape[1]
        square = np.einsum("ij,ij->i", flat, flat, dtype=np.float64) / flat.shape[1]
        limit = sds * np.sqrt(np.maximum(square - mean**2, 0.0))
        high, low = flat.max(axis=1) - mean, mean - flat.min(axis=1)
    suspect = np.flatnonzero((high > limit) | (low > limit))
    rows, p = np.nonzero(np.abs(flat[suspect] - mean[suspect, None]) > limit[suspect, None])
    b = suspect[rows]
    # an image with an absurd pixel is left as it is, for the reader's check to refuse by name
    # (:func:`cryosplat.particles.validate.bad_image_rows`): a corrupt file, not dust
    keep = ~np.isin(b, b[np.abs(flat[b, p]) > MAX_ABS_PIXEL])
    b, p = b[keep], p[keep]
    if b.size == 0:
        return images, replaced
    y, x = np.divmod(p, box)
    neighbours = np.stack(
        [
            images[b, _reflect(y + dy, box), _reflect(x + dx, box)]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if dy or dx
        ],
        axis=1,
    )
    median = np.median(neighbours, axis=1)
    hot = np.abs(images[b, y, x] - median) > limit[b]
    if not hot.any():
        return images, replaced
    images = images.copy()
    images[b[hot], y[hot], x[hot]] = median[hot]
    np.add.at(replaced, b[hot], 1)
    return images, replaced


def _reflect(i: np.ndarray, box: int) -> np.ndarray:
    """Indices one step outside ``[0, box)`` reflected back in (−1 → 1, box → box − 2)."""
    return np.abs(box - 1 - np.abs(box - 1 - i))


class DustFreeStack(WrappedStack):
    """A stack (:class:`cryosplat.io.mrc.MRCStack` interface) read through :func:`remove_dust`.

    ``replaced[i]`` holds the pixels replaced in image ``i`` when it was last read (−1: not read).
    """

    def __init__(self, stack, sds: float = DUST_SDS) -> None:
        if not sds > 0:
            raise ValueError(f"sds must be positive, got {sds}")
        self.stack, self.sds = stack, float(sds)
        self.box = stack.box
        self.n_images = stack.n_images
        self.pixel_size_angstrom = stack.pixel_size_angstrom
        self.replaced = np.full(stack.n_images, -1, dtype=np.int32)

    def read(self, indices: ArrayLike) -> np.ndarray:
        """Images at 0-based ``indices``: float32, (len(indices), d, d), hot pixels replaced."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        images, replaced = remove_dust(self.stack.read(idx), self.sds)
        self.replaced[idx] = replaced
        return images


def _dust_free(stack, sds: float):
    """``stack`` read through a :class:`DustFreeStack` at the pixels it was recorded at: where a
    wrapper reads its stack at another box or pixel size (a Fourier crop or resampling), the
    wrapped stack is read through it instead (in a shallow copy of the wrapper)."""
    if isinstance(stack, DustFreeStack):
        return stack
    if isinstance(stack, WrappedStack) and (
        stack.box != stack.stack.box or stack.pixel_size_angstrom != stack.stack.pixel_size_angstrom
    ):
        outer = copy.copy(stack)
        outer.stack = _dust_free(stack.stack, sds)
        return outer
    return DustFreeStack(stack, sds)


def without_dust(particles: ParticleSet, sds: float = DUST_SDS) -> ParticleSet:
    """``particles`` whose images are read with their hot pixels replaced (:func:`remove_dust`);
    the rows, poses and CTF are the same. ``sds`` 0: ``particles`` as they are."""
    if sds == 0:
        return particles
    return replace(particles, stacks=[_dust_free(s, sds) for s in particles.stacks])


def _dust_free_stacks(particles: ParticleSet) -> list[DustFreeStack]:
    found = []
    for stack in particles.stacks:
        while not isinstance(stack, DustFreeStack) and isinstance(stack, WrappedStack):
            stack = stack.stack
        if isinstance(stack, DustFreeStack):
            found.append(stack)
    return found


def dust_counts(particles: ParticleSet) -> tuple[int, int, int]:
    """``(pixels replaced, images with any, images read)`` over the images of ``particles``'
    :class:`DustFreeStack` stacks read so far (each image's last reading)."""
    pixels = images = read = 0
    for stack in _dust_free_stacks(particles):
        done = stack.replaced[stack.replaced >= 0]
        pixels += int(done.sum())
        images += int((done > 0).sum())
        read += int(done.size)
    return pixels, images, read


def dust_summary(particles: ParticleSet) -> dict | None:
    """What :func:`dust_counts` found, for a run's summary (None where no image of a
    :class:`DustFreeStack` was read): ``{"sds": ..., "pixels": ..., "images": ...,
    "images_read": ...}``."""
    pixels, images, read = dust_counts(particles)
    if read == 0:
        return None
    sds = _dust_free_stacks(particles)[0].sds
    return {"sds": sds, "pixels": pixels, "images": images, "images_read": read}


def describe_dust(summary: dict) -> str:
    """The log's line for a :func:`dust_summary`."""
    return (
        f"hot pixels: {summary['pixels']} replaced in {summary['images']} of "
        f"{summary['images_read']} images read (beyond {summary['sds']:g} s.d.s of their image "
        "from its mean and their neighbours' median; --dust-sds 0 keeps them)"
    )


def save_dust_counts(particles: ParticleSet, path: str | Path) -> None:
    """Write each :class:`DustFreeStack`'s per-image counts (``replaced``) of ``particles`` to
    ``path`` (``.npz``, atomically); nothing where no stack is read through one."""
    stacks = _dust_free_stacks(particles)
    if not stacks:
        return
    with atomic_path(path, suffix=".tmp.npz") as tmp:
        np.savez(tmp, *[s.replaced for s in stacks])


def restore_dust_counts(particles: ParticleSet, path: str | Path) -> bool:
    """Take the counts :func:`save_dust_counts` wrote to ``path`` for the images of ``particles``
    not read yet (an image read since keeps its own: the same image gives the same count).
    Returns whether they were taken: not where the file is missing or was written for stacks of
    other sizes."""
    stacks, path = _dust_free_stacks(particles), Path(path)
    if not stacks or not path.is_file():
        return False
    with np.load(path) as saved:
        counts = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    if [c.shape for c in counts] != [s.replaced.shape for s in stacks]:
        return False
    for stack, saved_counts in zip(stacks, counts, strict=True):
        unread = stack.replaced < 0
        stack.replaced[unread] = saved_counts[unread]
    return True
