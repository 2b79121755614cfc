"""Fourier-slice rendering: the splats of a batch of views from one 3D transform of the mixture.

Same signature and same quantity as :func:`cryosplat.render.reference.splat_reference` (line
integrals per Å² on the FFT-aligned grid), computed by the central-slice theorem instead of per
(view, Gaussian) footprints:

1. the mixture is voxelised once on the D³ map grid (:func:`cryosplat.model.voxelize.voxelize_gaussians`,
   each Gaussian within ``n_sigma`` of its centre);
2. the map is divided by the trilinear apodisation (gridding correction), zero-padded to
   ``P = pad · D`` and real-FFT'd (:func:`cryosplat.core.padded_transform.padded_rfft`);
3. each view's half-plane of frequencies (``kx ≥ 0``, ``|k| ≤ D/2 − 1/pad``) is read from that grid
   by trilinear interpolation (:class:`cryosplat.core.half_slices.HalfSlices`, a custom autograd function that recomputes the
   stencil in its backward pass, so memory stays bounded whatever the batch size);
4. an inverse real 2D FFT gives the images.

Steps 1–2 cost the same for any batch and step 3 well under a microsecond per pixel, so the cost per
image falls with the batch size; the splat costs ``N × footprint`` per image whatever the batch. On
two CPU cores at D = 128 with 10,000 Gaussians, one step (forward and backward) takes about 0.65 s
plus 2 ms per image (``benchmarks/bench_render.py``).

Accuracy
--------
Not exact: trilinear interpolation of the padded transform is exact on its grid points and, between
them, damps density at a distance ``x`` from the centre by a factor between 1 and ``cos(πx/P)``
that the gridding correction (their average, ``sinc²(x/P)``) repairs only on average; it also
lets in a little of the grid's periodic copies. Against the reference, the relative L2 error of the images is about 6 % at
``pad = 2`` (the padding of RELION's projector; RELION's own projections agree with the exact splat
to the same level) and about 2.5 % at ``pad = 3``, falling roughly as ``1/pad²``; frequencies
beyond ``D/2 − 1/pad`` pixels (the corners of the spectrum) are zero. Gaussians narrower than about
one pixel are point-sampled by the splat (and by the voxelisation) and differ more: 24 % for the
five-Gaussians-per-atom model of 6VXX at 2.2 Å/px (median σ ≈ 0.3 px); Gaussians outside
the D³ box are dropped by the voxelisation (the splat still shows those whose footprint reaches the
image). Derivatives with respect to the rotations are those of trilinear interpolation (piecewise
constant across grid cells); for a pose-refinement loss their tangent (so(3)) parts are within
3 % (box 64) to 9 % (box 32) of the reference's at ``pad = 2``. Use it where many
views of one model are rendered at once (simulation, projection, large training batches); the
reference and :func:`cryosplat.render.fast.splat_fast` are exact.
"""

from __future__ import annotations

import torch

from cryosplat.core.half_slices import HalfPlane, HalfSlices
from cryosplat.core.mixture import Mixture
from cryosplat.core.padded_transform import padded_box, padded_rfft, trilinear_apodization
from cryosplat.model.voxelize import voxelize_gaussians
from cryosplat.render.geometry import check_inputs

__all__ = ["splat_fourier", "DEFAULT_PAD"]

DEFAULT_PAD = 2

# Stencil entries (points × 8 corners) per chunk of views on the CPU: temporaries stay in the
# allocator's reused memory instead of being mapped and faulted in afresh for every chunk. On a GPU
# chunks are bounded by max_elements alone, so kernel launches stay few.
CPU_CHUNK_ENTRIES = 2**18


def splat_fourier(
    mixture: Mixture,
    rotations: torch.Tensor,
    box: int,
    pixel_size_angstrom: float,
    n_sigma: float = 3.0,
    max_elements: int = 2**24,
    pad: int = DEFAULT_PAD,
) -> torch.Tensor:
    """Projections (B, D, D) per Å² of N Gaussians in B views, by Fourier slices of the voxelised map.

    Parameters
    ----------
    mixture, rotations, box, pixel_size_angstrom
        As in :func:`cryosplat.render.reference.splat_reference`. An odd box is rendered at
        ``box + 1`` and cropped (its first row and column dropped: same origin, ``D // 2``).
    n_sigma : float
        Voxelisation footprint half-width in standard deviations of each Gaussian's widest axis.
    max_elements : int
        Bound on values evaluated at once, in the voxelisation and in the slice reads.
    pad : int
        Padding factor of the 3D transform (accuracy ∝ ``1/pad²``, memory and FFT time ∝ ``pad³``).

    Returns
    -------
    torch.Tensor, shape (B, D, D), density per Å², differentiable in every Gaussian parameter and
    the rotation matrices; within a few per cent of the reference (see the module docstring).
    """
    check_inputs(mixture, rotations, box, pixel_size_angstrom)
    box = int(box)
    if box % 2:
        # The grids are laid out for even boxes: render at D + 1, whose origin (D + 1) // 2 is one
        # voxel past D // 2 along each axis, and drop the first row and column.
        images = splat_fourier(
            mixture, rotations, box + 1, pixel_size_angstrom, n_sigma, max_elements, pad
        )
        return images[..., 1:, 1:]
    size = padded_box(box, pad)
    dtype, device = mixture.means.dtype, mixture.means.device
    n_views = rotations.shape[0]
    if n_views == 0:
        return torch.zeros((0, box, box), device=device, dtype=dtype)
    volume = voxelize_gaussians(mixture, box, pixel_size_angstrom, n_sigma, max_elements)
    volume = volume / trilinear_apodization(box, int(pad), device, dtype)
    grid = padded_rfft(volume, size, float(pixel_size_angstrom))
    plane = HalfPlane(box, int(pad), device, dtype)
    entries = (
        max_elements // 2 if device.type != "cpu" else min(max_elements // 2, CPU_CHUNK_ENTRIES)
    )
    per = max(1, entries // (8 * plane.kx.shape[0]))
    values = HalfSlices.apply(grid, rotations.to(dtype), plane, per)
    half = torch.zeros((n_views, box * (box // 2 + 1)), device=device, dtype=values.dtype)
    half = half.index_copy(1, plane.slots, values).reshape(n_views, box, box // 2 + 1)
    images = torch.fft.irfft2(torch.fft.ifftshift(half, dim=-2), s=(box, box))
    return torch.fft.fftshift(images, dim=(-2, -1))
