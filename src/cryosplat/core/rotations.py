"""Rotation utilities in torch: quaternions, uniform random rotations.

Which way a matrix maps (map frame → image frame) is fixed in :mod:`cryosplat.core.conventions`.
Quaternions are ``(w, x, y, z)`` and need not be normalised on input.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["quaternion_to_matrix", "random_rotations", "random_quaternions"]


def quaternion_to_matrix(quaternions: torch.Tensor) -> torch.Tensor:
    """Active rotation matrices from quaternions ``(w, x, y, z)``, normalised here.

    Parameters
    ----------
    quaternions : torch.Tensor, shape (..., 4)

    Returns
    -------
    torch.Tensor, shape (..., 3, 3)
    """
    q = quaternions / quaternions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    row0 = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1)
    row1 = torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1)
    row2 = torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)
    return torch.stack([row0, row1, row2], -2)


def random_quaternions(n: int, generator: np.random.Generator) -> np.ndarray:
    """``n`` unit quaternions drawn uniformly on SO(3) (normalised 4D Gaussians), float64 (n, 4)."""
    q = generator.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)


def random_rotations(n: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """``n`` rotation matrices uniform on SO(3), float64 (n, 3, 3), reproducible from ``seed``."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    q = torch.from_numpy(random_quaternions(n, rng))
    return quaternion_to_matrix(q).numpy()
