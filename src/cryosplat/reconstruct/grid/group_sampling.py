"""How the images of one optics group map onto the reconstruction's Fourier grid.

A group differs from the reconstruction by its pixel size (its samples rescaled, as RELION
rescales them) and, where RELION's CTF refinement measured one, by a magnification matrix ``M``
(``rlnMagMat``; :attr:`cryosplat.particles.particle_set.ParticleSet.mag_matrices`): the image's
sample at ``k`` is the undistorted one at ``M k``, so its CTF is taken there and it is inserted on
the map's central slice at ``M k`` (RELION's ``ObservationModel::applyAnisoMag``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from cryosplat.core.aberrations import magnified_frequencies, magnified_rotations
from cryosplat.core.ctf_plane import CTFPlane
from cryosplat.core.fourier_slice import default_max_radius

__all__ = ["GroupSampling"]


@dataclass(frozen=True)
class GroupSampling:
    """How one optics group's image frequencies map onto the reconstruction's grid.

    An image frequency index ``k`` of a group with pixel ``p_g`` is the spatial frequency
    ``k / (D p_g)``, which is index ``k · p_ref / p_g`` of the reconstruction (pixel ``p_ref``): the
    slice coordinates scale by ``scale = p_ref / p_g`` (as RELION rescales the Fourier samples of
    each optics group). Spectra of images whose pixel values are samples of the same projected
    density scale as ``1 / p²`` (a DFT sums pixels), so they are multiplied by ``(p_g / p_ref)²``.
    Frequencies that land beyond the gathered radius are dropped. ``mag`` is the group's
    magnification matrix ``M`` (the identity by default). ``band_limit``: where the images were
    Fourier-padded to be read at ``box`` (:attr:`cryosplat.particles.particle_set.StoredImages.
    band_limit_px`), the highest of their own frequency indices they hold; the zeros beyond are
    not inserted (``inf``: none).
    """

    box: int
    reference_pixel: float
    pixel: float
    radius: float
    pad: int
    mag: np.ndarray = field(default_factory=lambda: np.eye(2))
    band_limit: float = math.inf

    @property
    def scale(self) -> float:
        return self.reference_pixel / self.pixel

    @property
    def amplitude(self) -> float:
        return (self.pixel / self.reference_pixel) ** 2

    @property
    def frequency(self) -> float:
        """``2π / (D p_g)``: radians per Å per frequency index."""
        return 2.0 * math.pi / (self.box * self.pixel)

    @property
    def magnified(self) -> bool:
        return not np.array_equal(self.mag, np.eye(2))

    @property
    def max_radius(self) -> float:
        """The largest own frequency index inserted (pixels of the group's D grid): ``M`` may
        carry a sample up to its largest singular value further out."""
        stretch = float(np.linalg.norm(self.mag, 2)) if self.magnified else 1.0
        own = min(default_max_radius(self.box, self.pad), self.band_limit)
        return min(own, self.radius / self.scale) / stretch

    def slice_matrices(self, rotations: np.ndarray) -> np.ndarray:
        """The matrices whose first two rows place a sample ``(kx, ky)`` on the map's grid
        (``kx·G₀ + ky·G₁``): the rotations ``A`` themselves, or ``Mᵀ A`` (the slice at ``M k``)."""
        return magnified_rotations(rotations, self.mag) if self.magnified else rotations

    def _through(self, kx: torch.Tensor, ky: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``M k`` of frequency indices (as they are without a matrix)."""
        if not self.magnified:
            return kx, ky
        mag = torch.as_tensor(self.mag, dtype=torch.float64, device=kx.device)
        return magnified_frequencies(mag, kx, ky)

    def landing_radius2(self, kx: torch.Tensor, ky: torch.Tensor) -> torch.Tensor:
        """Squared radius (the reconstruction's frequency indices) where the group's samples at
        indices ``(kx, ky)`` land: ``|M k|² · scale²``."""
        mx, my = self._through(kx, ky)
        return (mx.float() ** 2 + my.float() ** 2) * self.scale**2  # as gathered: float32

    def ctf_plane(self, kx: torch.Tensor, ky: torch.Tensor) -> CTFPlane:
        """The CTF at frequency indices ``(kx, ky)`` of the group's images, taken at ``M k``."""
        mx, my = self._through(kx, ky)
        return CTFPlane(mx, my, self.box, self.pixel)
