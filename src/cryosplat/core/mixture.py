"""The tensors of a 3D Gaussian mixture, bundled: what every renderer and voxeliser takes."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["Mixture"]


class Mixture(NamedTuple):
    """N 3D Gaussians ``Aᵢ N(r; μᵢ, R(qᵢ) S² R(qᵢ)ᵀ)`` as four tensors (a tuple: ``*mixture`` works).

    Attributes
    ----------
    means : torch.Tensor, shape (N, 3)
        Centres in Å, internal frame (origin at voxel ``D//2``, :mod:`cryosplat.core.conventions`).
    scales : torch.Tensor, shape (N, 3)
        Standard deviations along the principal axes, Å.
    quaternions : torch.Tensor, shape (N, 4)
        Orientation ``(w, x, y, z)`` of each Gaussian (renderers normalise it).
    amplitudes : torch.Tensor, shape (N,)
        Integrated mass of each Gaussian (a map integrates to ``Σ amplitudes``).
    """

    means: torch.Tensor
    scales: torch.Tensor
    quaternions: torch.Tensor
    amplitudes: torch.Tensor

    def detach(self) -> Mixture:
        """The same values, cut from the autograd graph."""
        return Mixture(*(t.detach() for t in self))
