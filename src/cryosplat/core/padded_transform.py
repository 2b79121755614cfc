"""A map's Fourier transform on a zero-padded grid, and back: the layouts and the transforms.

Central slices are read from these grids by :mod:`cryosplat.core.fourier_slice` and written into
them by :mod:`cryosplat.core.slice_insertion`.

Grids
-----
A D³ map is zero-padded to ``P = pad · D`` voxels (the map in the middle, its origin at ``P // 2``)
and transformed with a centred FFT. Two layouts of that transform are used, both indexed
``[z, y, x]`` with frequencies in units of ``1 / (P · pixel)``:

* *full*: shape ``(P, P, P)``, zero frequency at ``[P//2, P//2, P//2]``;
* *half*: shape ``(P, P, P//2 + 1)``, the non-negative ``x`` frequencies only (index = ``Kx``),
  ``z`` and ``y`` centred. Friedel symmetry ``V̂(−K) = conj V̂(K)`` of a real map gives the rest.

Scale
-----
:func:`volume_to_padded_ft` multiplies the DFT by the voxel size, so that a map in density per Å³
gives slices equal to the centred DFTs (:func:`cryosplat.core.fourier.fft2_centered`) of its projection
images in density per Å² (``projection = map.sum(z) · pixel``).

Trilinear interpolation on the padded grid equals multiplying the map in real space by
``sinc²(x/P) sinc²(y/P) sinc²(z/P)`` (:func:`trilinear_apodization`, ``x`` in voxels from the
centre); ``gridding_correction=True`` divides it out, as RELION's projector and reconstructor do.
"""

from __future__ import annotations

import torch

from cryosplat.core.fourier import fftn_centered
from cryosplat.core.half_slices import padded_box

__all__ = [
    "padded_box",
    "trilinear_apodization",
    "padded_rfft",
    "padded_rfft_values",
    "padded_rfft_adjoint",
    "corner_rfft_adjoint",
    "wrapped_to_corner_phase",
    "volume_to_padded_ft",
    "padded_ft_to_volume",
    "cropped_irfftn",
    "centred_cropped_irfftn",
    "centred_flip",
    "full_to_half",
    "half_to_full",
    "is_half_layout",
]

# Elements of a slab of ``x`` columns in :func:`cropped_irfftn` (its temporaries are a few such
# slabs, complex). 2**24 (128 MB complex64) made restating a stage's statistics on its unpadded
# grid (``FourierStatistics.unpadded``) peak +0.27 GB a half at box 150, the fit's largest
# transient at box 200 (round 2, session 35). Padded grids up to P = 128 (every padded stage of
# the default fit) are still one slab.
SLAB_ELEMENTS = 2**22


def trilinear_apodization(
    box: int, pad: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Real-space factor of trilinear interpolation on the padded grid, on the D³ map grid.

    Parameters
    ----------
    box : int
        Map box D.
    pad : int
        Padding factor; the padded box is ``P = pad · D``.

    Returns
    -------
    torch.Tensor, shape (D, D, D)
        ``sinc²(x/P) sinc²(y/P) sinc²(z/P)`` with ``x = i - D//2`` voxels and ``sinc(t) =
        sin(πt)/(πt)``; 1 at the centre, ``≈ 0.81`` per axis at the box edge for ``pad = 2``.
    """
    size = padded_box(box, pad)
    x = (torch.arange(box, device=device, dtype=torch.float64) - box // 2) / size
    s = torch.sinc(x) ** 2
    out = s[:, None, None] * s[None, :, None] * s[None, None, :]
    return out.to(dtype)


def _wrapped_indices(box: int, size: int, device) -> torch.Tensor:
    """Index ``(i − D//2) mod P`` of map voxel ``i`` (origin ``D//2``) in an uncentred P-grid."""
    return (torch.arange(box, device=device) - box // 2) % size


def padded_rfft_values(volume: torch.Tensor, size: int) -> torch.Tensor:
    """Unshifted half spectrum ``(P, P, P//2+1)`` of a D³ map zero-padded to P³, origin at index 0.

    The map's voxel ``i`` (origin ``D//2``) goes to padded index ``(i − D//2) mod P``, so no shift of
    the P³ arrays is needed. Not differentiable: :func:`padded_rfft` is, and
    :func:`padded_rfft_adjoint` is its backward for custom autograd functions.
    """
    wrap = _wrapped_indices(volume.shape[0], size, volume.device)
    padded = volume.new_zeros((size, size, size))
    padded[wrap[:, None, None], wrap[None, :, None], wrap[None, None, :]] = volume
    return torch.fft.rfftn(padded)


def padded_rfft_adjoint(
    grad: torch.Tensor, box: int, size: int, scale: float = 1.0
) -> torch.Tensor:
    """The adjoint of :func:`padded_rfft_values`: ``∂L/∂map`` (D, D, D) from ``∂L/∂spectrum``
    (times ``scale``, folded into the one pass over the grid).

    ``∂L/∂x = Re Σ_{k in half} g_k e^{+2πi k·n/P}``: one inverse real FFT once the columns that
    stand for two frequencies (``0 < kx < P/2``) are halved (PyTorch's own backward of ``rfftn``
    takes a full complex transform), evaluated at the map's voxels only
    (:func:`cropped_irfftn`).
    """
    return _half_spectrum_adjoint(grad, size, _wrapped_indices(box, size, grad.device), scale)


def _half_spectrum_adjoint(grad, size: int, keep: torch.Tensor | slice, scale: float):
    """``scale · Re Σ_{k in half} g_k e^{+2πi k·n/P}`` at the voxels ``n`` of ``keep`` (n,) (or
    a slice) along each axis: one pass over the grid (the scale, and ½ on the columns that stand
    for two frequencies, ``0 < kx < P/2``, as one factor per column), then one cropped inverse
    real FFT."""
    real = torch.float64 if grad.dtype in (torch.float64, torch.complex128) else torch.float32
    factor = torch.full((grad.shape[-1],), float(scale * size**3), dtype=real, device=grad.device)
    factor[1 : (size + 1) // 2] *= 0.5
    g = grad * factor
    if size == _count(keep, size):  # unpadded: every row is the map's
        full = torch.fft.irfftn(g, s=(size, size, size))
        return _rows(_rows(_rows(full, 0, keep), 1, keep), 2, keep)
    # Only the map's D of P rows are read back along each axis: transform along z, keep D rows,
    # along y, keep D, then the real transform along x (about half the work of the full inverse).
    return cropped_irfftn(g, size, keep)


def corner_rfft_adjoint(
    grad: torch.Tensor, box: int, size: int, scale: float = 1.0
) -> torch.Tensor:
    """The adjoint of ``torch.fft.rfftn(volume, s=(P,) * 3)`` (a D³ map zero-padded after its
    last voxel, voxel ``i`` at padded index ``i``): ``∂L/∂map`` (D, D, D) from ``∂L/∂spectrum``,
    times ``scale``.

    The corner placement skips the scatter of :func:`padded_rfft_values` into a zeroed P³ grid
    and lets the FFT pad; its spectrum is the wrapped one times
    :func:`wrapped_to_corner_phase`.
    """
    return _half_spectrum_adjoint(grad, size, slice(0, box), scale)


def wrapped_to_corner_phase(
    box: int,
    size: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.complex64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-axis factors ``e^{−2πi k c / P}`` (``c = D//2``) that take the uncentred half spectrum
    of a map placed as :func:`padded_rfft_values` places it (origin at index 0) to that of the
    same map placed at the corner (voxel ``i`` at index ``i``), and back by conjugation.

    Returns ``(along z and y (P,), along x (P//2 + 1,))``: the factor at ``(kz, ky, kx)`` is the
    product ``f[kz] · f[ky] · fx[kx]`` (applied axis by axis, no P³ temporary).
    """
    k = torch.fft.fftfreq(size, d=1.0 / size, dtype=torch.float64, device=device)
    full = torch.exp(-2j * torch.pi * k * (box // 2) / size).to(dtype)
    return full, full[: size // 2 + 1].clone()  # kx = P/2 (even P): e^{∓iπc} either way


class _PaddedRealFFT(torch.autograd.Function):
    """:func:`padded_rfft_values` times ``scale``, with :func:`padded_rfft_adjoint` as backward."""

    @staticmethod
    def forward(ctx, volume, size, scale):
        ctx.box, ctx.size, ctx.scale = volume.shape[0], size, scale
        return padded_rfft_values(volume, size) * scale

    @staticmethod
    def backward(ctx, grad):
        return padded_rfft_adjoint(grad, ctx.box, ctx.size) * ctx.scale, None, None


def padded_rfft(volume: torch.Tensor, size: int, scale: float = 1.0) -> torch.Tensor:
    """Uncentred half spectrum ``(P, P, P//2+1)`` of a map zero-padded to ``P = size``, times ``scale``.

    The map's origin (voxel ``D//2``) goes to padded index 0; differentiable, with a backward pass
    of one inverse real FFT.
    """
    return _PaddedRealFFT.apply(volume, size, scale)


def volume_to_padded_ft(
    volume: torch.Tensor,
    pad: int = 2,
    pixel_size_angstrom: float = 1.0,
    gridding_correction: bool = False,
    half: bool = False,
) -> torch.Tensor:
    """Zero-pad a map to ``P = pad · D`` and take its centred FFT, times the voxel size.

    Parameters
    ----------
    volume : torch.Tensor, shape (D, D, D), real, ``[z, y, x]``
        Density per Å³ (any unit works; the output scales with it).
    pad : int
    pixel_size_angstrom : float
        Voxel size; the DFT is multiplied by it so slices are projection-image spectra (see the
        module docstring).
    gridding_correction : bool
        Divide the map by :func:`trilinear_apodization` first, so that trilinearly extracted
        slices approximate the exact projections (do this for simulation/prediction).
    half : bool
        Return the half layout ``(P, P, P//2 + 1)`` (real FFT; cheaper) instead of the full one.

    Returns
    -------
    torch.Tensor, complex, shape (P, P, P) or (P, P, P//2 + 1). Differentiable.
    """
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise ValueError(f"volume must be a cube (D, D, D), got {tuple(volume.shape)}")
    box = volume.shape[-1]
    if gridding_correction:
        volume = volume / trilinear_apodization(box, pad, volume.device, volume.dtype)
    size = padded_box(box, pad)
    if half:
        return torch.fft.fftshift(padded_rfft(volume, size, pixel_size_angstrom), dim=(0, 1))
    lo = size // 2 - box // 2
    padded = torch.nn.functional.pad(volume, (lo, size - box - lo) * 3)
    return fftn_centered(padded) * pixel_size_angstrom


def is_half_layout(volume_ft: torch.Tensor) -> bool:
    """True for a ``(P, P, P//2 + 1)`` half grid, False for a ``(P, P, P)`` full grid."""
    shape = tuple(volume_ft.shape)
    if len(shape) != 3 or shape[1] != shape[0] or shape[2] not in (shape[0], shape[0] // 2 + 1):
        raise ValueError(f"expected a (P, P, P) or (P, P, P//2+1) grid, got {shape}")
    return shape[2] != shape[0]


def centred_flip(grid: torch.Tensor, dims: tuple[int, int]) -> torch.Tensor:
    """``K → −K`` along two centred axes (index ``i → P − i mod P``)."""
    return torch.roll(torch.flip(grid, dims=dims), shifts=(1, 1), dims=dims)


def half_to_full(half: torch.Tensor) -> torch.Tensor:
    """Expand a half grid ``(P, P, P//2+1)`` to the full centred grid ``(P, P, P)`` by Friedel."""
    size = half.shape[0]
    mirrored = centred_flip(half, (0, 1)).conj()
    # Full x index j <-> Kx = j - P//2; Kx >= 0 from the half grid, Kx < 0 from the mirror.
    negative = torch.flip(mirrored[:, :, 1 : size // 2 + 1], dims=(2,))
    return torch.cat([negative, half[:, :, : size // 2]], dim=2)


def full_to_half(full: torch.Tensor) -> torch.Tensor:
    """The ``Kx ≥ 0`` part ``(P, P, P//2+1)`` of a full centred grid (Nyquist from ``Kx = -P/2``)."""
    size = full.shape[0]
    return torch.cat([full[:, :, size // 2 :], full[:, :, :1]], dim=2)


def cropped_irfftn(half: torch.Tensor, size: int, keep: torch.Tensor | slice) -> torch.Tensor:
    """``torch.fft.irfftn(half, s=(size,) * 3)[keep][:, keep][:, :, keep]``, in bounded memory.

    The inverse transform of a ``(P, P, P//2 + 1)`` half spectrum (as stored: no shift is
    applied) read at the indices ``keep`` (n,) of each axis, or the rows of a ``slice`` (views,
    no gather: the corner placement's ``slice(0, D)``), a slab of ``x`` columns at a time
    (transform along ``z``, keep n of P rows, then along ``y``): the temporaries are slabs and
    the ``(n, n, P//2 + 1)`` partial result, never a second padded grid (gigabytes at large
    boxes). ``half`` may be real (a real spectrum, e.g. summed weights).
    """
    complex_dtype = (
        torch.complex128 if half.dtype in (torch.float64, torch.complex128) else (torch.complex64)
    )
    n, width = _count(keep, size), half.shape[2]
    partial = torch.empty((n, n, width), dtype=complex_dtype, device=half.device)
    slab = max(1, SLAB_ELEMENTS // max(1, half.shape[0] * half.shape[1]))
    for start in range(0, width, slab):
        block = half[:, :, start : start + slab].to(complex_dtype)
        block = _rows(torch.fft.ifft(block, dim=0), 0, keep)
        partial[:, :, start : start + slab] = _rows(torch.fft.ifft(block, dim=1), 1, keep)
    return _rows(torch.fft.irfft(partial, n=size, dim=2), 2, keep)


def _count(keep: torch.Tensor | slice, size: int) -> int:
    return len(range(*keep.indices(size))) if isinstance(keep, slice) else keep.numel()


def _rows(t: torch.Tensor, dim: int, keep: torch.Tensor | slice) -> torch.Tensor:
    """``t`` at the indices (or slice) ``keep`` along ``dim``.

    Indices on the CPU that are one or two ascending runs (a map's voxels in an uncentred padded
    grid, :func:`_wrapped_indices`) are read as views and joined: ``index_select`` gathers element
    by element, ~1.7× the time at box 256 (``benchmarks/RESULTS.md``, round 2, session 24).
    """
    if isinstance(keep, slice):
        return t[(slice(None),) * dim + (keep,)]
    runs = _ascending_runs(keep)
    if runs is None:
        return t.index_select(dim, keep)
    parts = [t.narrow(dim, start, length) for start, length in runs]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim)


def _ascending_runs(keep: torch.Tensor) -> list[tuple[int, int]] | None:
    """``[(start, length), ...]`` of ``keep`` (1-D, CPU) as at most two runs of consecutive
    indices, or None (other indices, or indices on a GPU, where reading them would wait on it)."""
    if keep.device.type != "cpu" or keep.ndim != 1 or keep.numel() == 0:
        return None
    breaks = torch.nonzero(keep[1:] - keep[:-1] != 1).reshape(-1).tolist()
    if len(breaks) > 1:
        return None
    ends = [0, *(b + 1 for b in breaks), keep.numel()]
    return [(int(keep[a]), b - a) for a, b in zip(ends[:-1], ends[1:], strict=True)]


def centred_cropped_irfftn(half: torch.Tensor, size: int, keep: torch.Tensor) -> torch.Tensor:
    """:func:`cropped_irfftn` of a half grid stored centred along ``z`` and ``y`` (P even).

    Transformed as it is stored, the result is the uncentred one times ``(-1)^(z + y)``; the sign
    is undone on the ``n³`` result instead of shifting (copying) the whole padded grid first.
    """
    volume = cropped_irfftn(half, size, keep)
    sign = 1.0 - 2.0 * (keep % 2).to(volume.dtype)
    return volume * (sign[:, None, None] * sign[None, :, None])


def padded_ft_to_volume(
    volume_ft: torch.Tensor,
    box: int,
    pixel_size_angstrom: float = 1.0,
    gridding_correction: bool = False,
) -> torch.Tensor:
    """Inverse of :func:`volume_to_padded_ft`: inverse FFT, crop the central D³, divide by the voxel.

    Parameters
    ----------
    volume_ft : torch.Tensor, complex, (P, P, P) full or (P, P, P//2 + 1) half layout
    box : int
        Output box D (``P = pad · D``).
    pixel_size_angstrom : float
    gridding_correction : bool
        Divide the cropped map by :func:`trilinear_apodization` (for a transform gathered by
        trilinear insertion, e.g. a direct Fourier inversion).

    Returns
    -------
    torch.Tensor, shape (D, D, D), real.
    """
    size = volume_ft.shape[0]
    if size % box:
        raise ValueError(f"padded box {size} is not a multiple of box {box}")
    pad = size // box
    # Uncentred result: map voxel i (origin D//2) sits at index (i - D//2) mod P. Gathering it
    # directly avoids shifting the whole padded volume.
    wrap = _wrapped_indices(box, size, volume_ft.device)
    if is_half_layout(volume_ft):
        volume = centred_cropped_irfftn(volume_ft, size, wrap) / pixel_size_angstrom
    else:
        padded = torch.fft.ifftn(torch.fft.ifftshift(volume_ft, dim=(0, 1, 2))).real
        volume = padded[wrap][:, wrap][:, :, wrap] / pixel_size_angstrom
    if gridding_correction:
        volume = volume / trilinear_apodization(box, pad, volume.device, volume.dtype)
    return volume
