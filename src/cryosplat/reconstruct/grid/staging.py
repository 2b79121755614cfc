"""Particle images moved to the compute device batch by batch, read ahead of the computation.

On a CUDA device the images of the next batches are read from their stacks on a background thread
into page-locked (pinned) host memory while the GPU works on the current batch, and copied with
``non_blocking=True``: reading, the host→device copy and the gathering overlap. On the CPU batches
are read when they are needed, as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from cryosplat.particles.particle_set import ParticleSet

__all__ = ["device_batches", "CUDA_READ_AHEAD"]

CUDA_READ_AHEAD = 2  # batches read ahead on a CUDA device (host memory ∝ this × batch)

# Checks a batch as read (rows, images) and returns what to keep, or raises.
Screen = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _load(particles: ParticleSet, rows: np.ndarray, pin: bool, screen: Screen | None):
    """``(rows, images)`` of a batch as a float32 host tensor (pinned for ``pin``), after
    ``screen``; stack maps released. The images are as stored: the gather takes their
    antisymmetric aberrations out of their transforms (on the device)."""
    images = particles.read_images(rows, as_stored=True)
    for s in np.unique(particles.stack_index[rows]):  # only the stacks this batch touched
        particles.stacks[s].release()
    if screen is not None:
        rows, images = screen(rows, images)
    tensor = torch.from_numpy(images)
    return rows, tensor.pin_memory() if pin else tensor


def device_batches(
    particles: ParticleSet,
    indices: np.ndarray,
    batch_size: int,
    device: torch.device | str,
    read_ahead: int | None = None,
    screen: Screen | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(rows, images)`` for consecutive batches of ``indices``.

    Parameters
    ----------
    particles : ParticleSet
    indices : np.ndarray of int, shape (N,)
        Rows to read, in this order.
    batch_size : int
    device : torch device of the yielded images
    read_ahead : int, optional
        Batches read ahead on a background thread; default :data:`CUDA_READ_AHEAD` on CUDA and 0
        (read in the caller's thread) elsewhere.
    screen : callable(rows, images) -> (rows, images), optional
        Applied to each batch as read (numpy images), before the copy: e.g. to refuse or leave
        out images with non-finite pixels at no extra read.

    Yields
    ------
    rows : np.ndarray of int, shape (B,)
    images : torch.Tensor, shape (B, D, D), float32, on ``device``
        On CUDA the copy is asynchronous on the current stream: work queued after it on that
        stream sees the images.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    ahead = (CUDA_READ_AHEAD if cuda else 0) if read_ahead is None else int(read_ahead)
    batches = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    if ahead <= 0:
        for rows in batches:
            kept, images = _load(particles, rows, False, screen)
            yield kept, images.to(device)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cryosplat-read") as pool:
        pending: deque = deque()
        for rows in batches:
            pending.append(pool.submit(_load, particles, rows, cuda, screen))
            if len(pending) > ahead:
                kept, images = pending.popleft().result()
                yield kept, images.to(device, non_blocking=cuda)
        while pending:
            kept, images = pending.popleft().result()
            yield kept, images.to(device, non_blocking=cuda)
