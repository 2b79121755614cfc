"""Centred FFTs and Fourier grids on the FFT-aligned convention of :mod:`cryosplat.core.conventions`.

The zero frequency of a centred transform sits at index ``D // 2``, the same index as the real-space
origin, so a real-space origin at ``D // 2`` gives a transform without a phase ramp.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "fft2_centered",
    "ifft2_centered",
    "fftn_centered",
    "fourier_crop_volume",
    "fourier_pad_volume",
    "ifftn_centered",
    "frequency_grid_2d",
    "frequency_grid_3d",
    "frequency_axes",
    "phase_shift_2d",
    "radial_index_2d",
    "squared_radius",
]


def fft2_centered(images: torch.Tensor) -> torch.Tensor:
    """Centred 2D FFT over the last two axes: origin at ``D // 2`` in and out.

    Parameters
    ----------
    images : torch.Tensor, shape (..., D, D), real or complex

    Returns
    -------
    torch.Tensor, shape (..., D, D), complex; zero frequency at ``[..., D // 2, D // 2]``.
    """
    dims = (-2, -1)
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(images, dim=dims)), dim=dims)


def ifft2_centered(spectra: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft2_centered` (complex output; take ``.real`` for real images)."""
    dims = (-2, -1)
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(spectra, dim=dims)), dim=dims)


def fftn_centered(volume: torch.Tensor) -> torch.Tensor:
    """Centred 3D FFT over the last three axes (origin at ``D // 2``)."""
    dims = (-3, -2, -1)
    return torch.fft.fftshift(
        torch.fft.fftn(torch.fft.ifftshift(volume, dim=dims), dim=dims), dim=dims
    )


def ifftn_centered(spectrum: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fftn_centered`."""
    dims = (-3, -2, -1)
    return torch.fft.fftshift(
        torch.fft.ifftn(torch.fft.ifftshift(spectrum, dim=dims), dim=dims), dim=dims
    )


def fourier_pad_volume(volume: torch.Tensor, box: int, drop_nyquist: bool = False) -> torch.Tensor:
    """A real map (d, d, d) sampled on a finer grid of the same extent, (box, box, box) with
    ``box ≥ d``: its transform zero-padded (band-limited interpolation; nothing is added past its
    own Nyquist limit), values kept, the origin voxel ``d // 2`` going to ``box // 2``.

    ``drop_nyquist``: an even map's Nyquist planes (``|k| = d/2`` along an axis, one coefficient
    standing for both signs) are left out, so that the result holds only frequencies both grids
    hold whole, and :func:`fourier_crop_volume` back to ``d`` returns the map less those planes
    exactly (the maps written back at an odd box: :mod:`cryosplat.reconstruct.written_grid`).
    """
    size = volume.shape[-1]
    if box < size:
        raise ValueError(f"box must be at least the map's {size}, got {box}")
    if box == size:
        return volume
    dims = (-3, -2, -1)
    spectrum = torch.fft.rfftn(torch.roll(volume, (-(size // 2),) * 3, dims), dim=dims)
    if drop_nyquist and size % 2 == 0:
        half = size // 2
        spectrum[half] = 0
        spectrum[:, half] = 0
        spectrum[..., half] = 0
    low = torch.cat([torch.arange(0, size - size // 2), torch.arange(box - size // 2, box)])
    low = low.to(spectrum.device)
    padded = spectrum.new_zeros((box, box, box // 2 + 1))
    padded[low[:, None], low[None, :], : size // 2 + 1] = spectrum
    grown = torch.fft.irfftn(padded, s=(box,) * 3, dim=dims) * (box / size) ** 3
    return torch.roll(grown, (box // 2,) * 3, dims)


def fourier_crop_volume(volume: torch.Tensor, box: int) -> torch.Tensor:
    """A real map (D, D, D) on a coarser grid of the same extent, (box, box, box) with even
    ``box ≤ D``: the frequencies ``|k| < box/2`` along each axis kept (as images are
    Fourier-cropped), values kept, the origin voxel ``D // 2`` going to ``box // 2``; the inverse
    of :func:`fourier_pad_volume` for maps with nothing at or past ``box``'s Nyquist frequency."""
    size = volume.shape[-1]
    if box % 2 or not 2 <= box <= size:
        raise ValueError(f"crop box must be even and in [2, {size}], got {box}")
    if box == size:
        return volume
    dims = (-3, -2, -1)
    spectrum = torch.fft.rfftn(torch.roll(volume, (-(size // 2),) * 3, dims), dim=dims)
    low = torch.cat([torch.arange(0, box // 2), torch.arange(size - box // 2, size)])
    low = low.to(spectrum.device)
    kept = spectrum[low[:, None], low[None, :], : box // 2 + 1]
    small = torch.fft.irfftn(kept, s=(box,) * 3, dim=dims) * (box / size) ** 3
    return torch.roll(small, (box // 2,) * 3, dims)


def _frequencies(box: int, pixel_size_angstrom: float, device, dtype) -> torch.Tensor:
    return (torch.arange(box, device=device, dtype=dtype) - box // 2) / (box * pixel_size_angstrom)


def frequency_grid_2d(
    box: int,
    pixel_size_angstrom: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial frequencies (1/Å) of a centred D×D transform.

    Returns
    -------
    kx, ky : torch.Tensor, shape (D, D)
        ``kx[j, i] = (i - D // 2) / (D * pixel)``, ``ky[j, i] = (j - D // 2) / (D * pixel)``.
    """
    if box < 1:
        raise ValueError(f"box must be positive, got {box}")
    if not pixel_size_angstrom > 0:
        raise ValueError(f"pixel_size_angstrom must be positive, got {pixel_size_angstrom}")
    k = _frequencies(box, pixel_size_angstrom, device, dtype)
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    return kx, ky


def frequency_grid_3d(
    box: int,
    pixel_size_angstrom: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Spatial frequencies (1/Å) of a centred D³ transform, each of shape (D, D, D), ``[z, y, x]``."""
    if box < 1:
        raise ValueError(f"box must be positive, got {box}")
    k = _frequencies(box, pixel_size_angstrom, device, dtype)
    kz, ky, kx = torch.meshgrid(k, k, k, indexing="ij")
    return kx, ky, kz


def phase_shift_2d(
    spectra: torch.Tensor,
    shifts_angstrom: torch.Tensor,
    pixel_size_angstrom: float,
) -> torch.Tensor:
    """Move images by ``-shifts`` (RELION origin sign) through a Fourier phase.

    With ``shifts_angstrom = o`` the result is the transform of ``image(p + o)``: each frequency is
    multiplied by ``exp(+2πi k·o)``.

    Parameters
    ----------
    spectra : torch.Tensor, shape (B, D, D), complex, centred
    shifts_angstrom : torch.Tensor, shape (B, 2)
        ``(x, y)`` RELION origins in Å.
    pixel_size_angstrom : float
    """
    box = spectra.shape[-1]
    real_dtype = torch.float64 if spectra.dtype == torch.complex128 else torch.float32
    kx, ky = frequency_grid_2d(box, pixel_size_angstrom, spectra.device, real_dtype)
    s = shifts_angstrom.to(real_dtype)
    phase = 2.0 * math.pi * (kx * s[:, 0, None, None] + ky * s[:, 1, None, None])
    return spectra * torch.polar(torch.ones_like(phase), phase)


def squared_radius(
    box: int,
    ndim: int,
    half: bool = False,
    centred: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.int64,
) -> torch.Tensor:
    """``|k|²`` at every point of a D^ndim grid of integer frequencies (or voxel offsets).

    The one shell-radius grid of the package: Fourier shells, resolution limits and spherical
    masks are all made from it.

    Parameters
    ----------
    box : int
        D, the size of every axis (the last one is ``D//2 + 1`` long when ``half``).
    ndim : int
        2 (``[y, x]``) or 3 (``[z, y, x]``).
    half : bool
        The last axis holds ``kx = 0 .. D//2`` only (the ``rfft`` layout).
    centred : bool
        Index ``i`` is ``i − D//2`` (a centred transform, or voxels about the map origin); else
        the FFT order of :func:`torch.fft.fftfreq` (``0, 1, …, −1``). The ``half`` axis is never
        shifted.
    device, dtype : of the result (integer by default: exact squared radii).

    Returns
    -------
    torch.Tensor, shape ``(D,) * (ndim − 1) + (D//2 + 1 if half else D,)``.
    """
    axes = frequency_axes(box, ndim, half, centred, device)
    r2 = torch.zeros((), device=device, dtype=torch.int64)
    for i, axis in enumerate(axes):
        shape = [1] * ndim
        shape[i] = -1
        r2 = r2 + axis.reshape(shape) ** 2
    return r2.to(dtype)


def frequency_axes(
    box: int,
    ndim: int,
    half: bool = False,
    centred: bool = True,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    """The integer frequency of each index along each axis of the grid :func:`squared_radius`
    describes (the same ``half`` and ``centred`` layouts), ``[z, y, x]`` (or ``[y, x]``).

    Returns
    -------
    list of ``ndim`` int64 tensors, of length D (the last ``D//2 + 1`` when ``half``).
    """
    if box < 1 or ndim not in (2, 3):
        raise ValueError(f"need box >= 1 and ndim 2 or 3, got box {box}, ndim {ndim}")
    k = torch.arange(box, device=device, dtype=torch.int64)
    k = k - box // 2 if centred else torch.where(k < (box + 1) // 2, k, k - box)
    last = torch.arange(box // 2 + 1, device=device, dtype=torch.int64) if half else k
    return [k] * (ndim - 1) + [last]


def radial_index_2d(box: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Integer radius (Fourier shell index) of each pixel of a centred D×D grid, shape (D, D)."""
    return torch.round(squared_radius(box, 2, device=device, dtype=torch.float64).sqrt()).long()
