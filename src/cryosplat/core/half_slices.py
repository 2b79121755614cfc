"""Trilinear reads of central slices from a padded half transform, with an analytic backward.

The one trilinear slice sampler of the package: :func:`cryosplat.core.fourier_slice.extract_slices`
(half layout) and the ``fourier`` rendering backend (:mod:`cryosplat.render.fourier`) both read
slices through :class:`HalfSlices`. The grid is the *uncentred* half spectrum ``(P, P, P//2 + 1)``
of :func:`cryosplat.core.padded_transform.padded_rfft` (``K = 0`` at index 0, negative ``Ky``, ``Kz``
at the end); each view's ``kx ≥ 0`` frequencies with ``|k| ≤ max_radius`` (:class:`HalfPlane`) are
read at ``K = pad · (kx A[0] + ky A[1])``, from ``−K`` conjugated where ``Kx < 0``. The backward pass
recomputes the stencil chunk by chunk (memory bounded whatever the batch) and gives the gradient
with respect to the grid and, when asked, the rotation matrices.
"""

from __future__ import annotations

import torch

__all__ = [
    "HalfPlane",
    "HalfSlices",
    "HalfGridReader",
    "padded_box",
    "default_max_radius",
    "gathered_radius",
]


def padded_box(box: int, pad: int) -> int:
    """``P = pad · box`` after checking both are valid (even ``box``, integer ``pad ≥ 1``)."""
    if box < 2 or box % 2:
        raise ValueError(f"box must be even and at least 2, got {box}")
    if int(pad) != pad or pad < 1:
        raise ValueError(f"pad must be an integer >= 1, got {pad}")
    return int(pad) * int(box)


# How far inside ``pad·r = P/2 − 1`` the gathered radius stays, in steps of the padded grid: no
# frequency lands on that bound exactly (at pad 1 the integer radius D/2 − 1 along a grid axis
# would, and its upper neighbour would lie past the grid) or past it by rounding.
RADIUS_MARGIN_STEPS = 1e-3


def default_max_radius(box: int, pad: int) -> float:
    """``D/2 − 1/pad`` (less :data:`RADIUS_MARGIN_STEPS` of a grid step): the largest image
    radius (pixels) whose 8 grid neighbours all exist.

    A point of radius ``r`` lies within ``pad·r < P/2 − 1`` of the padded grid's centre, so its
    upper neighbour is at most ``P − 1`` (``P/2`` on the half grid's ``Kx`` axis). Until round
    2, session 69 the bound was ``D/2 − 2/pad``, one grid step short: at pad 2 the shell under
    Nyquist was gathered to its middle only, and on maps that hold signal to Nyquist (TRPV1 at its
    own box of 48) the map's FSC with the truth fell under cryoDRGN's there.
    """
    return box / 2 - (1.0 + RADIUS_MARGIN_STEPS) / pad


def gathered_radius(box: int, pad: int, max_radius: float | None = None) -> float:
    """``max_radius`` (pixels), or :func:`default_max_radius` without one; a radius past that
    bound is refused (its trilinear neighbours would lie off the grid)."""
    limit = default_max_radius(box, pad)
    if max_radius is None:
        return limit
    if max_radius > limit + 1e-9:
        raise ValueError(f"max_radius {max_radius} exceeds D/2 - 1/pad = {limit}")
    return float(max_radius)


# Corner order of the trilinear stencil: (dx, dy, dz) for dz, dy, dx in {0, 1}.
_CORNERS = [(dx, dy, dz) for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)]


class HalfPlane:
    """The ``kx ≥ 0`` image frequencies read from the grid, and where they go in an rfft image.

    ``kx, ky`` (M,) in pixels of the D grid; ``slots`` (M,) flat indices into a centred-``y``
    ``(D, D//2 + 1)`` half spectrum.
    """

    def __init__(self, box: int, pad: int, device, dtype, max_radius: float | None = None) -> None:
        limit = gathered_radius(box, pad, max_radius)
        ky = torch.arange(box, device=device, dtype=dtype) - box // 2
        kx = torch.arange(box // 2 + 1, device=device, dtype=dtype)
        gy, gx = torch.meshgrid(ky, kx, indexing="ij")
        keep = ((gx**2 + gy**2) <= limit * limit).reshape(-1)
        self.slots = keep.nonzero().squeeze(1)
        self.kx = gx.reshape(-1)[self.slots]
        self.ky = gy.reshape(-1)[self.slots]
        self.box, self.pad = box, pad
        self.size = padded_box(box, pad)

    @classmethod
    def at(cls, box: int, pad: int, kx: torch.Tensor, ky: torch.Tensor) -> HalfPlane:
        """The plane of the given frequencies only: integers ``0 ≤ kx < D/2`` and ``ky`` (M,),
        pixels of the D grid, each within :func:`default_max_radius`; their ``slots`` as the
        constructor's."""
        kx, ky = torch.as_tensor(kx), torch.as_tensor(ky)
        if kx.shape != ky.shape or kx.ndim != 1:
            raise ValueError(
                f"kx and ky must be (M,) alike, got {tuple(kx.shape)}, {tuple(ky.shape)}"
            )
        limit = default_max_radius(box, pad)
        if kx.numel() and (
            bool((kx < 0).any())
            or bool((kx >= box // 2).any())
            or float((kx.double() ** 2 + ky.double() ** 2).max()) > limit * limit + 1e-9
        ):
            raise ValueError(f"frequencies outside 0 <= kx < {box // 2} and radius {limit:.3f}")
        plane = cls.__new__(cls)
        plane.kx, plane.ky = kx, ky
        plane.slots = ((ky.round().long() + box // 2) * (box // 2 + 1) + kx.round().long()).to(
            kx.device
        )
        plane.box, plane.pad = box, pad
        plane.size = padded_box(box, pad)
        return plane

    def stencil(self, rotations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Neighbours of the slice points of a chunk of views in the extended grid of :func:`_extend`.

        Returns
        -------
        index : (b·M, 8) int64 flat indices into the ``(P+1, P+1, P//2+1)`` extended grid
        frac : (b·M, 3) fractional offsets along (Kx, Ky, Kz) of the point actually read
        sign : (b·M,) ``-1`` where the point had ``Kx < 0`` and ``−K`` (conjugated) is read instead
        """
        rows, half_x = self.size + 1, self.size // 2 + 1
        coords = (
            self.kx[None, :, None] * rotations[:, None, 0]
            + self.ky[None, :, None] * rotations[:, None, 1]
        ) * self.pad
        coords = coords.reshape(-1, 3)
        sign = torch.where(coords[:, 0] < 0, -1.0, 1.0).to(coords.dtype)
        coords = coords * sign[:, None]
        base = torch.floor(coords)
        frac = coords - base
        # Unshifted layout: negative Ky, Kz live at the end (index + P); Kx >= 0 here.
        wrapped = base + torch.where(base < 0, float(self.size), 0.0)
        wrapped[:, 0] = base[:, 0]
        b = wrapped.long()
        flat = (b[:, 2] * rows + b[:, 1]) * half_x + b[:, 0]
        return flat[:, None] + self._offsets(flat.device), frac, sign

    def _offsets(self, device) -> torch.Tensor:
        rows, half_x = self.size + 1, self.size // 2 + 1
        return torch.tensor(
            [(dz * rows + dy) * half_x + dx for dx, dy, dz in _CORNERS], device=device
        )


def _extend(grid: torch.Tensor) -> torch.Tensor:
    """``(P+1, P+1, W)`` copy of a ``(P, P, W)`` grid whose last z and y planes repeat index 0.

    Index ``P`` is frequency ``0 ≡ P`` again, so a trilinear stencil at ``−1 ≡ P−1`` reads its upper
    neighbours without a modulo.
    """
    size, width = grid.shape[0], grid.shape[2]
    out = grid.new_empty((size + 1, size + 1, width))  # one copy made (two cats made two)
    out[:size, :size] = grid
    out[size, :size] = grid[0]
    out[:, size] = out[:, 0]
    return out


def _fold(extended: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`_extend`: add the repeated planes back onto index 0."""
    size = extended.shape[0] - 1
    folded = extended[:size, :size].clone()
    folded[:, 0] += extended[:size, size]
    folded[0] += extended[size, :size]
    folded[0, 0] += extended[size, size]
    return folded


def _trilinear_weights(frac: torch.Tensor) -> torch.Tensor:
    """(M, 8) weights of the corners in :data:`_CORNERS` order (x fastest, then y, then z)."""
    fx, fy, fz = frac.unbind(1)
    gx, gy, gz = 1.0 - fx, 1.0 - fy, 1.0 - fz
    yz = (gy * gz, fy * gz, gy * fz, fy * fz)
    return torch.stack([w for pair in yz for w in (gx * pair, fx * pair)], dim=1)


def _trilinear_weight_gradients(frac: torch.Tensor) -> torch.Tensor:
    """(M, 8, 3) derivatives of the corner weights with respect to (fx, fy, fz)."""
    fx, fy, fz = frac.unbind(1)
    w = ((1.0 - fx, fx), (1.0 - fy, fy), (1.0 - fz, fz))
    d = (-1.0, 1.0)
    rows = []
    for dx, dy, dz in _CORNERS:
        rows.append(
            torch.stack(
                [
                    d[dx] * w[1][dy] * w[2][dz],
                    w[0][dx] * d[dy] * w[2][dz],
                    w[0][dx] * w[1][dy] * d[dz],
                ],
                dim=1,
            )
        )
    return torch.stack(rows, dim=1)


def _read(
    flat: torch.Tensor, rotations: torch.Tensor, plane: HalfPlane, views_per_chunk: int
) -> torch.Tensor:
    """The forward reads of :class:`HalfSlices` from the flattened extended grid, (B, M)."""
    n_views, m = rotations.shape[0], plane.kx.shape[0]
    out = torch.empty((n_views, m), device=flat.device, dtype=flat.dtype)
    for v0 in range(0, n_views, views_per_chunk):
        rot = rotations[v0 : v0 + views_per_chunk]
        index, frac, sign = plane.stencil(rot)
        corners = flat.index_select(0, index.reshape(-1)).view(-1, 8)
        values = (corners * _trilinear_weights(frac)).sum(dim=1)
        values = torch.where(sign < 0, values.conj(), values)
        out[v0 : v0 + rot.shape[0]] = values.reshape(rot.shape[0], m)
    return out


class HalfGridReader:
    """:class:`HalfSlices`' forward reads, without gradients, of many batches of views from one
    fixed grid, by torch's trilinear ``grid_sample``: the same stencil and weights as the
    gather of :func:`_read` (its pure twin, which :class:`HalfSlices` reads with; the tests
    compare the two), about 2.8× faster on two CPU cores (round 2, session 79: box 56, pad 2,
    7,872 views of 649 points each, 0.51 → 0.19 s in single precision).

    The grid is copied once, centred along ``Ky`` and ``Kz`` (index ``K + P/2``: every point of
    radius ``pad·r < P/2 − 1`` lies inside it, no wrap needed), its real and imaginary parts as
    two channels.

    Parameters
    ----------
    grid : torch.Tensor, complex, (P, P, P//2 + 1)
        The uncentred half spectrum, as :class:`HalfSlices` reads it.
    """

    def __init__(self, grid: torch.Tensor) -> None:
        centred = torch.fft.fftshift(grid.detach(), dim=(0, 1))
        # (1, 2, P, P, P//2 + 1): channels real, imaginary; grid_sample's (D, H, W) = (Kz, Ky, Kx)
        self._channels = torch.view_as_real(centred).permute(3, 0, 1, 2).unsqueeze(0).contiguous()
        self._size = grid.shape[0]

    def read(self, rotations: torch.Tensor, plane: HalfPlane, views_per_chunk: int) -> torch.Tensor:
        """``HalfSlices.apply(grid, rotations, plane, views_per_chunk)``'s values, (B, M), to
        rounding."""
        channels, size = self._channels, self._size
        n_views, m = rotations.shape[0], plane.kx.shape[0]
        dtype = torch.complex128 if channels.dtype == torch.float64 else torch.complex64
        out = torch.empty((n_views, m), device=channels.device, dtype=dtype)
        if n_views == 0 or m == 0:
            return out
        # align_corners: index i of a side of n samples is at 2 i / (n − 1) − 1; the pad and
        # those scales are folded into the rotations' rows, the centring into an offset
        scale = torch.tensor(
            [2.0 / (size // 2), 2.0 / (size - 1), 2.0 / (size - 1)],
            dtype=channels.dtype,
            device=channels.device,
        ) * float(plane.pad)
        offset = torch.tensor(
            [-1.0, size // 2 * 2.0 / (size - 1) - 1.0, size // 2 * 2.0 / (size - 1) - 1.0],
            dtype=channels.dtype,
            device=channels.device,
        )
        kx = plane.kx.to(channels.dtype)[None, :, None]
        ky = plane.ky.to(channels.dtype)[None, :, None]
        for v0 in range(0, n_views, views_per_chunk):
            rows = rotations[v0 : v0 + views_per_chunk, :2].to(channels.dtype) * scale
            b = rows.shape[0]
            # (b, M, 3), scaled K; element by element (not a matrix product), so that a
            # frequency's value does not depend on which others are read with it
            coords = torch.addcmul(kx * rows[:, None, 0], ky, rows[:, None, 1])
            sign = torch.where(coords[..., :1] < 0, -1.0, 1.0).to(coords.dtype)
            points = torch.addcmul(offset, coords, sign)  # read -K (conjugated) where Kx < 0
            # one batch entry per view (the grid expanded, not copied): the CPU kernel runs
            # its threads over the batch
            sampled = torch.nn.functional.grid_sample(
                channels.expand(b, -1, -1, -1, -1),
                points.reshape(b, 1, 1, m, 3),
                mode="bilinear",
                padding_mode="zeros",
                align_corners=True,
            ).reshape(b, 2, m)
            out[v0 : v0 + b] = torch.complex(sampled[:, 0], sampled[:, 1] * sign[..., 0])
        return out


class HalfSlices(torch.autograd.Function):
    """Trilinear reads of the half-plane slices of B views from a half grid; analytic backward.

    Forward: ``values[b, m] = Σ_c w_c · grid[index_c]`` (conjugated where the point was mirrored).
    Backward: the adjoint scatter into the grid and, when asked, the derivative with respect to the
    rotation matrices through the interpolation weights. Only the rotations are saved; the stencil
    is recomputed chunk by chunk.
    """

    @staticmethod
    def forward(ctx, grid, rotations, plane, views_per_chunk):
        out = _read(_extend(grid).reshape(-1), rotations, plane, views_per_chunk)
        ctx.save_for_backward(grid, rotations)
        ctx.plane, ctx.views_per_chunk = plane, views_per_chunk
        return out

    @staticmethod
    def backward(ctx, grad_out):
        grid, rotations = ctx.saved_tensors
        plane, per = ctx.plane, ctx.views_per_chunk
        want_grid, want_rot = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        extended = _extend(grid)
        flat = extended.reshape(-1)
        grad_flat = torch.zeros_like(flat) if want_grid else None
        grad_rot = torch.zeros_like(rotations) if want_rot else None
        m = plane.kx.shape[0]
        for v0 in range(0, rotations.shape[0], per):
            rot = rotations[v0 : v0 + per]
            b = rot.shape[0]
            index, frac, sign = plane.stencil(rot)
            g = grad_out[v0 : v0 + b].reshape(-1)
            g = torch.where(sign < 0, g.conj(), g)  # gradient with respect to the value read
            if want_grid:
                weights = _trilinear_weights(frac)
                contributions = (g[:, None] * weights).reshape(-1)
                if grad_flat.device.type == "cpu":
                    # scatter_add_ is about twice as fast as index_add_ here on the CPU.
                    grad_flat.scatter_add_(0, index.reshape(-1), contributions)
                else:
                    grad_flat.index_add_(0, index.reshape(-1), contributions)
            if want_rot:
                # dL/dw_c = Re(conj(g) · grid[c]); dL/dK' = Σ_c dL/dw_c · dw_c/dfrac; K = sign · K'.
                corners = flat.index_select(0, index.reshape(-1)).view(-1, 8)
                dl_dw = (g.conj()[:, None] * corners).real
                dl_dk = (dl_dw[:, :, None] * _trilinear_weight_gradients(frac)).sum(dim=1)
                dl_dk = (dl_dk * sign[:, None]).reshape(b, m, 3) * plane.pad
                grad_rot[v0 : v0 + b, 0] = torch.einsum("m,bmj->bj", plane.kx, dl_dk)
                grad_rot[v0 : v0 + b, 1] = torch.einsum("m,bmj->bj", plane.ky, dl_dk)
        grad_grid = _fold(grad_flat.reshape(extended.shape)) if want_grid else None
        return grad_grid, grad_rot, None, None
