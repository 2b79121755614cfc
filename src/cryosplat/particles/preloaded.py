"""A particle set whose images are read once and held in memory.

The data checks before a run (:mod:`cryosplat.reconstruct.pose_check`) invert one sample of a few
thousand images several times, once per reading of the poses; read from the stacks each time, a
sample spread over a large set costs as many scattered reads (and Fourier crops) as there are
readings. :func:`preloaded` reads each referenced image once; the set's rows, stacks and indices
are unchanged, so everything that reads a :class:`~cryosplat.particles.particle_set.ParticleSet`
reads it the same way.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike

from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.wrapped_stack import WrappedStack

__all__ = ["PreloadedStack", "preloaded", "READ_BATCH"]

READ_BATCH = 64
"""Images read (and, through a Fourier-cropped stack, cropped) at a time: a crop of 3,000 images
of box 400 at once would hold ~4 GB for a moment, 64 at a time ~0.1 GB."""


class PreloadedStack(WrappedStack):
    """The images ``indices`` of a stack, read once (the stack interface of
    :class:`cryosplat.io.mrc.MRCStack`).

    Parameters
    ----------
    stack : MRCStack or another stack (e.g. a Fourier-cropped one)
    indices : array_like of int
        0-based images to hold; reading any other is a ``KeyError`` naming it.
    """

    def __init__(self, stack, indices: ArrayLike) -> None:
        self.stack = stack
        self.indices = np.unique(np.asarray(indices, dtype=np.int64))
        self.images = np.zeros((self.indices.size, stack.box, stack.box), np.float32)
        for start in range(0, self.indices.size, READ_BATCH):  # a crop's transient bounded
            self.images[start : start + READ_BATCH] = stack.read(
                self.indices[start : start + READ_BATCH]
            )
            stack.release()  # the map's pages would otherwise stay resident (as staging does)
        self.box = stack.box
        self.n_images = stack.n_images
        self.pixel_size_angstrom = stack.pixel_size_angstrom

    def read(self, indices: ArrayLike) -> np.ndarray:
        """Images at 0-based ``indices`` (each among those held): float32, (len(indices), d, d)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        pos = np.searchsorted(self.indices, idx)
        held = np.isin(idx, self.indices)
        if not held.all():
            raise KeyError(f"image {int(idx[~held][0]) + 1} of {self.path} was not preloaded")
        return self.images[pos]

    def release(self) -> None:
        """Nothing to release: the images are held."""


def preloaded(particles: ParticleSet) -> ParticleSet:
    """``particles`` with every image its rows reference read once into memory (float32, ``N·D²``
    values: a sample, not a whole set)."""
    order = np.argsort(particles.stack_index, kind="stable")
    bounds = np.searchsorted(particles.stack_index[order], np.arange(len(particles.stacks) + 1))
    stacks = [  # each stack's rows in one pass: a mask per stack would cost rows × stacks
        PreloadedStack(stack, particles.image_index[order[bounds[s] : bounds[s + 1]]])
        for s, stack in enumerate(particles.stacks)
    ]
    return replace(particles, stacks=stacks, notes=list(particles.notes))
