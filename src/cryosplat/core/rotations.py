"""Rotation utilities in torch: quaternions, uniform random rotations.

Which way a matrix maps (map frame → image frame) is fixed in :mod:`cryosplat.core.conventions`.
Quaternions are ``(w, x, y, z)`` and need not be normalised on input.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "quaternion_quadratic_forms",
    "quaternion_to_matrix",
    "random_rotations",
    "random_quaternions",
]


# R = (Σ_ab M_ab,ij q_a q_b) / |q|², (a, b) over (w, x, y, z): each entry of the rotation matrix
# of a unit quaternion is a quadratic form of it (written homogeneous, so no normalisation first).
_QUADRATIC_FORMS = {
    (0, 0): {"ww": 1, "xx": 1, "yy": -1, "zz": -1},
    (0, 1): {"xy": 2, "wz": -2},
    (0, 2): {"xz": 2, "wy": 2},
    (1, 0): {"xy": 2, "wz": 2},
    (1, 1): {"ww": 1, "xx": -1, "yy": 1, "zz": -1},
    (1, 2): {"yz": 2, "wx": -2},
    (2, 0): {"xz": 2, "wy": -2},
    (2, 1): {"yz": 2, "wx": 2},
    (2, 2): {"ww": 1, "xx": -1, "yy": -1, "zz": 1},
}


@lru_cache(maxsize=16)
def quaternion_quadratic_forms(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The (16, 9) matrix taking the products ``q_a q_b`` to the entries of ``R |q|²``."""
    forms = torch.zeros(16, 9, dtype=torch.float64)
    for (i, j), terms in _QUADRATIC_FORMS.items():
        for pair, value in terms.items():
            a, b = ("wxyz".index(c) for c in pair)
            forms[4 * a + b, 3 * i + j] = value
    return forms.to(device, dtype)


def quaternion_to_matrix(quaternions: torch.Tensor) -> torch.Tensor:
    """Active rotation matrices from quaternions ``(w, x, y, z)``, normalised here.

    Each entry is a quadratic form of the quaternion over ``|q|²`` (one product with a constant
    matrix: a few tensor operations, forward and backward, where the entry-by-entry expression
    takes some forty).

    Parameters
    ----------
    quaternions : torch.Tensor, shape (..., 4)

    Returns
    -------
    torch.Tensor, shape (..., 3, 3)
    """
    q = quaternions
    products = (q[..., :, None] * q[..., None, :]).reshape(*q.shape[:-1], 16)
    forms = quaternion_quadratic_forms(q.device, q.dtype)
    norm2 = q.square().sum(-1, keepdim=True).clamp_min(1e-24)
    return (products @ forms / norm2).reshape(*q.shape[:-1], 3, 3)


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
