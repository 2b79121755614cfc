"""Particle images as the reconstruction's Fourier grid sees them: one batch, group by group.

Each image's rfft (``kx ≥ 0``, ``ky`` centred) has its antisymmetric aberrations taken out, is
shifted back by its origin (a phase, with its centre moved to the origin folded in) and scaled to
the reconstruction's pixel; its CTF is made at the group's own pixel size (and magnification),
and its map→image rotation is the one its samples lie on in the map's transform. The statistics
pass inserts these spectra (:mod:`cryosplat.reconstruct.grid.gather`); the particle scores compare
them with slices of a map (:mod:`cryosplat.reconstruct.grid.particle_scores`). One preparation
serves both, so an image is placed the same way wherever it is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cryosplat.core.aberrations import odd_phase_factors
from cryosplat.core.ctf import raw_backprojection_factor
from cryosplat.core.ctf_plane import CTFPlane
from cryosplat.core.distinct import distinct_rows
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.group_sampling import GroupSampling

__all__ = ["GroupSpectra", "SpectraPreparer"]


@dataclass(frozen=True)
class GroupSpectra:
    """The images of one batch that share a sampling (pixel size, magnification, band).

    Attributes
    ----------
    rows : np.ndarray of int, (n,)
        Their rows of the particle set.
    picked : torch.Tensor or None
        Their positions in the batch (None: the whole batch).
    key : tuple[float, int, float]
        ``(pixel, magnification index, band limit)``: one per distinct sampling.
    group : GroupSampling
        How their frequencies land on the grid.
    spectra : torch.Tensor, complex64, (n, D, D//2)
        Shifted back, centred (``ky`` row ``D//2`` is 0), scaled to the reconstruction's pixel.
    ctf : torch.Tensor, float32, (n, D, D//2)
        The CTF at each sample.
    factor : torch.Tensor, float32, (n, D, D//2)
        What turns each image into ``CTF`` times the raw image (``ctf`` itself for raw images;
        :func:`~cryosplat.core.ctf.raw_backprojection_factor` for images that carry it).
    rotations : torch.Tensor, float32, (n, 3, 3)
        The matrices placing each sample on the map's grid (before the group's ``scale``).
    """

    rows: np.ndarray
    picked: torch.Tensor | None
    key: tuple[float, int, float]
    group: GroupSampling
    spectra: torch.Tensor
    ctf: torch.Tensor
    factor: torch.Tensor
    rotations: torch.Tensor


class SpectraPreparer:
    """Prepares batches of one particle set's images for a grid of ``radius`` shells, pad ``pad``.

    The geometry of each sampling (its CTF plane) is made once and kept.
    """

    def __init__(self, particles: ParticleSet, radius: float, pad: int, device: torch.device):
        box = particles.box
        self.particles, self.radius, self.pad, self.box = particles, radius, pad, box
        self.device = device
        self.pixel = particles.pixel_size_angstrom
        self.pixel_of = particles.pixel_sizes_angstrom()
        self.band_of = particles.band_limits_px()
        # Each particle's magnification matrix, by index into the distinct ones (RELION's rlnMagMat).
        self.mags, self.mag_of = np.eye(2)[None], np.zeros(len(particles), dtype=np.int64)
        if particles.mag_matrices is not None:
            self.mags, self.mag_of = distinct_rows(particles.mag_matrices.reshape(-1, 4))
            self.mags = self.mags.reshape(-1, 2, 2)
        # Real images: only the kx >= 0 half of each spectrum is needed (rfft layout, ky centred).
        self.k = torch.arange(box, device=device) - box // 2
        self.kx = torch.arange(box // 2, device=device)
        self.centring_y = (1.0 - 2.0 * (self.k % 2)).float()  # (-1)^ky
        self.centring_x = (1.0 - 2.0 * (self.kx % 2)).float()  # (-1)^kx
        kx = self.kx
        self.friedel_all = torch.where(kx == 0, 1.0, 2.0).expand(box, -1).reshape(-1).double()
        self.plane_kx = kx[None, :].expand(box, -1)
        self.plane_ky = self.k[:, None].expand(-1, box // 2)
        self.ctf_planes: dict[tuple[float, int], CTFPlane] = {}

    def spectra(self, batch: np.ndarray, images: torch.Tensor) -> torch.Tensor:
        """The images' rfft with their antisymmetric aberrations taken out, ``ky`` centred, the
        ``kx`` columns ``0 … D/2 − 1`` kept: ``(B, D, D//2)``."""
        box, particles = self.box, self.particles
        # The rfft of the image as stored: moving its centre (pixel D//2) to the origin is the
        # factor (-1)^(kx + ky) (even box), folded into the shift phases of :meth:`groups`.
        spectra = torch.fft.rfft2(images)
        if particles.odd_zernike is not None:  # staged as stored: beam tilt etc. taken out here
            spectra = spectra * odd_phase_factors(
                particles.odd_zernike[batch],
                self.pixel_of[batch],
                box,
                device=self.device,
                mag_matrices=self.mags[self.mag_of[batch]],
            )
        return torch.fft.fftshift(spectra, dim=-2)[..., : box // 2]

    def groups(self, batch: np.ndarray, spectra: torch.Tensor) -> list[GroupSpectra]:
        """The batch's images (rows ``batch``, spectra from :meth:`spectra`) by sampling."""
        box, k, kx = self.box, self.k, self.kx
        particles = self.particles
        batch_pixel = np.round(self.pixel_of[batch], 6)
        batch_mag, batch_band = self.mag_of[batch], self.band_of[batch]
        keys = np.unique(np.stack([batch_pixel, batch_mag, batch_band], 1), axis=0).tolist()
        out = []
        for group_pixel, mag, band in keys:
            mag = int(mag)
            own = (batch_pixel == group_pixel) & (batch_mag == mag) & (batch_band == band)
            rows = batch[own]
            own_pixel = self.pixel if group_pixel == round(self.pixel, 6) else float(group_pixel)
            group = GroupSampling(
                box, self.pixel, own_pixel, self.radius, self.pad, self.mags[mag], band
            )
            picked = None if own.all() else torch.from_numpy(np.flatnonzero(own)).to(self.device)
            group_spectra = spectra if picked is None else spectra[picked]
            shifts = torch.as_tensor(
                particles.shifts_angstrom[rows], device=self.device, dtype=torch.float32
            )
            # Undo the shift: multiply by exp(-2πi k·o) (see cryosplat.core.fourier.phase_shift_2d),
            # with k in the group's own frequency units: a row factor times a column factor.
            n_rows = len(rows)
            row = torch.polar(
                self.centring_y.expand(n_rows, -1),
                -group.frequency * k[None, :] * shifts[:, 1, None],
            )
            column = torch.polar(
                group.amplitude * self.centring_x.expand(n_rows, -1),
                -group.frequency * kx[None, :] * shifts[:, 0, None],
            )
            group_spectra = group_spectra * (row[:, :, None] * column[:, None, :])
            if (own_pixel, mag) not in self.ctf_planes:
                self.ctf_planes[own_pixel, mag] = group.ctf_plane(self.plane_kx, self.plane_ky)
            ctf = self.ctf_planes[own_pixel, mag](particles.ctf.subset(rows))
            rotations = torch.as_tensor(
                group.slice_matrices(particles.rotations[rows]),
                device=self.device,
                dtype=torch.float32,
            )
            codes = particles.ctf_in_images_of(rows)  # images that carry their CTF already
            factor = ctf if codes is None else raw_backprojection_factor(ctf, codes)
            key = (own_pixel, mag, band)
            out.append(
                GroupSpectra(rows, picked, key, group, group_spectra, ctf, factor, rotations)
            )
        return out
