"""Orthographic Gaussian splatting: a pure-PyTorch reference and faster paths with the same signature.

:func:`splat` dispatches between :func:`splat_reference` (autograd through every operation),
:func:`splat_fast` (sorted cache-sized footprints, analytic backward; the same result to rounding)
and :func:`splat_fourier` (central slices of the voxelised mixture's padded transform; within a
few per cent of the reference, and much faster for large batches). All compute the projections
(line integrals per Å²) of a Gaussian mixture for a batch of rotations.
"""

from __future__ import annotations

import torch

from cryosplat.core.mixture import Mixture
from cryosplat.render.fast import splat_fast
from cryosplat.render.fourier import splat_fourier
from cryosplat.render.reference import splat_reference

__all__ = ["BACKENDS", "splat", "splat_fast", "splat_fourier", "splat_reference"]

BACKENDS = ("auto", "reference", "fast", "fourier")
_FUNCTIONS = {
    "auto": splat_fast,
    "reference": splat_reference,
    "fast": splat_fast,
    "fourier": splat_fourier,
}


def splat(
    mixture: Mixture,
    rotations: torch.Tensor,
    box: int,
    pixel_size_angstrom: float,
    n_sigma: float = 3.0,
    max_elements: int = 2**24,
    backend: str = "auto",
) -> torch.Tensor:
    """Projections (B, D, D) per Å² of N Gaussians in B views, by the chosen backend.

    Parameters
    ----------
    mixture, rotations, box, pixel_size_angstrom, n_sigma, max_elements
        As in :func:`cryosplat.render.reference.splat_reference`.
    backend : {"auto", "reference", "fast", "fourier"}
        ``"auto"`` picks ``"fast"`` (exact); ``"fourier"`` is an approximation (about 6 % relative
        L2 error at its default padding, see :mod:`cryosplat.render.fourier`) for large batches.

    Returns
    -------
    torch.Tensor, shape (B, D, D)
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown splatting backend {backend!r}; choose one of {BACKENDS}")
    return _FUNCTIONS[backend](
        mixture,
        rotations,
        box,
        pixel_size_angstrom,
        n_sigma=n_sigma,
        max_elements=max_elements,
    )
