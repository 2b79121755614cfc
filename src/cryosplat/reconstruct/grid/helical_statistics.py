"""A half set's statistics summed over a helix's asymmetric units, as ``relion_reconstruct`` does.

For each operator ``h`` of :class:`~cryosplat.core.helical.HelicalSymmetry` other than the
identity, ``W(K)`` gains ``W(R_h K)`` and ``B(K)`` gains ``B(R_h K) · exp(−2πi · h · rise · k_z)``,
read by trilinear interpolation on the padded half grid (``R_h K`` with ``K_x < 0`` from its Friedel
mate, conjugated), within the gathered radius (RELION's ``applyHelicalSymmetry``, on the grids of
each half before the point group's). A fit or an inversion of the summed statistics is then of a
map the N units agree in; the data power counts ``N`` times, as a point group's ``|G|``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from cryosplat.core.helical import HelicalSymmetry
from cryosplat.reconstruct.grid.statistics import FourierStatistics

__all__ = ["helically_symmetrized"]


def _corners(values: torch.Tensor, iz, iy, ix, fy, fx, half: int) -> torch.Tensor:
    """Bilinear in (y, x) at integer z of the flat half grid ``values`` (z and y centred and
    wrapped, x from 0; corners past the x edge read 0)."""
    size = values.shape[1]
    out = None
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            x = ix + dx
            inside = x < half
            index = (iz * size + (iy + dy) % size) * half + x.clamp_max(half - 1)
            term = values.reshape(-1)[index] * (wy * wx * inside)
            out = term if out is None else out + term
    return out


def helically_symmetrized(stats: FourierStatistics, helical: HelicalSymmetry) -> FourierStatistics:
    """``stats`` summed over ``helical``'s asymmetric units (see the module docstring).

    Parameters
    ----------
    stats : FourierStatistics
        One half set's statistics, the point group's operators not yet applied.
    helical : HelicalSymmetry

    Returns
    -------
    FourierStatistics with the summed ``weights`` and ``data``, ``power`` times ``n_asu`` and a
    note.
    """
    helical.validate()
    weights, data = stats.weights, stats.data
    size, half = weights.shape[0], weights.shape[2]
    device = weights.device
    grid_dtype = torch.float64
    centred = torch.arange(size, device=device, dtype=grid_dtype) - size // 2
    z = centred[:, None, None].expand(size, size, half)
    y = centred[None, :, None].expand(size, size, half)
    x = torch.arange(half, device=device, dtype=grid_dtype)[None, None, :].expand(size, size, half)
    radius = stats.max_radius * stats.pad  # in the padded grid's pixels
    inside = (x * x + y * y + z * z) <= radius * radius
    total_w = weights.clone()
    total_b = data.clone()
    # k_z in cycles per Å: the padded grid's spacing is 1 / (size · pixel)
    kz = z / (size * stats.pixel_size_angstrom)
    for step in helical.steps():
        if step == 0:
            continue
        rot = helical.rotation(step)
        xp = rot[0, 0] * x + rot[0, 1] * y
        yp = rot[1, 0] * x + rot[1, 1] * y
        zp = z.clone()
        mate = xp < 0
        xp, yp, zp = (torch.where(mate, -c, c) for c in (xp, yp, zp))
        x0, y0 = torch.floor(xp), torch.floor(yp)
        fx, fy = xp - x0, yp - y0
        iz = ((zp.round().long() + size // 2) % size).reshape(-1)
        iy = (y0.long() + size // 2).reshape(-1)
        ix = x0.long().reshape(-1)
        fx, fy = fx.reshape(-1), fy.reshape(-1)
        w = _corners(weights.to(grid_dtype), iz, iy, ix, fy, fx, half).reshape(weights.shape)
        b = _corners(data.to(torch.complex128), iz, iy, ix, fy, fx, half).reshape(data.shape)
        b = torch.where(mate, b.conj(), b)
        if helical.rise_angstrom:
            b = b * torch.exp(-2j * math.pi * step * helical.rise_angstrom * kz)
        total_w += torch.where(inside, w, torch.zeros_like(w)).to(weights.dtype)
        total_b += torch.where(inside, b, torch.zeros_like(b)).to(data.dtype)
    note = f"helical symmetry imposed: {helical.describe()}"
    return replace(
        stats,
        weights=total_w,
        data=total_b,
        power=stats.power * helical.n_asu,
        notes=[*stats.notes, note],
    )
