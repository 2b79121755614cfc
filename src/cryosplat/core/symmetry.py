"""Point-group symmetry in RELION's conventions: ``C<n>``, ``D<n>``, ``T``, ``O``, ``I``, ``I1``–``I4``.

A group is the list of its ``|G|`` rotation matrices ``R_g`` in the map frame (the internal frame of
:mod:`cryosplat.core.conventions`, origin at voxel ``D//2``), the identity first. A map ``V`` is symmetric
when ``V(R_g r) = V(r)`` for every ``g``; a particle seen with pose ``A`` is then also the projection
of the map in pose ``A R_g`` (a map point ``r`` lands at ``A R_g r``), which is how its image counts
once per operator (pose expansion, RELION's ``relion_particle_symmetry_expand``).

RELION's axis choices (``symmetries.cpp``; checked against ``relion_particle_symmetry_expand`` and
``relion_reconstruct --sym`` in ``tests/test_symmetry.py``):

* ``Cn``: the n-fold axis along z.
* ``Dn``: the n-fold along z and a 2-fold along x.
* ``T``: a 3-fold along z and a 2-fold along ``(0, 0.816496, 0.577350)``.
* ``O``: a 4-fold along z (and x, y) and a 3-fold along ``(1, 1, 1)/√3``.
* ``I1``: 2-folds along x, y, z, a 5-fold along ``(φ, 0, −1)`` (no-Crowther 222).
* ``I2`` (= ``I``, RELION's default): 2-folds along x, y, z, a 5-fold along ``(1, 0, φ)``
  (Crowther 222: I1 turned 90° about y).
* ``I3``: a 5-fold along z, a 2-fold along ``(−1, 0, φ)`` (52 setting).
* ``I4``: a 5-fold along z, a 2-fold along ``(1, 0, φ)`` (the other 52 setting).

``φ`` is the golden ratio. Each group as a set equals the matrices of the angles that
``relion_particle_symmetry_expand --sym G`` writes for a particle at ``(0, 0, 0)`` (RELION 3.1).
Names are case-insensitive.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.errors import InputError
from cryosplat.core.mixture import Mixture

__all__ = [
    "symmetry_operators",
    "normalize_symmetry",
    "symmetry_order",
    "asymmetric_unit_gaussians",
    "expand_gaussians",
    "rotate_volume",
    "voxel_permutations",
    "symmetrize_on_grid",
]


_GOLDEN = (1.0 + math.sqrt(5.0)) / 2.0

# (fold, axis) generators of each polyhedral group, the axes as RELION orients them.
_GENERATORS: dict[str, list[tuple[int, tuple[float, float, float]]]] = {
    "T": [(3, (0.0, 0.0, 1.0)), (2, (0.0, 0.816496580927726, 0.577350269189626))],
    "O": [(3, (1.0, 1.0, 1.0)), (4, (0.0, 0.0, 1.0))],
    "I1": [(2, (1.0, 0.0, 0.0)), (5, (_GOLDEN, 0.0, -1.0)), (2, (0.0, 0.0, 1.0))],
    "I2": [(2, (0.0, 0.0, 1.0)), (5, (1.0, 0.0, _GOLDEN)), (2, (1.0, 0.0, 0.0))],
    "I3": [(2, (-1.0, 0.0, _GOLDEN)), (5, (0.0, 0.0, 1.0))],
    "I4": [(2, (1.0, 0.0, _GOLDEN)), (5, (0.0, 0.0, 1.0))],
}


def _axis_rotation(fold: int, axis) -> np.ndarray:
    """Active rotation by ``2π/fold`` about ``axis`` (Rodrigues)."""
    u = np.asarray(axis, dtype=np.float64)
    u = u / np.linalg.norm(u)
    angle = 2.0 * math.pi / fold
    k = np.array([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


def _close(generators: list[np.ndarray]) -> np.ndarray:
    """All products of the generators (the group they generate), the identity first."""
    group = [np.eye(3)]
    frontier = [np.eye(3)]
    while frontier:
        new = []
        for a in frontier:
            for g in generators:
                b = g @ a
                if not any(np.abs(b - c).max() < 1e-6 for c in group):
                    group.append(b)
                    new.append(b)
        frontier = new
        if len(group) > 1000:
            raise RuntimeError("symmetry generators do not close (bad axes)")
    return np.stack(group)


def normalize_symmetry(name: str) -> str:
    """RELION's canonical spelling of a group name (``c4`` → ``C4``, ``i`` → ``I2``).

    Raises
    ------
    InputError
        The name is not a point group cryosplat knows (the message names it).
    """
    text = str(name).strip().upper()
    if text == "I":
        return "I2"
    if text in _GENERATORS:
        return text
    match = re.fullmatch(r"([CD])(\d+)", text)
    if match and int(match.group(2)) >= 1:
        return f"{match.group(1)}{int(match.group(2))}"
    raise InputError(
        f"unknown symmetry group '{name}' (expected C<n>, D<n>, T, O, I or I1-I4, as RELION)"
    )


@lru_cache(maxsize=64)
def _operators(name: str) -> np.ndarray:
    kind = name[0]
    if kind in "CD" and name[1:].isdigit():
        n = int(name[1:])
        cyclic = [_axis_rotation(n, (0.0, 0.0, 1.0))] if n > 1 else []
        if kind == "C":
            return _close(cyclic)
        return _close(cyclic + [_axis_rotation(2, (1.0, 0.0, 0.0))])
    return _close([_axis_rotation(f, a) for f, a in _GENERATORS[name]])


def symmetry_operators(name: str) -> np.ndarray:
    """The rotation matrices of a point group, float64 ``(|G|, 3, 3)``, the identity first.

    Parameters
    ----------
    name : str
        ``C<n>``, ``D<n>``, ``T``, ``O``, ``I`` (RELION's default icosahedral setting, I2) or
        ``I1``–``I4``, case-insensitive.
    """
    ops = _operators(normalize_symmetry(name)).copy()
    ops[np.abs(ops) < 1e-12] = 0.0
    return ops


def symmetry_order(name: str) -> int:
    """``|G|``."""
    return int(symmetry_operators(name).shape[0])


def asymmetric_unit_gaussians(n_total: int, name: str) -> int:
    """Gaussians of one asymmetric unit for a molecule of about ``n_total``: ``⌈n_total/|G|⌉``."""
    order = symmetry_order(name)
    return max(1, -(-int(n_total) // order))


def expand_gaussians(
    mixture: Mixture,
    operators: torch.Tensor | np.ndarray | None,
) -> Mixture:
    """The ``|G|`` copies of a mixture: means ``R_g μ``, orientations ``R_g R(q)``, differentiable.

    Copy ``g`` of Gaussian ``i`` is row ``g · N + i`` (copy 0 is the identity, so the first ``N`` rows
    are the input). Scales and amplitudes repeat; quaternions are composed (``q_g ⊗ q``), so the
    covariances are ``R_g Σ R_gᵀ``.

    Parameters
    ----------
    mixture : Mixture
        N Gaussians, quaternions ``(w, x, y, z)``.
    operators : (G, 3, 3) or None (no symmetry: the input is returned)

    Returns
    -------
    Mixture of G·N Gaussians.
    """
    if operators is None or len(operators) <= 1:
        return Mixture(*mixture)
    means, scales, quaternions, amplitudes = mixture
    if torch.is_tensor(operators):
        ops = operators.to(device=means.device, dtype=means.dtype)
    else:
        ops = torch.as_tensor(np.asarray(operators), dtype=means.dtype, device=means.device)
    g = ops.shape[0]
    new_means = torch.einsum("gij,nj->gni", ops, means).reshape(-1, 3)
    qg = _matrix_to_quaternion(ops)  # (G, 4)
    w1, x1, y1, z1 = (t[:, None] for t in qg.unbind(-1))
    w2, x2, y2, z2 = (t[None, :] for t in quaternions.unbind(-1))
    q = torch.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        dim=-1,
    ).reshape(-1, 4)
    return Mixture(new_means, scales.repeat(g, 1), q, amplitudes.repeat(g))


def _matrix_to_quaternion(matrices: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(w, x, y, z)`` of rotation matrices (the largest-pivot formula)."""
    out = []
    for m in matrices.detach().cpu().double().numpy():
        t = np.trace(m)
        if t > 0:
            s = 2.0 * math.sqrt(1.0 + t)
            q = [
                0.25 * s,
                (m[2, 1] - m[1, 2]) / s,
                (m[0, 2] - m[2, 0]) / s,
                (m[1, 0] - m[0, 1]) / s,
            ]
        else:
            i = int(np.argmax(np.diag(m)))
            j, k = (i + 1) % 3, (i + 2) % 3
            s = 2.0 * math.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 1e-300))
            q = [0.0] * 4
            q[0] = (m[k, j] - m[j, k]) / s
            q[1 + i] = 0.25 * s
            q[1 + j] = (m[j, i] + m[i, j]) / s
            q[1 + k] = (m[k, i] + m[i, k]) / s
        out.append(q)
    return torch.tensor(out, dtype=matrices.dtype, device=matrices.device)


def rotate_volume(volume: torch.Tensor, rotation: ArrayLike) -> torch.Tensor:
    """The map rotated by ``R``: ``out(r) = V(Rᵀ r)`` (a point at ``r`` moves to ``R r``), trilinear.

    ``volume`` is ``[z, y, x]`` with its origin at voxel ``D//2`` (zero outside the box).
    """
    vol = torch.as_tensor(volume)
    box = vol.shape[-1]
    rot = torch.as_tensor(np.asarray(rotation), dtype=torch.float64)
    c = torch.arange(box, dtype=torch.float64) - box // 2
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    r = torch.stack([x, y, z], -1).reshape(-1, 3)
    src = r @ rot  # Rᵀ r as rows
    # grid_sample's normalised coordinates: index i ↔ -1 + (2i + 1)/D (align_corners=False)
    idx = src + box // 2
    grid = ((2.0 * idx + 1.0) / box - 1.0).reshape(1, box, box, box, 3)
    out = torch.nn.functional.grid_sample(
        vol.double()[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out[0, 0].to(vol.dtype)


def voxel_permutations(
    name: str, box: int, device: torch.device | str | None = None
) -> torch.Tensor | None:
    """Flat gather indices ``(|G|, D³)`` that rotate a D³ map by each operator, or None.

    When every operator of the group is a signed permutation of the axes (C2, C4, D2, D4, T, O
    ...), rotating a map about voxel ``D//2`` moves voxels onto voxels: ``out(r) = V(R_gᵀ r)`` is a
    gather, exact and cheap. Coordinates wrap at the box edge (voxel ``−D/2`` has no partner inside
    the box; the map is assumed to vanish there). None for the other groups.
    """
    ops = symmetry_operators(name)
    rounded = np.round(ops)
    if np.abs(ops - rounded).max() > 1e-9:
        return None
    c = np.arange(box) - box // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    r = np.stack([x, y, z], -1).reshape(-1, 3)
    out = []
    for op in rounded.astype(np.int64):
        src = (r @ op + box // 2) % box  # rows: Rᵀ r, as voxel indices
        out.append((src[:, 2] * box + src[:, 1]) * box + src[:, 0])
    return torch.as_tensor(np.stack(out), device=device)


def symmetrize_on_grid(volume: torch.Tensor, permutations: torch.Tensor) -> torch.Tensor:
    """``Σ_g V(R_gᵀ r)`` by the gathers of :func:`voxel_permutations` (differentiable)."""
    flat = volume.reshape(-1)
    return flat[permutations].sum(0).reshape(volume.shape)
