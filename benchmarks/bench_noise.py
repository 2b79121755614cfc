"""The noise of the benchmark sets: white or coloured as real particle images are, each image's
level spread as ice of differing thickness gives, and a linear background ramp across each image.

The coloured model takes the radial power spectrum of a real particle stack
(:func:`coloured_noise_profile`; by default ``particles/betagal_17/sample.mrcs``, nearly all
noise). The ramp (round 2, session 70) is what extracted particles keep of a background that
varies over the micrograph (ice thickness, a carbon edge): the extraction's normalisation takes
off each image's mean in its background, not its slope, so the image's first Fourier shell holds
power that is neither the molecule's nor the detector's noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryosplat.io.mrc import MRCStack
from cryosplat.io.stack_writer import StreamingStackWriter

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NOISE_SOURCE = "particles/betagal_17/sample.mrcs"  # coloured noise: this stack's spectrum
BATCH = 1000


def coloured_noise_profile(box: int, source: Path | None = None) -> np.ndarray:
    """Radial noise power (mean 1 over the ``box²`` Fourier grid), shaped as real particle images'.

    The mean power spectrum of ``particles/betagal_17/sample.mrcs`` (17 beta-galactosidase
    particles of 200², nearly all noise; each image less its mean), averaged in one-pixel shells,
    is resampled to ``box`` by the fraction of Nyquist (the detector's and the ice's shape over the
    image's frequency band) and returned as a (box, box) array on the centred grid.
    """
    stack = MRCStack(SHARED / NOISE_SOURCE if source is None else source)
    images = stack.read(np.arange(stack.n_images)).astype(np.float64)
    images -= images.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fftshift(np.fft.fft2(images), axes=(1, 2))) ** 2).mean(axis=0)
    d0 = stack.box
    yy, xx = np.indices((d0, d0)) - d0 // 2
    r0 = np.hypot(yy, xx).round().astype(int)
    radial = np.bincount(r0.ravel(), power.ravel()) / np.bincount(r0.ravel())
    radial[0] = radial[1]  # the images' mean was removed; the zero frequency takes its neighbour's
    frac0 = np.arange(len(radial)) / (d0 / 2)
    yy, xx = np.indices((box, box)) - box // 2
    frac = np.hypot(yy, xx) / (box / 2)
    profile = np.interp(frac, frac0, radial)
    return profile / profile.mean()


class BackgroundRamps:
    """Linear ramps through zero at pixel ``box // 2``, one per image, each along a uniformly
    random direction, whose value at the box's edge (``box / 2`` pixels out) is normal with
    s.d. ``ramp_sd``: the directions and edge values drawn for all images at once, the ramps made
    for a batch of them at a time (:meth:`rows`; a stack of 40,000 at box 256 would be 10 GB)."""

    def __init__(self, n_images: int, box: int, ramp_sd: float, rng: np.random.Generator) -> None:
        if not ramp_sd >= 0:
            raise ValueError(f"ramp_sd must be non-negative, got {ramp_sd}")
        self.angle = rng.uniform(0.0, 2.0 * np.pi, n_images)
        self.edge = rng.standard_normal(n_images) * ramp_sd
        self.yy, self.xx = (np.indices((box, box)) - box // 2) / (box / 2)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """The ramps of images ``start`` to ``stop``, ``(stop − start, box, box)`` float32."""
        angle = self.angle[start:stop, None, None]
        along = np.cos(angle) * self.xx + np.sin(angle) * self.yy
        return (self.edge[start:stop, None, None] * along).astype(np.float32)


def background_ramps(
    n_images: int, box: int, ramp_sd: float, rng: np.random.Generator
) -> np.ndarray:
    """All ``n_images`` ramps of :class:`BackgroundRamps` at once, ``(n, box, box)`` float32."""
    return BackgroundRamps(n_images, box, ramp_sd, rng).rows(0, n_images)


def add_noise(
    clean: MRCStack,
    out: Path,
    noise_sd: float,
    pixel: float,
    seed: int,
    noise: str = "white",
    source: str = NOISE_SOURCE,
    spread: float = 0.0,
    ramp_sd: float = 0.0,
) -> None:
    """Write ``clean`` plus noise of s.d. ``noise_sd`` (white, or ``"coloured"`` as ``source``'s
    spectrum) to ``out``; each image's level times ``exp(spread·z − spread²)`` (``z`` standard
    normal), and plus a :class:`BackgroundRamps` ramp of ``ramp_sd`` noise s.d.s where positive.
    Each part draws from its own stream, so the rest is the same with or without it."""
    rng = np.random.default_rng([seed, 7])
    ramps = None
    if ramp_sd > 0:
        ramps = BackgroundRamps(
            clean.n_images, clean.box, ramp_sd, np.random.default_rng([seed, 13])
        )
    level = np.ones(clean.n_images)
    if spread > 0:
        z = np.random.default_rng([seed, 11]).standard_normal(clean.n_images)
        level = np.exp(spread * z - spread**2)
    amplitude = None
    if noise == "coloured":
        amplitude = np.fft.ifftshift(np.sqrt(coloured_noise_profile(clean.box, SHARED / source)))
    elif noise != "white":
        raise ValueError(f"noise must be 'white' or 'coloured', got {noise!r}")
    writer = StreamingStackWriter(out, clean.n_images, clean.box, pixel)
    for start in range(0, clean.n_images, BATCH):
        images = clean.read(np.arange(start, min(clean.n_images, start + BATCH)))
        white = rng.standard_normal(images.shape, dtype=np.float32)
        if amplitude is not None:
            white = np.fft.ifft2(np.fft.fft2(white) * amplitude).real.astype(np.float32)
        levels = level[start : start + len(images), None, None].astype(np.float32)
        noisy = images + noise_sd * levels * white
        if ramps is not None:
            noisy += noise_sd * ramps.rows(start, start + len(images))
        writer.write(noisy)
    writer.close()
