"""Insertion of image spectra into a padded grid: the adjoint of central-slice extraction.

Grids, slice points and the trilinear stencil are those of :mod:`cryosplat.core.fourier_slice`:
image frequency ``k`` is grid point ``K = pad · (kx A[0] + ky A[1])``; its value and weight are
spread onto the 8 grid neighbours of ``K`` with trilinear weights.

Speed
-----
This is the statistics pass's inner loop (about 25,000 points per image at box 256): scattered
adds into grids far larger than any cache. Three choices took the pass from 87 to about 130
particles per second per core (box 256, two halves side by side on two cores):

* the points are handled one view at a time (``_CHUNK_POINTS``), so the eight corner passes over
  a view's points find in cache the lines the previous corner loaded (chunks of 2¹⁸ points: 0.8×
  the speed);
* in buffers allocated once and reused (every operation writes into them with ``out=``): on Linux
  a fresh tensor of tens of MB is new memory from the kernel, and touching it page by page cost
  more than the arithmetic;
* ``scatter_add_`` rather than ``index_add_`` (1.2–1.7× faster on a CPU for the same sums).

On a GPU the same loop is bound by kernel launches, not by memory: each of its ~50 operations is
a launch (and a Python call), and a view at a time made ~50 launches per image at box 256: 938
particles per second on an H200 (``benchmarks/GPU_RESULTS.md``, round 2 session 10). There the
chunks hold ``_CHUNK_POINTS_GPU`` points (tens of views; ~120 MB of buffers).

Measured slower and left out: sorting the points by grid index (the sort costs what it saves), a
grid interleaving ``(Re, Im, weight)`` per voxel (the scatter's cost is per element, and a complex
value is one element), the two corners along ``x`` scattered together.
"""

from __future__ import annotations

import torch

from cryosplat.core.fourier_slice import kept_pixels
from cryosplat.core.padded_transform import centred_flip, is_half_layout, padded_box

__all__ = ["SliceAccumulator", "insert_slices"]

# Slice points handled at once: buffers of a few MB (a CPU's caches), reused.
_CHUNK_POINTS = 2**15
# On a GPU: buffers of ~120 MB, so that a launch covers tens of views.
_CHUNK_POINTS_GPU = 2**20


class SliceAccumulator:
    """Running sums ``B = Σ w_c · value`` and ``W = Σ w_c · weight`` on a padded grid.

    Parameters
    ----------
    box, pad : int
        Image box ``D`` and padding; the grid has ``P = pad · D`` voxels a side.
    half : bool
        The ``(P, P, P//2 + 1)`` half layout (``Kx ≥ 0``) of spectra of real images, or the full
        ``(P, P, P)`` layout.
    device : torch device
    dtype : torch.dtype
        Real dtype of the sums (float32: the statistics pass; float64: references in tests).
    flush_every : int
        Insertions summed into a partial grid before it is added to the total (pairwise-style
        summation: relative rounding near 1e-6 in single precision for a million images). 0: no
        partial grid (half the memory; for small sums).

    Notes
    -----
    Memory: ``3 · (P³ or P²(P/2+1))`` reals for the total, as many for the partial grid, plus
    the reused buffers of :class:`_TrilinearScatter` (a few tens of MB).
    """

    def __init__(
        self,
        box: int,
        pad: int,
        half: bool = True,
        device="cpu",
        dtype: torch.dtype = torch.float32,
        flush_every: int = 8,
    ) -> None:
        size = padded_box(box, pad)
        self.box, self.pad, self.half = box, pad, half
        self.shape = (size, size, size // 2 + 1) if half else (size, size, size)
        self.dtype, self.device = dtype, torch.device(device)
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.total = (
            torch.zeros(self.shape, dtype=complex_dtype, device=self.device),
            torch.zeros(self.shape, dtype=dtype, device=self.device),
        )
        self.partial = (
            tuple(torch.zeros_like(grid) for grid in self.total) if flush_every else self.total
        )
        self.flush_every, self._pending = flush_every, 0
        self._kernels: dict[float | None, _TrilinearScatter] = {}

    def insert(
        self,
        values: torch.Tensor,
        rotations: torch.Tensor,
        weights: torch.Tensor | None = None,
        max_radius: float | None = None,
    ) -> None:
        """Add a batch of image spectra (and their weights) at their slice points.

        Parameters
        ----------
        values : torch.Tensor, complex, (B, D, D) centred spectra
            For the half layout, the ``rfft`` layout (B, D, D//2 + 1) (``x`` index = ``kx ≥ 0``,
            ``y`` centred) is accepted too, with or without its last (Nyquist) column.
        rotations : torch.Tensor, (B, 3, 3), map→image matrices ``A``
        weights : torch.Tensor, real, same layout as ``values``, optional
            Per-pixel weights (e.g. CTF²).
        max_radius : float, optional
            Insert frequencies with ``|k| ≤ max_radius`` pixels of the D grid, at most and by
            default :func:`cryosplat.core.fourier_slice.default_max_radius`.
        """
        box, n = self.box, values.shape[0]
        width = values.shape[-1]
        if self.half and width in (box // 2, box // 2 + 1):
            columns = slice(0, box // 2)
        elif width == box:
            columns = slice(box // 2, box) if self.half else slice(0, box)
        else:
            raise ValueError(f"values of shape {tuple(values.shape)} do not fit box {box}")
        rot = torch.as_tensor(rotations, device=self.device, dtype=self.dtype) * self.pad
        if rot.shape != (n, 3, 3):
            raise ValueError(f"rotations of shape {tuple(rot.shape)} for {n} images")
        kernel = self._kernel(max_radius)

        def gather(t: torch.Tensor) -> torch.Tensor:
            return t.to(self.device)[:, :, columns].reshape(n, -1).index_select(1, kernel.pixels)

        complex_dtype = torch.complex128 if self.dtype == torch.float64 else torch.complex64
        pairs = torch.view_as_real(gather(values).to(complex_dtype))
        wts = None if weights is None else gather(weights).to(self.dtype)
        if not self.partial:
            raise RuntimeError("insert after result(): the sums are finished")
        data, weight = (grid.view(-1) for grid in self.partial)
        for start in range(0, n, kernel.views):
            stop = min(n, start + kernel.views)
            chunk = None if wts is None else wts[start:stop]
            kernel(rot[start:stop], pairs[start:stop], chunk, data, None if wts is None else weight)
        self._pending += 1
        if self.flush_every and self._pending % self.flush_every == 0:
            self.flush()

    def flush(self) -> None:
        """Add the partial grid to the total."""
        if self.partial and self.partial is not self.total:
            for total, partial in zip(self.total, self.partial, strict=True):
                total += partial
                partial.zero_()

    def at_flush(self) -> bool:
        """Whether every insertion so far is in the totals (the partial grid is empty): the
        totals and :attr:`insertions` then say all there is of the sums."""
        return not self.flush_every or self._pending % self.flush_every == 0

    @property
    def insertions(self) -> int:
        """Insertions (calls of :meth:`insert`) so far."""
        return self._pending

    def restore(self, data: torch.Tensor, weights: torch.Tensor, insertions: int) -> None:
        """Continue sums saved at a flush (:meth:`at_flush`): their totals ``(B, W)`` and their
        count of insertions, so that what follows is summed exactly as it would have been."""
        if self.flush_every and insertions % self.flush_every:
            raise ValueError(f"{insertions} insertions is not at a flush of {self.flush_every}")
        for total, saved in zip(self.total, (data, weights), strict=True):
            total.copy_(saved)
        self._pending = insertions

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The sums ``(B, W)``: complex and real grids of the layout's shape.

        The accumulator's own grids, finished: insert nothing after this.

        On the half layout the ``Kx = 0`` plane also gets the share of the Friedel mates of
        points inserted next to it (at ``(−Kz, −Ky)``, conjugated): the result equals the
        full-grid insertion restricted to ``Kx ≥ 0``.
        """
        self.flush()
        self.partial = ()  # its memory is released before the caller builds anything more
        data, weights = self.total
        if self.half:
            data[:, :, 0] += centred_flip(data[:, :, 0], (0, 1)).conj()
            weights[:, :, 0] += centred_flip(weights[:, :, 0], (0, 1))
        return data, weights

    def _kernel(self, max_radius: float | None) -> _TrilinearScatter:
        if max_radius not in self._kernels:
            like = torch.empty(0, dtype=self.dtype, device=self.device)
            pix, kx, ky, _ = kept_pixels(self.box, self.pad, max_radius, self.half, like)
            self._kernels[max_radius] = _TrilinearScatter(pix, kx, ky, self.shape, self.half)
        return self._kernels[max_radius]


def insert_slices(
    values: torch.Tensor,
    rotations: torch.Tensor,
    box: int,
    pad: int,
    data_grid: torch.Tensor,
    weights: torch.Tensor | None = None,
    weight_grid: torch.Tensor | None = None,
    max_radius: float | None = None,
) -> None:
    """Accumulate image spectra onto separate data and weight grids in place.

    One :meth:`SliceAccumulator.insert` whose sums are added to the grids. On a full grid
    ``(P, P, P)`` every pixel is inserted: exactly the adjoint of
    :func:`cryosplat.core.fourier_slice.extract_slices`. On a half grid ``(P, P, P//2 + 1)`` the
    values must be spectra of real images (Hermitian, as are the weights): only pixels with
    ``kx ≥ 0`` are read (``kx = 0`` with weight ½), points with ``Kx < 0`` go to ``−K``
    conjugated, and the result equals the full-grid insertion restricted to ``Kx ≥ 0``.

    Parameters
    ----------
    values, rotations, weights, max_radius
        As :meth:`SliceAccumulator.insert`.
    box, pad : int
    data_grid : torch.Tensor, complex, (P, P, P) or (P, P, P//2 + 1); updated in place
    weight_grid : torch.Tensor, real, same shape as ``data_grid``, optional; updated in place
    """
    size = padded_box(box, pad)
    half = is_half_layout(data_grid)
    if data_grid.shape[0] != size:
        raise ValueError(f"grid of size {data_grid.shape[0]} does not match box {box} × pad {pad}")
    if (weights is None) != (weight_grid is None):
        raise ValueError("give both weights and weight_grid, or neither")
    dtype = torch.float64 if data_grid.dtype == torch.complex128 else torch.float32
    sums = SliceAccumulator(box, pad, half, data_grid.device, dtype, flush_every=0)
    sums.insert(values, rotations, weights, max_radius)
    data, weight = sums.result()
    data_grid += data
    if weight_grid is not None:
        weight_grid += weight


class _TrilinearScatter:
    """Trilinear spreading of the slice points of up to ``views`` views, in reused buffers.

    ``pixels, kx, ky`` (M,): the inserted image frequencies (flat indices into a block of the
    values' layout, and their coordinates); their share is ½ on the ``kx = 0`` column of a half
    layout. A call spreads ``b ≤ views`` views with scaled rotations ``pad · A`` (b, 3, 3), values
    (b, M, 2) (real, imaginary) and weights (b, M) into flat data and weight grids.
    """

    def __init__(self, pixels, kx, ky, shape: tuple[int, int, int], half: bool) -> None:
        self.pixels, self.kx, self.ky = pixels, kx, ky
        self.share = torch.where(kx == 0, 0.5, 1.0).to(kx.dtype) if half else torch.ones_like(kx)
        self.half = half
        m, dtype, device = kx.numel(), kx.dtype, kx.device
        chunk = _CHUNK_POINTS if device.type == "cpu" else _CHUNK_POINTS_GPU
        self.views = views = max(1, chunk // max(1, m))
        size = shape[0]
        self.origin = (0.0 if half else float(size // 2), float(size // 2), float(size // 2))
        self.strides = (1.0, float(shape[2]), float(shape[1] * shape[2]))  # of x, y, z

        def empty(*dims: int, kind: torch.dtype = dtype) -> torch.Tensor:
            return torch.empty(views, m, *dims, dtype=kind, device=device)

        self.coords, self.base, self.lower = empty(3), empty(3), empty(3)
        self.flat = empty(kind=torch.float64)
        self.index, self.corner = empty(kind=torch.int64), empty(kind=torch.int64)
        self.values, self.product = empty(2), empty(2)
        self.wts, self.weighted = empty(), empty()
        self.weight, self.wxy, self.sign = empty(), empty(4), empty()
        self.negative = empty(kind=torch.bool)
        self.offsets = [
            (int(dx * self.strides[0] + dy * self.strides[1] + dz * self.strides[2]), dx, dy, dz)
            for dz in (0, 1)
            for dy in (0, 1)
            for dx in (0, 1)
        ]

    def __call__(self, rot, pairs, wts, data: torch.Tensor, weights: torch.Tensor | None) -> None:
        b = rot.shape[0]
        coords, base = self.coords[:b], self.base[:b]
        for axis in range(3):
            out = coords[..., axis]
            torch.mul(self.kx[None, :], rot[:, 0, axis, None], out=out)
            out.addcmul_(self.ky[None, :], rot[:, 1, axis, None])
        values = torch.mul(pairs, self.share[None, :, None], out=self.values[:b])
        if weights is not None:
            wts = torch.mul(wts, self.share[None, :], out=self.wts[:b])
        if self.half:
            # Points with Kx < 0 go to -K with the conjugate value.
            sign = self.sign[:b]
            torch.lt(coords[..., 0], 0, out=self.negative[:b])
            torch.mul(self.negative[:b], -2.0, out=sign).add_(1.0)
            coords.mul_(sign[..., None])
            values[..., 1].mul_(sign)
        for axis, origin in enumerate(self.origin):
            if origin:
                coords[..., axis].add_(origin)
        torch.floor(coords, out=base)
        frac = coords.sub_(base)  # coords now hold the fractions
        # Flat index of the base corner, exact in float64 (< 2**53), then as an integer.
        flat = self.flat[:b]
        torch.mul(base[..., 2], self.strides[2], out=flat)
        flat.add_(base[..., 1], alpha=self.strides[1]).add_(base[..., 0])
        index = self.index[:b]
        index.copy_(flat)
        lower = torch.sub(1.0, frac, out=self.lower[:b])
        wxy = self.wxy[:b]
        for dy in (0, 1):
            wy = (lower if dy == 0 else frac)[..., 1]
            for dx in (0, 1):
                wx = (lower if dx == 0 else frac)[..., 0]
                torch.mul(wx, wy, out=wxy[..., 2 * dy + dx])
        weight, product, corner = self.weight[:b], self.product[:b], self.corner[:b]
        weighted = self.weighted[:b]
        for offset, dx, dy, dz in self.offsets:
            torch.mul(wxy[..., 2 * dy + dx], (lower if dz == 0 else frac)[..., 2], out=weight)
            torch.add(index, offset, out=corner)
            rows = corner.view(-1)
            torch.mul(values, weight[..., None], out=product)
            data.scatter_add_(0, rows, torch.view_as_complex(product).view(-1))
            if weights is not None:
                torch.mul(wts, weight, out=weighted)
                weights.scatter_add_(0, rows, weighted.view(-1))
