"""One mini-batch of particle images as the per-image engine fits them: read (bad images left
out), less their background, over the engine's image unit, as centred spectra with their poses,
CTF, weights and bands; the models' predicted spectra; the start's amplitude factor."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from cryosplat.core.aberrations import magnified_rotations
from cryosplat.core.ctf import ctf_from_params, image_transfer
from cryosplat.core.fourier import fft2_centered, radial_index_2d
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.validate import bad_image_rows
from cryosplat.reconstruct.grid.noise_levels import NoiseLevels
from cryosplat.render.imaging import predict_spectra

__all__ = [
    "ImageBatch",
    "estimate_amplitude_scale",
    "held_frequencies",
    "image_batch",
    "predict",
    "read_images",
]


def read_images(particles: ParticleSet, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, images)`` without particles whose image is bad; the memory maps read are dropped.

    Dropping the maps after each batch, as the statistics pass does, keeps the open files to the
    stacks of one batch (RELION writes one stack per micrograph: thousands of files). Bad images
    (NaN, infinite, absurd) were refused or logged by the statistics pass that runs first; here
    they are only left out.
    """
    images = particles.read_images(rows)
    for s in np.unique(particles.stack_index[rows]):
        if 0 <= s < len(particles.stacks):
            particles.stacks[s].release()
    bad = bad_image_rows(images)
    if bad.size:
        keep = np.ones(len(rows), dtype=bool)
        keep[bad] = False
        rows, images = rows[keep], images[keep]
    return rows, images


class ImageBatch(NamedTuple):
    """One batch's images as spectra, with their poses, CTF, weights and bands."""

    data: torch.Tensor  # (B, D, D) complex, centred
    rotations: torch.Tensor  # (B, 3, 3)
    shifts: torch.Tensor  # (B, 2) Å
    ctf: torch.Tensor  # (B, D, D)
    weights: torch.Tensor | None  # (B,) the inverse of each image's noise variance, or None
    band_limits: torch.Tensor | None  # (B,) pixels; None: every image holds every frequency


def image_batch(
    particles: ParticleSet,
    rows: np.ndarray,
    device,
    sign: float,
    level: float = 0.0,
    levels: NoiseLevels | None = None,
    unit: float = 1.0,
) -> ImageBatch:
    """The images of ``rows`` (less their background ``level``, over ``unit``) as spectra, with
    their poses, CTF, weights (``levels``' of their noise, read in the images' own unit; None:
    alike) and, where some were Fourier-padded from a smaller box
    (:mod:`cryosplat.particles.mixed_boxes`), the highest frequency each holds."""
    rows, images = read_images(particles, np.asarray(rows))
    images = torch.from_numpy(images - np.float32(level)).to(device)
    weights = None if levels is None else levels.weights(images)
    rot, mag = particles.rotations[rows], None
    if particles.mag_matrices is not None:  # rendered through Mᵀ A, the CTF at M k
        mag = particles.mag_matrices[rows]
        rot = magnified_rotations(rot, mag)
    rot = torch.as_tensor(rot, dtype=torch.float32, device=device)
    shifts = torch.as_tensor(particles.shifts_angstrom[rows], dtype=torch.float32, device=device)
    ctf = ctf_from_params(
        particles.ctf.subset(rows),
        particles.box,
        particles.pixel_size_angstrom,
        device=device,
        mag_matrices=mag,
    )
    codes = particles.ctf_in_images_of(rows)  # images that carry their CTF already
    if codes is not None:
        ctf = image_transfer(ctf, codes)
    limits = particles.band_limits_px(rows)
    bands = None
    if np.isfinite(limits).any():
        bands = torch.as_tensor(limits, dtype=torch.float32, device=device)
    # Over ``unit`` with the sign: a power of two (``image_unit``), exact before or after the FFT.
    return ImageBatch((sign / unit) * fft2_centered(images), rot, shifts, ctf, weights, bands)


def held_frequencies(shells: torch.Tensor, bands: torch.Tensor | None) -> torch.Tensor | None:
    """Where each image holds its frequencies, bool (B, D, D): within its band; None for all."""
    return None if bands is None else shells[None] <= bands[:, None, None]


def predict(model: GaussianModel, rot, shifts, ctf, backend: str) -> torch.Tensor:
    return predict_spectra(
        model.expanded_parameters(),  # all |G| copies of a symmetric model
        rot,
        shifts,
        ctf,
        model.box,
        model.pixel_size_angstrom,
        backend=backend,
    )


def estimate_amplitude_scale(
    model: GaussianModel,
    particles: ParticleSet,
    rows: np.ndarray,
    device: torch.device | str,
    sign: float = 1.0,
    backend: str = "auto",
    unit: float = 1.0,
) -> float:
    """Factor that brings the model's projections to the signal power of the images over ``unit``.

    Compares power in a low-frequency band (shells 2..D/8) after subtracting the noise power measured
    near Nyquist, where the data are mostly noise. A random blob of the particle's size has about the
    particle's low-frequency power, so this sets the overall amplitude without any reference map.
    """
    batch = image_batch(particles, rows, device, sign, unit=unit)
    data = batch.data
    with torch.no_grad():
        pred = predict(model, batch.rotations, batch.shifts, batch.ctf, backend)
    shells = radial_index_2d(particles.box, device=device)
    low = (shells >= 2) & (shells <= max(3, particles.box // 8))
    high = (shells >= int(0.8 * (particles.box // 2))) & (shells <= particles.box // 2)
    held = held_frequencies(shells, batch.band_limits)
    if held is None:
        p_data = data.abs().pow(2)[:, low].mean() - data.abs().pow(2)[:, high].mean()
        p_pred = pred.abs().pow(2)[:, low].mean()
    else:  # each band read only where the images hold it (padded images: zeros past their own)
        low, high = held & low, held & high
        noise = data.abs().pow(2)[high].mean() if high.any() else 0.0
        p_data = data.abs().pow(2)[low].mean() - noise
        p_pred = pred.abs().pow(2)[low].mean()
    if not (p_data > 0 and p_pred > 0):
        return 1.0
    return float(torch.sqrt(p_data / p_pred))
