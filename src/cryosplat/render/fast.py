"""Fast orthographic Gaussian splatting: the reference's maths with an analytic backward pass.

Same signature and same result as :func:`cryosplat.render.reference.splat_reference` (footprints
of half-width ``⌈n_sigma·σ_max/pixel⌉`` per (view, Gaussian) pair), computed differently:

* pairs are sorted by footprint size and processed in cache-sized chunks, each with its own footprint;
* the exponent of a splat, ``log w - ½(c_xx dx² + 2 c_xy dx dy + c_yy dy²)``, is built as an outer
  sum of per-row and per-column terms (one broadcast add, one fused multiply-add, one in-place exp);
* pixels falling outside the image go to a spare row and column of a (D+1)² canvas per view instead
  of being masked;
* a custom :class:`torch.autograd.Function` recomputes the footprints in the backward pass and
  reduces them analytically to gradients of the 2D means, conics and log-weights, so no K×K patch
  is stored between the passes. Autograd carries those on to the 3D parameters and rotations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

from cryosplat.core.mixture import Mixture
from cryosplat.render.geometry import (
    ProjectedGaussians,
    check_inputs,
    footprint_radius_pixels,
    project_gaussians,
)
from cryosplat.render.reference import view_chunk_size

__all__ = ["splat_fast"]

# Footprint values per chunk: small enough to stay in cache, large enough to amortise Python.
CACHE_ELEMENTS = 2**17


@dataclass
class _Plan:
    """Non-differentiable layout of the pairs of one view chunk, sorted by footprint radius."""

    box: int
    pixel: float
    n_views: int
    centres: torch.Tensor  # (P, 2) int64, centre pixel (x, y) as image indices
    views: torch.Tensor  # (P,) int64
    blocks: list[tuple[int, int, int]]  # (start, stop, radius): pairs of one radius, bounded size
    cache_elements: int


def _make_plan(radius, centres, views, box, pixel, n_views, max_elements) -> _Plan:
    blocks = []
    counts = torch.bincount(radius).tolist()
    cache = min(max_elements, CACHE_ELEMENTS if radius.device.type == "cpu" else max_elements)
    start = 0
    for r, count in enumerate(counts):
        side = 2 * r + 1
        # Per-pair (M, K) terms of a block stay well under max_elements.
        per = max(1, max_elements // (16 * side))
        for s in range(start, start + count, per):
            blocks.append((s, min(start + count, s + per), r))
        start += count
    return _Plan(box, pixel, n_views, centres, views, blocks, max(1, cache))


def _block_terms(plan: _Plan, start: int, stop: int, r: int, means_2d, conics, log_weights):
    """Per-pair row and column terms of the exponents and canvas indices of one block.

    The exponent of pair m at footprint pixel (j, i) is ``row[m, j] + col[m, i] + dy[m, j] *
    cross[m, i]``; its canvas index is ``row_index[m, j] + ix[m, i]``.
    """
    box, pixel = plan.box, plan.pixel
    dtype, device = means_2d.dtype, means_2d.device
    offs = torch.arange(-r, r + 1, device=device)
    c = plan.centres[start:stop]  # (M, 2) image indices
    step = offs.to(dtype) * pixel
    dx0 = (c[:, 0] - box // 2).to(dtype) * pixel - means_2d[start:stop, 0]
    dy0 = (c[:, 1] - box // 2).to(dtype) * pixel - means_2d[start:stop, 1]
    dx = dx0[:, None] + step[None, :]  # (M, K)
    dy = dy0[:, None] + step[None, :]
    conic = conics[start:stop]
    col = -0.5 * conic[:, 0:1] * dx * dx
    row = log_weights[start:stop, None] - 0.5 * conic[:, 2:3] * dy * dy
    cross = -conic[:, 1:2] * dx
    ix = c[:, 0:1] + offs[None, :]
    iy = c[:, 1:2] + offs[None, :]
    ix = ix.masked_fill_((ix < 0) | (ix >= box), box)  # outside: the spare column
    iy = iy.masked_fill_((iy < 0) | (iy >= box), box)  # outside: the spare row
    row_index = (plan.views[start:stop, None] * (box + 1) + iy) * (box + 1)
    return dx0, dx, dy, col, row, cross, row_index, ix, step


def _footprints(out, index_out, a, b, terms):
    """Fill ``out`` (M, K, K) with footprint values and ``index_out`` with canvas indices."""
    _, _, dy, col, row, cross, row_index, ix, _ = terms
    torch.add(row[a:b, :, None], col[a:b, None, :], out=out)
    out.addcmul_(dy[a:b, :, None], cross[a:b, None, :])
    out.exp_()
    torch.add(row_index[a:b, :, None], ix[a:b, None, :], out=index_out)


def _pairs_per_chunk(plan: _Plan, r: int) -> int:
    return max(1, plan.cache_elements // (2 * r + 1) ** 2)


class _SplatPairs(torch.autograd.Function):
    """Images (B, D, D) from 2D splat parameters of sorted pairs, with an analytic backward."""

    @staticmethod
    def forward(ctx, means_2d, conics, log_weights, plan: _Plan):
        box = plan.box
        canvas = means_2d.new_zeros(plan.n_views * (box + 1) * (box + 1))
        values = means_2d.new_empty(plan.cache_elements + (2 * box + 1) ** 2)
        indices = torch.empty(values.shape, dtype=torch.long, device=values.device)
        with torch.no_grad():
            for start, stop, r in plan.blocks:
                terms = _block_terms(plan, start, stop, r, means_2d, conics, log_weights)
                k = 2 * r + 1
                per = _pairs_per_chunk(plan, r)
                for a in range(0, stop - start, per):
                    b = min(stop - start, a + per)
                    val = values[: (b - a) * k * k].view(b - a, k, k)
                    idx = indices[: (b - a) * k * k].view(b - a, k, k)
                    _footprints(val, idx, a, b, terms)
                    canvas.index_add_(0, idx.view(-1), val.view(-1))
        ctx.plan = plan
        ctx.save_for_backward(means_2d, conics, log_weights)
        return canvas.reshape(plan.n_views, box + 1, box + 1)[:, :box, :box]

    @staticmethod
    def backward(ctx, grad_images):
        plan = ctx.plan
        means_2d, conics, log_weights = ctx.saved_tensors
        box = plan.box
        grad_canvas = grad_images.new_zeros(plan.n_views, box + 1, box + 1)
        grad_canvas[:, :box, :box] = grad_images
        grad_canvas = grad_canvas.reshape(-1)
        g_mu = torch.zeros_like(means_2d)
        g_conic = torch.zeros_like(conics)
        g_logw = torch.zeros_like(log_weights)
        values = means_2d.new_empty(plan.cache_elements + (2 * box + 1) ** 2)
        gathered = torch.empty_like(values)
        indices = torch.empty(values.shape, dtype=torch.long, device=values.device)
        with torch.no_grad():
            for start, stop, r in plan.blocks:
                terms = _block_terms(plan, start, stop, r, means_2d, conics, log_weights)
                dx0, dx, dy, _, _, _, _, _, step = terms
                k = 2 * r + 1
                m = stop - start
                basis = torch.stack([torch.ones_like(step), step], dim=-1)  # (K, 2)
                col_sum = dx.new_empty(m, k)  # Σ_j dL/dE[j, i]
                row_sums = dx.new_empty(m * k, 2)  # Σ_i dL/dE[j, i] · (1, step_i)
                per = _pairs_per_chunk(plan, r)
                for a in range(0, m, per):
                    b = min(m, a + per)
                    gv = values[: (b - a) * k * k].view(b - a, k, k)
                    idx = indices[: (b - a) * k * k].view(b - a, k, k)
                    _footprints(gv, idx, a, b, terms)
                    g = gathered[: (b - a) * k * k]
                    torch.take(grad_canvas, idx.view(-1), out=g)
                    gv.mul_(g.view(b - a, k, k))
                    torch.sum(gv, dim=1, out=col_sum[a:b])
                    torch.mm(gv.view(-1, k), basis, out=row_sums[a * k : b * k])
                row_sums = row_sums.view(m, k, 2)
                row_sum = row_sums[..., 0]
                row_dx = dx0[:, None] * row_sum + row_sums[..., 1]  # Σ_i dL/dE[j, i] · dx_i
                s_dxdy = (row_dx * dy).sum(-1)
                s_dx = (col_sum * dx).sum(-1)
                s_dy = (row_sum * dy).sum(-1)
                s_dx2 = (col_sum * dx * dx).sum(-1)
                s_dy2 = (row_sum * dy * dy).sum(-1)
                cxx, cxy, cyy = conics[start:stop].unbind(-1)
                g_logw[start:stop] = row_sum.sum(-1)
                g_conic[start:stop, 0] = -0.5 * s_dx2
                g_conic[start:stop, 1] = -s_dxdy
                g_conic[start:stop, 2] = -0.5 * s_dy2
                g_mu[start:stop, 0] = cxx * s_dx + cxy * s_dy
                g_mu[start:stop, 1] = cxy * s_dx + cyy * s_dy
        return g_mu, g_conic, g_logw, None


def splat_fast(
    mixture: Mixture,
    rotations: torch.Tensor,
    box: int,
    pixel_size_angstrom: float,
    n_sigma: float = 3.0,
    max_elements: int = 2**24,
) -> torch.Tensor:
    """Orthographic projections of a Gaussian mixture (line integrals, per Å²), fast path.

    Parameters and result as :func:`cryosplat.render.reference.splat_reference`; agrees with it to
    rounding (relative 1e-5 in float32, 1e-10 in float64), gradients included.

    Parameters
    ----------
    mixture : Mixture
        The N Gaussians (means and scales in Å, internal frame).
    rotations : torch.Tensor, shape (B, 3, 3), map→image matrices ``A``
    box : int
    pixel_size_angstrom : float
    n_sigma : float
        Footprint half-width in standard deviations of each splat's widest 2D axis.
    max_elements : int
        Bound on footprint values evaluated at once (chunks are also kept cache-sized).

    Returns
    -------
    torch.Tensor, shape (B, D, D), density per Å².
    """
    check_inputs(mixture, rotations, box, pixel_size_angstrom)
    box, pixel = int(box), float(pixel_size_angstrom)
    n_views, n = rotations.shape[0], mixture.means.shape[0]
    device, dtype = mixture.means.device, mixture.means.dtype
    if n_views == 0 or n == 0:
        return torch.zeros(n_views, box, box, device=device, dtype=dtype)
    chunk_views = view_chunk_size(n, n_views, max_elements)
    images = []
    for v0 in range(0, n_views, chunk_views):
        rot = rotations[v0 : v0 + chunk_views].to(dtype)
        images.append(_splat_view_chunk(mixture, rot, box, pixel, n_sigma, max_elements))
    return torch.cat(images, dim=0)


def _project_fields(mixture: Mixture, rot: torch.Tensor):
    proj = project_gaussians(mixture, rot)
    return proj.means_2d, proj.conics, proj.log_weights, proj.max_variance


def _splat_view_chunk(mixture: Mixture, rot, box, pixel, n_sigma, max_elements):
    n_views, n = rot.shape[0], mixture.means.shape[0]
    if torch.is_grad_enabled() and any(t.requires_grad for t in (*mixture, rot)):
        # Recompute the projection in the backward pass instead of keeping its (views × N)
        # intermediates for every chunk: only the splat's own inputs (a few numbers per pair)
        # stay until then.
        proj = ProjectedGaussians(*checkpoint(_project_fields, mixture, rot, use_reentrant=False))
    else:
        proj = project_gaussians(mixture, rot)
    with torch.no_grad():
        radius = footprint_radius_pixels(proj.max_variance, pixel, n_sigma, box)
        centres = torch.round(proj.means_2d.detach() / pixel).long() + box // 2
        views = torch.arange(n_views, device=mixture.means.device).repeat_interleave(n)
        # Pairs whose footprint misses the image contribute nothing.
        lo, hi = centres - radius[:, None], centres + radius[:, None]
        visible = ((hi >= 0) & (lo < box)).all(dim=-1)
        keep = torch.nonzero(visible).squeeze(1)
        # Sort by footprint radius, then by view and centre row so scatters stay local.
        row_key = views[keep] * (box + 1) + centres[keep, 1].clamp(0, box)
        key = radius[keep] * (n_views * (box + 1)) + row_key
        order = keep[torch.argsort(key)]
    if order.numel() == 0:
        return (proj.log_weights.sum() * 0.0).expand(n_views, box, box).clone()
    plan = _make_plan(
        radius[order], centres[order], views[order], box, pixel, n_views, max_elements
    )
    return _SplatPairs.apply(
        proj.means_2d[order], proj.conics[order], proj.log_weights[order], plan
    )
