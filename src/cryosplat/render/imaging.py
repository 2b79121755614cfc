"""Image formation: splat → centred FFT → shift phase (RELION origin sign) → CTF → inverse FFT.

A particle image of a Gaussian mixture seen through rotation ``A`` with RELION origin ``o`` (Å) and
CTF ``C`` is ``image = F⁻¹[ C · exp(+2πi k·o) · F[splat] ]``: the centred projection moved by
``-o`` (:mod:`cryosplat.core.conventions`) and filtered by the CTF. Without shift and CTF the image is
the splat itself (no round trip through the FFT).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.fourier import fft2_centered, ifft2_centered, phase_shift_2d
from cryosplat.core.mixture import Mixture
from cryosplat.model.gaussians import GaussianModel
from cryosplat.render import splat

__all__ = ["predict_spectra", "render_images", "predict_images"]


def _as_tensor(value, like: torch.Tensor, name: str, shape: tuple) -> torch.Tensor:
    t = torch.as_tensor(
        np.asarray(value) if not torch.is_tensor(value) else value, device=like.device
    )
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    return t.to(like.dtype)


def _rotations(rotations, like: torch.Tensor) -> torch.Tensor:
    rot = rotations if torch.is_tensor(rotations) else torch.as_tensor(np.asarray(rotations))
    return rot.to(device=like.device, dtype=like.dtype)


def predict_spectra(
    mixture: Mixture,
    rotations: torch.Tensor | ArrayLike,
    shifts_angstrom: torch.Tensor | ArrayLike | None,
    ctf: torch.Tensor | ArrayLike | None,
    box: int,
    pixel_size_angstrom: float,
    backend: str = "auto",
    n_sigma: float = 3.0,
) -> torch.Tensor:
    """Centred Fourier transforms of predicted particle images (shifted, CTF-multiplied).

    Parameters
    ----------
    mixture : Mixture
        The N Gaussians (means and scales in Å, internal frame).
    rotations : array_like, shape (B, 3, 3)
        Map→image matrices ``A``.
    shifts_angstrom : array_like, shape (B, 2), or None
        RELION origins ``(x, y)`` in Å; the image holds the projection moved by minus this.
    ctf : array_like, shape (B, D, D), or None
        CTF on the centred frequency grid (:func:`cryosplat.core.ctf.compute_ctf`).
    box : int
    pixel_size_angstrom : float
    backend : {"auto", "reference", "fast", "fourier"}
    n_sigma : float
        Splat footprint half-width in standard deviations.

    Returns
    -------
    torch.Tensor, shape (B, D, D), complex, zero frequency at ``[:, D//2, D//2]``; differentiable
    with respect to the Gaussian parameters, rotations and shifts.
    """
    rot = _rotations(rotations, mixture.means)
    projections = splat(mixture, rot, box, pixel_size_angstrom, n_sigma=n_sigma, backend=backend)
    return _filter(projections, rot.shape[0], box, pixel_size_angstrom, shifts_angstrom, ctf)


def _filter(projections, n_views, box, pixel_size_angstrom, shifts_angstrom, ctf):
    spectra = fft2_centered(projections)
    if shifts_angstrom is not None:
        shifts = _as_tensor(shifts_angstrom, projections, "shifts_angstrom", (n_views, 2))
        spectra = phase_shift_2d(spectra, shifts, pixel_size_angstrom)
    if ctf is not None:
        spectra = spectra * _as_tensor(ctf, projections, "ctf", (n_views, box, box))
    return spectra


def render_images(
    mixture: Mixture,
    rotations: torch.Tensor | ArrayLike,
    shifts_angstrom: torch.Tensor | ArrayLike | None,
    ctf: torch.Tensor | ArrayLike | None,
    box: int,
    pixel_size_angstrom: float,
    backend: str = "auto",
    n_sigma: float = 3.0,
) -> torch.Tensor:
    """Predicted particle images (B, D, D), real, per Å²; arguments as :func:`predict_spectra`.

    Without shifts and CTF the images are the splats themselves (no FFT round trip).
    """
    rot = _rotations(rotations, mixture.means)
    projections = splat(mixture, rot, box, pixel_size_angstrom, n_sigma=n_sigma, backend=backend)
    if shifts_angstrom is None and ctf is None:
        return projections
    spectra = _filter(projections, rot.shape[0], box, pixel_size_angstrom, shifts_angstrom, ctf)
    return ifft2_centered(spectra).real


def predict_images(
    model: GaussianModel,
    rotations: torch.Tensor | ArrayLike,
    shifts_angstrom: torch.Tensor | ArrayLike | None = None,
    ctf: torch.Tensor | ArrayLike | None = None,
    backend: str = "auto",
    n_sigma: float = 3.0,
) -> torch.Tensor:
    """Predicted particle images (B, D, D) of a :class:`GaussianModel` on its box and pixel.

    Parameters
    ----------
    model : GaussianModel
    rotations : array_like, shape (B, 3, 3), map→image matrices ``A``
    shifts_angstrom : array_like, shape (B, 2), optional, RELION origins in Å
    ctf : array_like, shape (B, D, D), optional, centred CTF
    backend : {"auto", "reference", "fast", "fourier"}
    n_sigma : float

    Returns
    -------
    torch.Tensor, shape (B, D, D), real, per Å².
    """
    return render_images(
        model.mixture(),
        rotations,
        shifts_angstrom,
        ctf,
        model.box,
        model.pixel_size_angstrom,
        backend=backend,
        n_sigma=n_sigma,
    )
