"""Reference orthographic Gaussian splatting in plain PyTorch (autograd does every derivative).

Each 3D Gaussian projects in each view to a 2D Gaussian (:mod:`cryosplat.render.geometry`),
evaluated at the pixel centres of a square footprint of half-width ``⌈n_sigma·σ_max/pixel⌉``
pixels around its centre pixel on the FFT-aligned grid (pixel ``i`` at ``(i - D//2)·pixel``), and
scatter-added into the image. Pairs (view, Gaussian) are processed in chunks of at most
``max_elements`` footprint values, so memory stays bounded whatever N and B. This is the slow,
obviously-correct path the faster backends are tested against.
"""

from __future__ import annotations

import torch

from cryosplat.core.mixture import Mixture
from cryosplat.render.geometry import check_inputs, footprint_radius_pixels, project_gaussians

__all__ = ["splat_reference", "view_chunk_size"]


def view_chunk_size(n_gaussians: int, n_views: int, max_elements: int) -> int:
    """Views per chunk so that per-pair tensors stay near ``max_elements / 16`` entries."""
    per_chunk = max(1, (max_elements // 16) // max(1, n_gaussians))
    return max(1, min(n_views, per_chunk))


def splat_reference(
    mixture: Mixture,
    rotations: torch.Tensor,
    box: int,
    pixel_size_angstrom: float,
    n_sigma: float = 3.0,
    max_elements: int = 2**24,
) -> torch.Tensor:
    """Orthographic projections of a Gaussian mixture (line integrals, per Å²).

    Parameters
    ----------
    mixture : Mixture
        The N Gaussians: means (N, 3) Å, scales (N, 3) Å, quaternions (N, 4) (normalised here),
        amplitudes (N,) (a projection integrates to ``Σ amplitudes``).
    rotations : torch.Tensor, shape (B, 3, 3)
        Map→image matrices ``A``.
    box : int
        Image size D (pixels).
    pixel_size_angstrom : float
    n_sigma : float
        Footprint half-width in standard deviations of each splat's widest 2D axis.
    max_elements : int
        Bound on footprint values evaluated at once.

    Returns
    -------
    torch.Tensor, shape (B, D, D), ``[b, y, x]``, density per Å². Differentiable with respect to
    every Gaussian parameter and the rotation matrices; float32 or float64 as the inputs.
    """
    check_inputs(mixture, rotations, box, pixel_size_angstrom)
    box = int(box)
    n_views, n = rotations.shape[0], mixture.means.shape[0]
    device, dtype = mixture.means.device, mixture.means.dtype
    chunk_views = view_chunk_size(n, n_views, max_elements)
    images = []
    for v0 in range(0, n_views, chunk_views):
        rot = rotations[v0 : v0 + chunk_views].to(dtype)
        canvas = torch.zeros(rot.shape[0] * box * box, device=device, dtype=dtype)
        if n > 0:
            proj = project_gaussians(mixture, rot)
            canvas = _splat_pairs(
                canvas, proj, n, box, float(pixel_size_angstrom), n_sigma, max_elements
            )
        images.append(canvas.reshape(-1, box, box))
    return (
        torch.cat(images, dim=0) if images else torch.zeros(0, box, box, device=device, dtype=dtype)
    )


def _splat_pairs(canvas, proj, n_gaussians, box, pixel, n_sigma, max_elements):
    """Scatter-add every (view, Gaussian) pair of ``proj`` into the flat canvas (B·D·D,)."""
    device, dtype = canvas.device, canvas.dtype
    n_pairs = proj.means_2d.shape[0]
    radius = footprint_radius_pixels(proj.max_variance, pixel, n_sigma, box)
    centre = box // 2
    r_max = int(radius.max())
    count = max(1, max_elements // (2 * r_max + 1) ** 2)
    offs = torch.arange(-r_max, r_max + 1, device=device)
    oy, ox = torch.meshgrid(offs, offs, indexing="ij")
    ox, oy = ox.reshape(-1), oy.reshape(-1)  # (K,) one footprint for every pair
    for start in range(0, n_pairs, count):
        stop = min(n_pairs, start + count)
        sel = slice(start, stop)
        mu = proj.means_2d[sel]
        conic = proj.conics[sel]
        log_w = proj.log_weights[sel]
        r = radius[sel]
        c = torch.round(mu.detach() / pixel).long()  # (M, 2) centre pixel, internal index
        px = c[:, 0:1] + ox[None, :]  # (M, K)
        py = c[:, 1:2] + oy[None, :]
        dx = px.to(dtype) * pixel - mu[:, 0:1]
        dy = py.to(dtype) * pixel - mu[:, 1:2]
        q = conic[:, 0:1] * dx * dx + 2.0 * conic[:, 1:2] * dx * dy + conic[:, 2:3] * dy * dy
        val = torch.exp(log_w[:, None] - 0.5 * q)
        ix, iy = px + centre, py + centre
        keep = (
            (ix >= 0)
            & (ix < box)
            & (iy >= 0)
            & (iy < box)
            & (ox.abs()[None, :] <= r[:, None])
            & (oy.abs()[None, :] <= r[:, None])
        )
        view = torch.arange(start, stop, device=device) // n_gaussians
        flat = (view[:, None] * box + iy) * box + ix
        flat = torch.where(keep, flat, torch.zeros_like(flat))
        val = torch.where(keep, val, torch.zeros_like(val))
        canvas = canvas.index_add(0, flat.reshape(-1), val.reshape(-1))
    return canvas
