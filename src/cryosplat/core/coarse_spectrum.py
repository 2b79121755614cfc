"""A map sampled at twice the voxel size, added to a fine map's padded spectrum.

A smooth part of a map (broad Gaussians, :mod:`cryosplat.model.two_grid`) needs no fine grid: its
samples on a grid of twice the voxel size hold it, and its spectrum on the fine grid follows from
theirs. For a fine map of box ``D`` zero-padded to ``P`` (voxel ``i`` at padded index ``i``, as
``torch.fft.rfftn(volume, s=(P,) * 3)`` places it) and a coarse map of box ``d = D // 2`` sampled at
the fine voxels ``2j + c`` (``c = D//2 − 2·(d//2)``, :func:`coarse_offset`: both grids put the
origin at their voxel ``box // 2``) and zero-padded to ``Q = P / 2``,

    ``F(k) = 8 · e^{−2πi c (kx + ky + kz) / P} · G(k)``   for ``|k| < Q/2`` on every axis,

where ``G`` is the coarse map's spectrum: the samples on the sub-lattice of even offsets sum to an
eighth of those on the full lattice for a function with no content at or beyond the coarse grid's
Nyquist frequency, and nothing of it lies beyond. The coarse Nyquist planes (``Q`` even) are left
out. The error is the part of the smooth map's spectrum at or beyond ``Q/2``, which the caller
keeps small by what it puts on the coarse grid.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

__all__ = [
    "coarse_offset",
    "add_coarse_spectrum",
    "embed_coarse_spectrum",
    "coarse_spectrum_adjoint",
]


def coarse_offset(box: int) -> int:
    """``c``: the fine voxel index of coarse voxel 0 (coarse voxel ``j`` is fine voxel ``2j + c``)."""
    if box < 2 or box % 2:
        raise ValueError(f"a coarse grid needs an even box of at least 2, got {box}")
    return box // 2 - 2 * ((box // 2) // 2)


def _bands(coarse_size: int) -> tuple[int, int]:
    """Non-negative and negative frequencies kept on each axis: ``0 .. n_pos − 1`` and
    ``−n_neg .. −1`` (the Nyquist plane of an even size is left out)."""
    return (coarse_size + 1) // 2, (coarse_size - 1) // 2


def _phase(coarse_size: int, size: int, offset: int, device, dtype) -> tuple[torch.Tensor, ...]:
    """Per-axis factors ``2 · e^{−2πi c k / P}`` over the kept frequencies of one axis, in the
    coarse grid's order (``(n_pos + n_neg,)`` along z and y, ``(n_pos,)`` along x); the product of
    the three is the ``8 · e^{…}`` of the module docstring."""
    n_pos, n_neg = _bands(coarse_size)
    k = torch.cat([torch.arange(n_pos), torch.arange(-n_neg, 0)]).to(torch.float64)
    full = (2.0 * torch.exp(-2j * math.pi * offset * k / size)).to(dtype).to(device)
    return full, full[:n_pos].clone()


@lru_cache(maxsize=16)
def _phase_grid(coarse_size: int, size: int, offset: int, device, dtype) -> torch.Tensor | None:
    """The factor of every kept frequency, ``(n, n, n_pos)`` in the coarse grid's order, or None
    where it is the constant 8 (``offset`` 0)."""
    if offset == 0:
        return None
    along, along_x = _phase(coarse_size, size, offset, device, dtype)
    return along[:, None, None] * along[None, :, None] * along_x


def _blocks(coarse_size: int, size: int):
    """``(fine rows, coarse rows)`` slice pairs of the kept frequencies on the z and y axes:
    the non-negative ones, then the negative ones."""
    n_pos, n_neg = _bands(coarse_size)
    pairs = [(slice(0, n_pos), slice(0, n_pos))]
    if n_neg:
        pairs.append((slice(size - n_neg, size), slice(coarse_size - n_neg, coarse_size)))
    return pairs


def _order(coarse_size: int, rows: slice) -> slice:
    """Coarse rows as positions in the kept-frequency order of :func:`_phase_grid`."""
    n_pos, _ = _bands(coarse_size)
    return rows if rows.start == 0 else slice(n_pos, n_pos + rows.stop - rows.start)


def _check(spectrum_shape, coarse_shape, size: int) -> int:
    coarse_size = coarse_shape[0]
    if size % 2 or coarse_size != size // 2:
        raise ValueError(f"the coarse padded size must be half the fine one: {coarse_size}, {size}")
    if tuple(spectrum_shape) != (size, size, size // 2 + 1):
        raise ValueError(
            f"expected a ({size}, {size}, {size // 2 + 1}) spectrum, got {spectrum_shape}"
        )
    if tuple(coarse_shape) != (coarse_size, coarse_size, coarse_size // 2 + 1):
        raise ValueError(f"expected a half spectrum of size {coarse_size}, got {coarse_shape}")
    return coarse_size


def add_coarse_spectrum(spectrum: torch.Tensor, coarse: torch.Tensor, offset: int) -> None:
    """Add the fine-grid spectrum of a coarse map to ``spectrum`` in place.

    Parameters
    ----------
    spectrum : torch.Tensor, complex (P, P, P//2 + 1)
        ``rfftn`` of the fine map zero-padded to P at its corner.
    coarse : torch.Tensor, complex (Q, Q, Q//2 + 1), ``Q = P / 2``
        ``rfftn`` of the coarse map zero-padded to Q at its corner.
    offset : int
        :func:`coarse_offset` of the fine box.
    """
    size = spectrum.shape[0]
    q = _check(spectrum.shape, coarse.shape, size)
    n_pos = _bands(q)[0]
    phase = _phase_grid(q, size, offset, spectrum.device, spectrum.dtype)
    for fz, cz in _blocks(q, size):
        for fy, cy in _blocks(q, size):
            block = coarse[cz, cy, :n_pos]
            if phase is None:
                spectrum[fz, fy, :n_pos].add_(block, alpha=8.0)
            else:
                spectrum[fz, fy, :n_pos].addcmul_(block, phase[_order(q, cz), _order(q, cy)])


def embed_coarse_spectrum(coarse: torch.Tensor, size: int, offset: int) -> torch.Tensor:
    """:func:`add_coarse_spectrum` into a new zero spectrum ``(P, P, P//2 + 1)``, ``P = size``,
    out of place and differentiable by autograd (the twin its in-place add and hand-written
    adjoint are tested against)."""
    q = _check((size, size, size // 2 + 1), coarse.shape, size)
    n_pos, n_neg = _bands(q)
    along, along_x = _phase(q, size, offset, coarse.device, coarse.dtype)
    kept = torch.cat([coarse[:n_pos], coarse[q - n_neg :]], dim=0)
    kept = torch.cat([kept[:, :n_pos], kept[:, q - n_neg :]], dim=1)[:, :, :n_pos]
    kept = kept * along[:, None, None] * along[None, :, None] * along_x
    gap = size - n_pos - n_neg
    kept = torch.cat([kept[:n_pos], kept.new_zeros((gap, *kept.shape[1:])), kept[n_pos:]], 0)
    kept = torch.cat([kept[:, :n_pos], kept.new_zeros((size, gap, n_pos)), kept[:, n_pos:]], dim=1)
    return torch.cat([kept, kept.new_zeros((size, size, size // 2 + 1 - n_pos))], dim=2)


def coarse_spectrum_adjoint(grad: torch.Tensor, offset: int) -> torch.Tensor:
    """The adjoint of :func:`add_coarse_spectrum` in its ``coarse`` argument: from a gradient
    ``(P, P, P//2 + 1)`` on the fine spectrum, the gradient ``(Q, Q, Q//2 + 1)`` on the coarse one
    (zero on the coarse Nyquist planes), in the convention of
    :func:`~cryosplat.core.padded_transform.corner_rfft_adjoint` (``dL = Re Σ conj(g) dF``)."""
    size = grad.shape[0]
    q = size // 2
    _check(grad.shape, (q, q, q // 2 + 1), size)
    n_pos = _bands(q)[0]
    phase = _phase_grid(q, size, offset, grad.device, grad.dtype)
    out = grad.new_zeros((q, q, q // 2 + 1))
    for fz, cz in _blocks(q, size):
        for fy, cy in _blocks(q, size):
            block = grad[fz, fy, :n_pos]
            if phase is None:
                torch.mul(block, 8.0, out=out[cz, cy, :n_pos])
            else:
                factor = phase[_order(q, cz), _order(q, cy)].conj()
                torch.mul(block, factor, out=out[cz, cy, :n_pos])
    return out
