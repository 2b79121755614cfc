"""Central slices of a map's Fourier transform on a padded grid: extraction.

Insertion, the adjoint of extraction, is :mod:`cryosplat.core.slice_insertion`.

The padded grids, their two layouts and the transform's scale are
:mod:`cryosplat.core.padded_transform`'s.

Central slices
--------------
With the map→image matrix ``A`` of :mod:`cryosplat.core.conventions`, the image frequency
``k = (kx, ky)`` (in units of ``1 / (D · pixel)``) is the padded-grid point
``K = pad · (kx · A[0, :] + ky · A[1, :])`` (central-slice theorem: the projection integrates along
``(A r)[2]``).

Interpolation
-------------
Trilinear, both ways (extraction reads the 8 neighbours of ``K``; insertion spreads onto them with
the same weights). On the padded grid this equals multiplying the map in real space by
``sinc²(x/P) sinc²(y/P) sinc²(z/P)`` (:func:`~cryosplat.core.padded_transform.trilinear_apodization`, ``x`` in voxels from the
centre); ``gridding_correction=True`` divides it out, as RELION's projector and reconstructor do.
"""

from __future__ import annotations

import torch

from cryosplat.core.half_slices import (
    HalfGridReader,
    HalfPlane,
    HalfSlices,
    default_max_radius,
    gathered_radius,
    padded_box,
)
from cryosplat.core.padded_transform import is_half_layout, padded_rfft, trilinear_apodization

__all__ = [
    "default_max_radius",
    "kept_pixels",
    "extract_slices",
    "SliceReader",
]


def kept_pixels(box: int, pad: int, max_radius: float | None, half: bool, like: torch.Tensor):
    """The pixels with ``|k| ≤ max_radius`` of a D×D block (D×D/2, ``kx ≥ 0``, for ``half``).

    Returns flat indices into the block, their ``kx`` and ``ky`` (dtype of ``like``) and the block
    shape.
    """
    limit = gathered_radius(box, pad, max_radius)
    k = torch.arange(box, device=like.device, dtype=like.dtype) - box // 2
    ky, kx = torch.meshgrid(k, k[box // 2 :] if half else k, indexing="ij")
    pix = ((kx**2 + ky**2) <= limit * limit).reshape(-1).nonzero().squeeze(1)
    return pix, kx.reshape(-1)[pix], ky.reshape(-1)[pix], tuple(kx.shape)


def _points(rotations: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor, pad: int) -> torch.Tensor:
    """Padded-grid points ``K = pad · (kx A[0] + ky A[1])`` (B, M, 3) of image frequencies."""
    return (
        kx[None, :, None] * rotations[:, None, 0] + ky[None, :, None] * rotations[:, None, 1]
    ) * pad


class _Stencil:
    """Trilinear stencil of M points on a full centred grid: base flat index, corner offsets and
    fractions (insertion has its own, buffered: :mod:`cryosplat.core.slice_insertion`).

    ``coords`` (M, 3) are ``(Kx, Ky, Kz)`` in padded units; all 8 neighbours must lie on the grid
    (guaranteed by :func:`default_max_radius`).
    """

    def __init__(self, coords: torch.Tensor, shape: tuple[int, int, int]) -> None:
        origin = [shape[0] // 2] * 3
        shifted = coords + torch.tensor(origin, device=coords.device, dtype=coords.dtype)
        base = torch.floor(shifted)
        frac = shifted - base
        self.fx, self.fy, self.fz = frac.unbind(1)
        index_dtype = torch.int32 if shape[0] * shape[1] * shape[2] < 2**31 else torch.int64
        b = base.to(index_dtype)
        self.base = (b[:, 2] * shape[1] + b[:, 1]) * shape[2] + b[:, 0]
        corners = [(dx, dy, dz) for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)]
        self.corners = [
            ((dz * shape[1] + dy) * shape[2] + dx, dx, dy, dz) for dx, dy, dz in corners
        ]

    def __iter__(self):
        base = self.base.long()
        wx, wy, wz = (1.0 - self.fx, self.fx), (1.0 - self.fy, self.fy), (1.0 - self.fz, self.fz)
        wxy = {(dx, dy): wx[dx] * wy[dy] for dx in (0, 1) for dy in (0, 1)}
        for offset, dx, dy, dz in self.corners:
            yield base + offset, wxy[dx, dy] * wz[dz]


def extract_slices(
    volume_ft: torch.Tensor,
    rotations: torch.Tensor,
    box: int,
    pad: int,
    max_radius: float | None = None,
) -> torch.Tensor:
    """Central slices of a padded transform, by trilinear interpolation.

    Parameters
    ----------
    volume_ft : torch.Tensor, complex, (P, P, P) full or (P, P, P//2 + 1) half layout
        From :func:`volume_to_padded_ft` (use ``gridding_correction=True`` for accurate slices).
    rotations : torch.Tensor, shape (B, 3, 3)
        Map→image matrices ``A``.
    box : int
        Image box D.
    pad : int
        ``P = pad · D``.
    max_radius : float, optional
        Keep image frequencies with ``|k| ≤ max_radius`` (pixels of the D grid), at most and by
        default :func:`default_max_radius`. Others are 0.

    Returns
    -------
    torch.Tensor, shape (B, D, D), complex
        Centred image spectra (zero frequency at ``[:, D//2, D//2]``), differentiable in
        ``volume_ft``.
    """
    size = padded_box(box, pad)
    half = is_half_layout(volume_ft)
    if volume_ft.shape[0] != size:
        raise ValueError(f"grid of size {volume_ft.shape[0]} does not match box {box} × pad {pad}")
    real_dtype = torch.float64 if volume_ft.dtype == torch.complex128 else torch.float32
    rot = torch.as_tensor(rotations, device=volume_ft.device, dtype=real_dtype)
    n = rot.shape[0]
    if half:
        return _extract_from_half(volume_ft, rot, box, pad, max_radius)
    pix, kx, ky, _ = kept_pixels(box, pad, max_radius, False, rot)
    coords = _points(rot, kx, ky, pad).reshape(-1, 3)
    flat_grid = volume_ft.reshape(-1)
    values = torch.zeros(coords.shape[0], device=volume_ft.device, dtype=volume_ft.dtype)
    for index, weight in _Stencil(coords, tuple(volume_ft.shape)):
        values = values + weight * flat_grid[index]
    out = torch.zeros(n, box * box, device=volume_ft.device, dtype=volume_ft.dtype)
    out = out.index_copy(1, pix, values.reshape(n, -1))
    return out.reshape(n, box, box)


# Slice-point entries (points × 8 corners) read at once by :func:`_extract_from_half`.
_HALF_READ_ENTRIES = 2**20


def _extract_from_half(
    volume_ft: torch.Tensor, rot: torch.Tensor, box: int, pad: int, max_radius: float | None
) -> torch.Tensor:
    """:func:`extract_slices` of a centred half grid, read by :class:`HalfSlices` (the one sampler).

    The ``kx ≥ 0`` half of each slice is read from the uncentred grid; the ``kx < 0`` half is its
    Friedel mirror (``V̂(−k) = conj V̂(k)``, exact for the transform of a real map).
    """
    plane = HalfPlane(box, pad, volume_ft.device, rot.dtype, max_radius)
    grid = torch.fft.ifftshift(volume_ft, dim=(0, 1))
    values = HalfSlices.apply(grid, rot, plane, _views_per_read(plane))
    return _mirrored(_placed(values, plane, box), box)


def _views_per_read(plane: HalfPlane) -> int:
    return max(1, _HALF_READ_ENTRIES // (8 * max(1, plane.kx.shape[0])))


def _mirrored(half: torch.Tensor, box: int) -> torch.Tensor:
    """Centred images (B, D, D) from their ``kx ≥ 0`` halves (B, D, D//2 + 1)."""
    # Column kx = -m of the centred image is conj(half[-ky, m]); row -ky of row j is (D - j) mod D.
    mirror = torch.roll(torch.flip(half, dims=(1,)), shifts=1, dims=1).conj()
    negative = torch.flip(mirror[:, :, 1 : box // 2 + 1], dims=(2,))
    return torch.cat([negative, half[:, :, : box // 2]], dim=2)


def _placed(values: torch.Tensor, plane: HalfPlane, box: int) -> torch.Tensor:
    """The read ``values`` (B, M) placed in centred-``y`` half images (B, D, D//2 + 1)."""
    width = box // 2 + 1
    half = torch.zeros((values.shape[0], box * width), device=values.device, dtype=values.dtype)
    return half.index_copy(1, plane.slots, values).reshape(-1, box, width)


class SliceReader:
    """Central slices of one padded transform for many batches of views, without gradients.

    :func:`extract_slices` un-centres its grid and extends it by a plane at every call (a copy
    of the grid: about 1 s a call at box 256, whatever the batch); this does both once.
    :meth:`from_map` transforms a map straight to the un-centred grid.

    Parameters
    ----------
    volume_ft : torch.Tensor, complex, (P, P, P//2 + 1)
        A centred half-layout transform from :func:`volume_to_padded_ft` (``half=True``), or
        with ``centred=False`` the un-centred one of :func:`padded_rfft`.
    box, pad : int
        Image box D and ``P = pad · D``.
    centred : bool
        Whether ``volume_ft`` is centred.
    """

    def __init__(self, volume_ft: torch.Tensor, box: int, pad: int, centred: bool = True) -> None:
        if not is_half_layout(volume_ft) or volume_ft.shape[0] != padded_box(box, pad):
            raise ValueError(
                f"a half grid of size {padded_box(box, pad)} is needed, got "
                f"{tuple(volume_ft.shape)}"
            )
        grid = volume_ft.detach()
        if centred:
            grid = torch.fft.ifftshift(grid, dim=(0, 1))
        self.box, self.pad = box, pad
        self._reader = HalfGridReader(grid)
        self._real_dtype = torch.float64 if grid.dtype == torch.complex128 else torch.float32
        self._device = grid.device

    @classmethod
    def from_map(cls, volume: torch.Tensor, pad: int, pixel_size_angstrom: float) -> SliceReader:
        """The reader of ``volume_to_padded_ft(volume, pad, pixel_size_angstrom,
        gridding_correction=True, half=True)``, the same grid made without centring it."""
        if volume.ndim != 3 or len(set(volume.shape)) != 1:
            raise ValueError(f"volume must be a cube (D, D, D), got {tuple(volume.shape)}")
        box = volume.shape[-1]
        with torch.no_grad():
            volume = volume / trilinear_apodization(box, pad, volume.device, volume.dtype)
            grid = padded_rfft(volume, padded_box(box, pad), pixel_size_angstrom)
        return cls(grid, box, pad, centred=False)

    def half_slices(self, rotations: torch.Tensor, max_radius: float | None = None) -> torch.Tensor:
        """The ``kx ≥ 0`` columns of :func:`extract_slices`' slices, the same values.

        Returns
        -------
        torch.Tensor, complex, (B, D, D//2 + 1)
            Column ``c`` is frequency ``kx = c``; row ``j`` is ``ky = j − D//2``.
        """
        rot = torch.as_tensor(rotations, device=self._device, dtype=self._real_dtype)
        plane = HalfPlane(self.box, self.pad, self._device, rot.dtype, max_radius)
        values = self._reader.read(rot, plane, _views_per_read(plane))
        return _placed(values, plane, self.box)

    def half_samples(
        self, rotations: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor
    ) -> torch.Tensor:
        """Only the frequencies ``(kx, ky)`` (M,) of :meth:`half_slices`' columns ``kx < D/2``
        (:meth:`HalfPlane.at`): the same values as ``half_slices(rotations)[:, ky + D//2, kx]``,
        without placing the rest.

        Returns
        -------
        torch.Tensor, complex, (B, M)
        """
        rot = torch.as_tensor(rotations, device=self._device, dtype=self._real_dtype)
        plane = HalfPlane.at(
            self.box,
            self.pad,
            torch.as_tensor(kx, device=self._device, dtype=self._real_dtype),
            torch.as_tensor(ky, device=self._device, dtype=self._real_dtype),
        )
        return self._reader.read(rot, plane, _views_per_read(plane))

    def slices(self, rotations: torch.Tensor, max_radius: float | None = None) -> torch.Tensor:
        """:func:`extract_slices`' slices (B, D, D), the same values."""
        return _mirrored(self.half_slices(rotations, max_radius), self.box)
