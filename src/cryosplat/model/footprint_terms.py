"""Each Gaussian's footprint terms, from its parameters, with one analytic backward.

The voxeliser (:mod:`cryosplat.model.voxelize`) evaluates Gaussian ``m`` at footprint offset ``o``
(voxels) from its nearest voxel ``c`` as ``w · exp(−½ q)`` with

    ``q = q0 + coef · (ox, oy, oz, ox², oy², oz², ox·oy, ox·oz, oy·oz)``,

``δ = c·px − μ``, ``P = R diag(s⁻²) Rᵀ`` the precision, ``q0 = δᵀPδ``, ``coef = (2px·Pδ, px²·(P_xx,
P_yy, P_zz, 2P_xy, 2P_xz, 2P_yz))`` and ``w = A / ((2π)^{3/2} s_x s_y s_z)`` (0 for a Gaussian
dropped from the buffer). :func:`footprint_terms_reference` states it in plain PyTorch autograd:
some forty small tensor operations forward and as many autograd nodes backward, most of a fit
step's time at small boxes, where each costs more to dispatch than to compute.
:class:`_FootprintTerms` computes the same forward without recording a graph and its backward by
hand (a dozen operations); the tests compare both, values and gradients, and gradcheck it.
"""

from __future__ import annotations

import math

import torch

from cryosplat.core.rotations import quaternion_quadratic_forms, quaternion_to_matrix

__all__ = ["footprint_terms", "footprint_terms_reference", "precision_and_norm_3d"]

# Entries of the flattened 3×3 precision in the order of the quadratic basis rows, and their factor.
_QUADRATIC_ENTRIES = [0, 4, 8, 1, 2, 5]
_QUADRATIC_FACTORS = (1.0, 1.0, 1.0, 2.0, 2.0, 2.0)
_NORM = (2.0 * math.pi) ** -1.5


def precision_and_norm_3d(
    scales: torch.Tensor, quaternions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Precision matrices ``Σ⁻¹ = R S⁻² Rᵀ`` and normalisations ``1/((2π)^{3/2} s₁s₂s₃)``.

    Parameters
    ----------
    scales : torch.Tensor, shape (N, 3), Å
    quaternions : torch.Tensor, shape (N, 4)

    Returns
    -------
    precision : torch.Tensor, shape (N, 3, 3), 1/Å²
    norm : torch.Tensor, shape (N,), 1/Å³
    """
    rot = quaternion_to_matrix(quaternions)
    inv_var = scales.pow(-2)
    precision = (rot * inv_var[:, None, :]) @ rot.transpose(-1, -2)
    norm = _NORM / scales.prod(dim=-1)
    return precision, norm


def footprint_terms_reference(
    means: torch.Tensor,
    scales: torch.Tensor,
    quaternions: torch.Tensor,
    amplitudes: torch.Tensor,
    order: torch.Tensor,
    centre: torch.Tensor,
    keep: torch.Tensor,
    pixel: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(w, q0, coef)`` of the Gaussians in the order ``order``, in plain PyTorch autograd (the
    twin of :func:`footprint_terms`, same arguments and results).

    Parameters
    ----------
    means : torch.Tensor, shape (N, 3), Å
    scales : torch.Tensor, shape (N, 3), Å
    quaternions : torch.Tensor, shape (N, 4), need not be unit
    amplitudes : torch.Tensor, shape (N,)
    order : torch.Tensor, shape (N,), int64
        A permutation: the results are for Gaussians ``order[0], order[1], ...``.
    centre : torch.Tensor, shape (N, 3), integer
        The nearest voxel of each Gaussian in that order (not differentiated).
    keep : torch.Tensor, shape (N,), bool
        Gaussians (in that order) whose footprint lies in the buffer; the others get ``w = 0``.
    pixel : float
        Voxel size, Å.

    Returns
    -------
    weight : torch.Tensor, shape (N,)
    q0 : torch.Tensor, shape (N,)
    coef : torch.Tensor, shape (N, 9)
    """
    means, scales, quaternions, amplitudes = (
        t[order] for t in (means, scales, quaternions, amplitudes)
    )
    precision, norm = precision_and_norm_3d(scales, quaternions)
    delta = centre.to(means.dtype) * pixel - means
    p_delta = (precision @ delta[:, :, None]).squeeze(-1)
    q0 = (delta * p_delta).sum(-1)
    factors = torch.tensor(_QUADRATIC_FACTORS, device=means.device, dtype=means.dtype)
    quadratic = precision.flatten(1)[:, _QUADRATIC_ENTRIES] * (factors * pixel * pixel)
    coef = torch.cat([2.0 * pixel * p_delta, quadratic], dim=-1)
    weight = torch.where(keep, amplitudes * norm, torch.zeros_like(amplitudes))
    return weight, q0, coef


class _FootprintTerms(torch.autograd.Function):
    """:func:`footprint_terms_reference` with a hand-written backward."""

    @staticmethod
    def forward(ctx, means, scales, quaternions, amplitudes, order, centre, keep, pixel):
        means, scales, q, amplitudes = (t[order] for t in (means, scales, quaternions, amplitudes))
        forms = quaternion_quadratic_forms(q.device, q.dtype)
        norm2 = q.square().sum(-1, keepdim=True).clamp_min(1e-24)
        rot_flat = (q[:, :, None] * q[:, None, :]).reshape(-1, 16) @ forms / norm2
        rot = rot_flat.view(-1, 3, 3)
        inv_var = scales.pow(-2)
        rot_d = rot * inv_var[:, None, :]
        precision = rot_d @ rot.transpose(-1, -2)
        norm = _NORM / scales.prod(dim=-1)
        delta = centre.to(means.dtype) * pixel - means
        p_delta = (precision @ delta[:, :, None]).squeeze(-1)
        q0 = (delta * p_delta).sum(-1)
        factors = torch.tensor(_QUADRATIC_FACTORS, device=means.device, dtype=means.dtype)
        factors = factors * (pixel * pixel)
        coef = torch.cat([2.0 * pixel * p_delta, precision.flatten(1)[:, _QUADRATIC_ENTRIES]], 1)
        coef[:, 3:] *= factors
        kept_norm = torch.where(keep, norm, torch.zeros_like(norm))
        weight = amplitudes * kept_norm
        ctx.save_for_backward(
            q, norm2, rot_flat, rot_d, scales, delta, p_delta, precision, amplitudes, kept_norm
        )
        ctx.order, ctx.factors, ctx.pixel = order, factors, pixel
        return weight, q0, coef

    @staticmethod
    def backward(ctx, g_weight, g_q0, g_coef):
        q, norm2, rot_flat, rot_d, scales, delta, p_delta, precision, amplitudes, kept_norm = (
            ctx.saved_tensors
        )
        order, factors, pixel = ctx.order, ctx.factors, ctx.pixel
        n = q.shape[0]
        g_weight = torch.zeros_like(amplitudes) if g_weight is None else g_weight
        g_q0 = torch.zeros_like(amplitudes) if g_q0 is None else g_q0
        g_coef = amplitudes.new_zeros(n, 9) if g_coef is None else g_coef
        # q0 = δ·Pδ, coef[:3] = 2px·Pδ: the gradient of Pδ, then of δ and of P (as a 3×3 matrix).
        g_pd = 2.0 * pixel * g_coef[:, :3] + g_q0[:, None] * delta
        g_delta = g_q0[:, None] * p_delta + (precision.transpose(-1, -2) @ g_pd[:, :, None])[..., 0]
        g_p = g_pd[:, :, None] * delta[:, None, :]
        g_p.view(n, 9)[:, _QUADRATIC_ENTRIES] += g_coef[:, 3:] * factors
        # P = R D Rᵀ (D = diag(s⁻²)): ∂R = (G + Gᵀ) R D, ∂D_k = (Rᵀ G R)_kk.
        rot = rot_flat.view(n, 3, 3)
        g_sym = g_p + g_p.transpose(-1, -2)
        g_rot = g_sym @ rot_d
        g_inv_var = ((g_p @ rot) * rot).sum(-2)
        # w = A · norm (kept), norm ∝ 1 / Π s; s⁻² from s.
        g_scales = (
            g_inv_var * (-2.0) * scales.pow(-3)
            - (g_weight * amplitudes * kept_norm)[:, None] / scales
        )
        g_amplitudes = g_weight * kept_norm
        # R = (q ⊗ q) F / |q|²: back through the products and the normalisation.
        g_rot_flat = g_rot.reshape(n, 9)
        forms = quaternion_quadratic_forms(q.device, q.dtype)
        g_products = (g_rot_flat @ forms.T / norm2).view(n, 4, 4)
        g_q = ((g_products + g_products.transpose(-1, -2)) @ q[:, :, None])[..., 0]
        g_norm2 = -(g_rot_flat * rot_flat).sum(-1, keepdim=True) / norm2
        g_q = g_q + 2.0 * g_norm2 * q
        grads = []
        for g in (-g_delta, g_scales, g_q, g_amplitudes):  # back from the sorted order
            unsorted = torch.empty_like(g)
            unsorted[order] = g
            grads.append(unsorted)
        return *grads, None, None, None, None


def footprint_terms(
    means: torch.Tensor,
    scales: torch.Tensor,
    quaternions: torch.Tensor,
    amplitudes: torch.Tensor,
    order: torch.Tensor,
    centre: torch.Tensor,
    keep: torch.Tensor,
    pixel: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(w, q0, coef)`` of the Gaussians in the order ``order`` (see the module docstring and
    :func:`footprint_terms_reference` for the arguments), differentiable in ``means``,
    ``scales``, ``quaternions`` and ``amplitudes`` with an analytic backward."""
    return _FootprintTerms.apply(
        means, scales, quaternions, amplitudes, order, centre, keep, float(pixel)
    )
