"""View geometry shared by the splatting backends: 3D Gaussians seen through rotation matrices.

For a view ``A`` (map frame → image frame, :mod:`cryosplat.core.conventions`) a Gaussian ``N(μ, Σ)``
projects orthographically along the image z axis to the 2D Gaussian ``N((Aμ)[:2], Σ₂)`` with
``Σ₂`` the top-left 2×2 block of ``A Σ Aᵀ``. Integrated along z, its mass ``a`` becomes the image
density ``a / (2π sqrt(det Σ₂)) · exp(-½ dᵀ Σ₂⁻¹ d)`` per Å².
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cryosplat.core.mixture import Mixture
from cryosplat.core.rotations import quaternion_to_matrix

__all__ = ["ProjectedGaussians", "project_gaussians", "footprint_radius_pixels", "check_inputs"]


@dataclass
class ProjectedGaussians:
    """2D Gaussians of N 3D Gaussians in B views, flattened over (view, Gaussian) pairs.

    Attributes
    ----------
    means_2d : torch.Tensor, shape (P, 2)
        Projected centres ``(x, y)`` in Å, P = B·N, pair ``p = b·N + n``.
    conics : torch.Tensor, shape (P, 3)
        ``(c_xx, c_xy, c_yy)`` of the inverse 2D covariance ``Σ₂⁻¹``, 1/Å².
    log_weights : torch.Tensor, shape (P,)
        ``log(a / (2π sqrt(det Σ₂)))``, the log of each splat's peak value (per Å²).
    max_variance : torch.Tensor, shape (P,)
        Largest eigenvalue of ``Σ₂`` (Å²), detached: it only sets footprint sizes.
    """

    means_2d: torch.Tensor
    conics: torch.Tensor
    log_weights: torch.Tensor
    max_variance: torch.Tensor


def check_inputs(
    mixture: Mixture,
    rotations: torch.Tensor,
    box: int,
    pixel_size_angstrom: float,
) -> None:
    """Raise ``ValueError`` on inconsistent shapes, a bad box or pixel size."""
    n = mixture.means.shape[0]
    expected = {"means": (n, 3), "scales": (n, 3), "quaternions": (n, 4), "amplitudes": (n,)}
    for name, shape in expected.items():
        t = getattr(mixture, name)
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if rotations.ndim != 3 or rotations.shape[1:] != (3, 3):
        raise ValueError(f"rotations must have shape (B, 3, 3), got {tuple(rotations.shape)}")
    if int(box) < 1:
        raise ValueError(f"box must be positive, got {box}")
    if not pixel_size_angstrom > 0:
        raise ValueError(f"pixel_size_angstrom must be positive, got {pixel_size_angstrom}")


def project_gaussians(
    mixture: Mixture,
    rotations: torch.Tensor,
) -> ProjectedGaussians:
    """Project N Gaussians into B views (differentiable in every argument).

    Parameters
    ----------
    mixture : Mixture
        The N Gaussians (quaternions normalised here).
    rotations : torch.Tensor, shape (B, 3, 3), map→image matrices ``A``

    Returns
    -------
    ProjectedGaussians with P = B·N pairs, view-major.
    """
    means, scales, quaternions, amplitudes = mixture
    rot = quaternion_to_matrix(quaternions)  # (N, 3, 3)
    # Σ₂ = (A₂ R S)(A₂ R S)ᵀ with A₂ the first two rows of A: exact and positive semi-definite.
    a2 = rotations[:, :2, :]  # (B, 2, 3)
    rs = rot * scales[:, None, :]  # (N, 3, 3) columns R_k s_k
    m = torch.einsum("bij,njk->bnik", a2, rs)  # (B, N, 2, 3)
    cov = m @ m.transpose(-1, -2)  # (B, N, 2, 2)
    sxx, sxy, syy = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
    det = sxx * syy - sxy * sxy
    conics = torch.stack([syy / det, -sxy / det, sxx / det], dim=-1)
    log_w = torch.log(amplitudes)[None, :] - 0.5 * torch.log(det) - math.log(2.0 * math.pi)
    mu2 = torch.einsum("bij,nj->bni", a2, means)
    with torch.no_grad():
        half_trace = 0.5 * (sxx + syy)
        max_var = half_trace + torch.sqrt((0.5 * (sxx - syy)) ** 2 + sxy * sxy)
    return ProjectedGaussians(
        means_2d=mu2.reshape(-1, 2),
        conics=conics.reshape(-1, 3),
        log_weights=log_w.reshape(-1),
        max_variance=max_var.reshape(-1),
    )


def footprint_radius_pixels(
    max_variance: torch.Tensor, pixel_size_angstrom: float, n_sigma: float, box: int
) -> torch.Tensor:
    """Half-width (pixels) of each splat's square footprint: ``⌈n_sigma·σ_max/pixel⌉`` in [1, D].

    Parameters
    ----------
    max_variance : torch.Tensor, shape (P,), Å²
    pixel_size_angstrom : float
    n_sigma : float
    box : int

    Returns
    -------
    torch.Tensor, shape (P,), int64
    """
    sigma = torch.sqrt(max_variance.detach().clamp_min(0.0))
    radius = torch.ceil(n_sigma * sigma / pixel_size_angstrom)
    radius = torch.nan_to_num(radius, nan=float(box), posinf=float(box))
    return radius.clamp(1, box).long()
