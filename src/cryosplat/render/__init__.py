"""Orthographic Gaussian splatting: a pure-PyTorch reference and faster paths with the same signature.

:func:`splat` dispatches between :func:`splat_reference` (autograd through every operation) and
:func:`splat_fast` (sorted cache-sized footprints, analytic backward); both compute the same
projections (line integrals per Å²) of a Gaussian mixture for a batch of rotations.
"""

from __future__ import annotations

import torch

from cryosplat.render.fast import splat_fast
from cryosplat.render.reference import splat_reference

__all__ = ["BACKENDS", "splat", "splat_fast", "splat_reference"]

BACKENDS = ("auto", "reference", "fast")


def splat(
    means: torch.Tensor,
    scales: torch.Tensor,
    quaternions: torch.Tensor,
    amplitudes: torch.Tensor,
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
    means, scales, quaternions, amplitudes, rotations, box, pixel_size_angstrom, n_sigma,
    max_elements
        As in :func:`cryosplat.render.reference.splat_reference`.
    backend : {"auto", "reference", "fast"}
        ``"auto"`` picks ``"fast"``.

    Returns
    -------
    torch.Tensor, shape (B, D, D)
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown splatting backend {backend!r}; choose one of {BACKENDS}")
    function = splat_reference if backend == "reference" else splat_fast
    return function(
        means,
        scales,
        quaternions,
        amplitudes,
        rotations,
        box,
        pixel_size_angstrom,
        n_sigma=n_sigma,
        max_elements=max_elements,
    )
