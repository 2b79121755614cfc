"""The noise of the benchmark sets: white or coloured as real particle images are, each image's
level spread as ice of differing thickness gives, and a linear background ramp across each image.

The coloured model takes the radial power spectrum of a real particle stack
(:func:`coloured_noise_profile`; by default ``particles/betagal_17/sample.mrcs``, nearly all
noise). The ramp (round 2, session 70) is what extracted particles keep of a background that
varies over the micrograph (ice thickness, a carbon edge): the extraction's normalisation takes
off each image's mean in its background, not its slope, so the image's first Fourier shell holds
power that is neither the molecule's nor the detector's noise.

Two more (round 2, session 72): noise whose power depends on the direction in the image as well
as on the frequency (a detector's rows and columns, a residual drift, are fixed in the
micrograph's frame, and particles are extracted in that frame), and hot pixels — a few pixels per
image far outside the noise, as a detector's defects and dust leave where the extraction removed
none (RELION's extraction removes them only when asked).

One more (round 2, session 73): carbon edges. Particles picked near a hole's edge hold part of
the support film: on one side of a straight edge across the box, the film's extra density (a step
in the background, bright as the protein is in RELION's convention) and its own texture (more
noise of the same spectrum), with the molecule on the ice side (:class:`CarbonEdges`).

One more (round 2, session 74): ice contamination. A grain of ice (or ethane, or an aggregate)
lying near a particle puts part of a round, dense blob in the box: a dome (a ball's projected
thickness) centred outside the molecule, its edge entering the box from one side
(:class:`IceBlobs`).

One more (round 2, session 75): particles at a micrograph's edge. A particle picked within half a
box of the edge is extracted with part of its box outside the micrograph; ``relion_preprocess``
fills those pixels "with the nearest ones inside", so a strip of the box repeats the micrograph's
last column (or row) across its width: no noise of its own there, and the molecule's delocalised
signal replaced by a streak (:class:`MicrographEdges`).
"""

from __future__ import annotations

from dataclasses import dataclass
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


# The carbon's own texture: noise of the set's spectrum, this many of its noise s.d.s, on the
# carbon's side of the edge.
CARBON_TEXTURE_SD = 0.5


class IceBlobs:
    """Part of a round blob of contamination in a share of the images (:class:`NoiseModel`'s
    ``ice_blobs``): a ball's projected thickness, ``sqrt(1 − (r/ρ)²)`` inside radius ``ρ``
    (uniform in 0.15–0.35 of the box), centred along a uniformly random direction ``0.55–0.85`` of
    the box from pixel ``box // 2`` (so it reaches no nearer than 0.2 of the box: the molecule
    itself is clear of it). At its thickest the blob adds ``step`` noise s.d.s to the background
    and, in proportion to its thickness, :data:`CARBON_TEXTURE_SD` of noise. Drawn for all images
    at once (:meth:`thickness`: each pixel's share of the blob's peak, for a batch of them)."""

    def __init__(self, n_images: int, box: int, fraction: float, rng: np.random.Generator) -> None:
        self.holds = rng.random(n_images) < fraction
        self.angle = rng.uniform(0.0, 2.0 * np.pi, n_images)
        self.distance = rng.uniform(0.55, 0.85, n_images) * box
        self.radius = rng.uniform(0.15, 0.35, n_images) * box
        self.yy, self.xx = np.indices((box, box)) - box // 2

    def thickness(self, start: int, stop: int) -> np.ndarray:
        """The blob's thickness at each pixel over its peak, ``(stop − start, box, box)``
        float32 (0 outside it, 1 at its centre)."""
        angle = self.angle[start:stop, None, None]
        distance = self.distance[start:stop, None, None]
        r = np.hypot(self.xx - distance * np.cos(angle), self.yy - distance * np.sin(angle))
        inside = np.clip(1.0 - (r / self.radius[start:stop, None, None]) ** 2, 0.0, None)
        return (np.sqrt(inside) * self.holds[start:stop, None, None]).astype(np.float32)


class CarbonEdges:
    """A support film's edge across a share of the images (:class:`NoiseModel`'s
    ``carbon_edges``): a straight edge along a uniformly random direction, at a distance from pixel
    ``box // 2`` drawn uniformly from 0.2 to 0.45 of the box (the molecule on the ice side), soft
    over two pixels (a raised cosine); past it the film adds ``step`` noise s.d.s to the
    background and :data:`CARBON_TEXTURE_SD` of noise. Drawn for all images at once
    (:meth:`film`: each image's share of the film, 0 to 1, for a batch of them)."""

    def __init__(self, n_images: int, box: int, fraction: float, rng: np.random.Generator) -> None:
        self.holds = rng.random(n_images) < fraction
        self.angle = rng.uniform(0.0, 2.0 * np.pi, n_images)
        self.distance = rng.uniform(0.2, 0.45, n_images) * box
        self.yy, self.xx = np.indices((box, box)) - box // 2

    def film(self, start: int, stop: int) -> np.ndarray:
        """How much of each pixel lies on the film, ``(stop − start, box, box)`` float32 (0 on
        the ice, 1 on the film)."""
        angle = self.angle[start:stop, None, None]
        along = np.cos(angle) * self.xx + np.sin(angle) * self.yy
        past = along - self.distance[start:stop, None, None]  # pixels past the edge
        film = 0.5 + 0.5 * np.sin(np.clip(past, -1.0, 1.0) * np.pi / 2.0)
        return (film * self.holds[start:stop, None, None]).astype(np.float32)


class MicrographEdges:
    """Particles whose box crosses a micrograph's edge, extracted as ``relion_preprocess`` does
    (:class:`NoiseModel`'s ``micrograph_edges``): the pixels past the edge take the value of the
    nearest pixel inside, so a strip of ``w`` columns (or rows) repeats the last one inside.
    Each such particle's strip is on one of the box's four sides at random, ``w`` uniform in
    ``1 .. depth · box`` pixels; a fifth of them lie at a micrograph's corner and get a second
    strip on a perpendicular side (columns first, then rows, as RELION fills them)."""

    CORNER_SHARE = 0.2

    def __init__(
        self, n_images: int, box: int, fraction: float, depth: float, rng: np.random.Generator
    ) -> None:
        holds = rng.random(n_images) < fraction
        widest = min(box // 2, max(1, int(round(depth * box))))
        self.width = rng.integers(1, widest + 1, size=(n_images, 2))  # columns, rows
        self.high_side = rng.random((n_images, 2)) < 0.5  # the strip at the box's far end
        self.cut = np.zeros((n_images, 2), dtype=bool)
        self.cut[np.arange(n_images), rng.integers(0, 2, n_images)] = True
        self.cut[rng.random(n_images) < self.CORNER_SHARE] = True
        self.cut &= holds[:, None]

    def fill(self, images: np.ndarray, start: int) -> None:
        """Fill the strips of images ``start, start + 1, ...`` (``images``, ``(n, box, box)``,
        changed in place) with the nearest pixels inside the micrograph."""
        for i in np.flatnonzero(self.cut[start : start + len(images)].any(axis=1)):
            n = start + i
            for axis in (0, 1):  # columns (x), then rows (y)
                if not self.cut[n, axis]:
                    continue
                view = images[i] if axis == 0 else images[i].T
                w = int(self.width[n, axis])
                if self.high_side[n, axis]:
                    view[:, -w:] = view[:, -w - 1 : -w]
                else:
                    view[:, :w] = view[:, w : w + 1]


@dataclass(frozen=True)
class NoiseModel:
    """How a set's noise is made.

    Parameters
    ----------
    kind : str
        ``"white"`` or ``"coloured"`` (``source``'s radial spectrum, :func:`coloured_noise_profile`).
    source : str
        Particle stack (relative to ``shared/data``) whose spectrum colours the noise.
    spread : float
        Each image's level times ``exp(spread·z − spread²)`` (``z`` standard normal, one per
        image), which keeps the mean noise variance; 0: one level.
    ramp_sd : float
        Each image plus a :class:`BackgroundRamps` ramp of this many noise s.d.s; 0: none.
    anisotropy : float
        In [0, 1): the noise power at frequency direction ``θ`` (from the images' x axis) times
        ``1 + anisotropy·cos 2θ``, the same for every image (:func:`noise_amplitude`); the power of
        each shell and in all is kept. 0: the same in every direction.
    hot_pixels : (fraction, sd)
        That share of the pixels, at random in each image, plus a normal value of ``sd`` times
        the noise s.d. (independent of the image's level); (0, 0): none.
    carbon_edges : (fraction, step)
        That share of the images, at random, hold a support film's edge (:class:`CarbonEdges`)
        whose film adds ``step`` noise s.d.s to the background; (0, 0): none.
    ice_blobs : (fraction, step)
        That share of the images, at random, hold part of a blob of contamination
        (:class:`IceBlobs`) adding up to ``step`` noise s.d.s at its thickest; (0, 0): none.
    micrograph_edges : (fraction, depth)
        That share of the images, at random, cross a micrograph's edge by up to ``depth`` of the
        box, filled as RELION fills them (:class:`MicrographEdges`); (0, 0): none.
    """

    kind: str = "white"
    source: str = NOISE_SOURCE
    spread: float = 0.0
    ramp_sd: float = 0.0
    anisotropy: float = 0.0
    hot_pixels: tuple[float, float] = (0.0, 0.0)
    carbon_edges: tuple[float, float] = (0.0, 0.0)
    ice_blobs: tuple[float, float] = (0.0, 0.0)
    micrograph_edges: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if self.kind not in ("white", "coloured"):
            raise ValueError(f"noise must be 'white' or 'coloured', got {self.kind!r}")
        if not 0.0 <= self.anisotropy < 1.0:
            raise ValueError(f"anisotropy must lie in [0, 1), got {self.anisotropy}")
        fraction, sd = self.hot_pixels
        if not (0.0 <= fraction <= 1.0 and sd >= 0.0):
            raise ValueError(
                f"hot_pixels must be (fraction in [0, 1], sd ≥ 0), got {self.hot_pixels}"
            )
        fraction, step = self.carbon_edges
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"carbon_edges' fraction must lie in [0, 1], got {self.carbon_edges}")
        if not 0.0 <= self.ice_blobs[0] <= 1.0:
            raise ValueError(f"ice_blobs' fraction must lie in [0, 1], got {self.ice_blobs}")
        fraction, depth = self.micrograph_edges
        if not (0.0 <= fraction <= 1.0 and 0.0 <= depth <= 0.5):
            raise ValueError(
                "micrograph_edges must be (fraction in [0, 1], depth in [0, 0.5] of the box), "
                f"got {self.micrograph_edges}"
            )


def noise_amplitude(box: int, model: NoiseModel) -> np.ndarray | None:
    """The noise's amplitude filter on the FFT grid ``(box, box)`` (``fft2``'s order): the
    square root of the model's power (coloured and/or anisotropic, mean 1 over the grid, each
    shell's mean power about as without the anisotropy); None for white noise in every direction."""
    if model.kind == "white" and model.anisotropy == 0:
        return None
    power = np.ones((box, box))
    if model.kind == "coloured":
        power = coloured_noise_profile(box, SHARED / model.source)
    if model.anisotropy:
        yy, xx = np.indices((box, box)) - box // 2
        power = power * (1.0 + model.anisotropy * np.cos(2.0 * np.arctan2(yy, xx)))
        power /= power.mean()
    return np.fft.ifftshift(np.sqrt(power))


def _textured(
    rng: np.random.Generator, shape: tuple[int, ...], amplitude: np.ndarray | None
) -> np.ndarray:
    """Unit noise of the set's spectrum (``amplitude``, :func:`noise_amplitude`; None: white)."""
    texture = rng.standard_normal(shape, dtype=np.float32)
    if amplitude is not None:
        texture = np.fft.ifft2(np.fft.fft2(texture) * amplitude).real.astype(np.float32)
    return texture


def add_noise(
    clean: MRCStack,
    out: Path,
    noise_sd: float,
    pixel: float,
    seed: int,
    model: NoiseModel = NoiseModel(),
) -> None:
    """Write ``clean`` plus noise of s.d. ``noise_sd`` made as ``model`` says to ``out``.

    Each part (the noise, the levels, the ramps, the hot pixels, the carbon edges, the ice blobs,
    the micrograph's edges) draws from its own stream, so the rest is the same with or without
    it. The micrograph's edges are filled last, from all the rest, as extraction reads them.
    """
    rng = np.random.default_rng([seed, 7])
    ramps = None
    if model.ramp_sd > 0:
        ramps = BackgroundRamps(
            clean.n_images, clean.box, model.ramp_sd, np.random.default_rng([seed, 13])
        )
    level = np.ones(clean.n_images)
    if model.spread > 0:
        z = np.random.default_rng([seed, 11]).standard_normal(clean.n_images)
        level = np.exp(model.spread * z - model.spread**2)
    hot_rng = np.random.default_rng([seed, 59])
    carbon, texture_rng = None, np.random.default_rng([seed, 71])
    if model.carbon_edges[0] > 0:
        carbon = CarbonEdges(
            clean.n_images, clean.box, model.carbon_edges[0], np.random.default_rng([seed, 67])
        )
    blobs, blob_texture_rng = None, np.random.default_rng([seed, 79])
    if model.ice_blobs[0] > 0:
        blobs = IceBlobs(
            clean.n_images, clean.box, model.ice_blobs[0], np.random.default_rng([seed, 73])
        )
    edges = None
    if model.micrograph_edges[0] > 0:
        edges = MicrographEdges(
            clean.n_images, clean.box, *model.micrograph_edges, np.random.default_rng([seed, 83])
        )
    amplitude = noise_amplitude(clean.box, model)
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
        fraction, sd = model.hot_pixels
        if fraction > 0:
            hot = hot_rng.random(images.shape) < fraction
            noisy[hot] += (noise_sd * sd * hot_rng.standard_normal(int(hot.sum()))).astype(
                np.float32
            )
        if carbon is not None:
            film = carbon.film(start, start + len(images))
            texture = _textured(texture_rng, images.shape, amplitude)
            step = np.float32(model.carbon_edges[1])
            noisy += noise_sd * film * (step + np.float32(CARBON_TEXTURE_SD) * texture)
        if blobs is not None:
            blob = blobs.thickness(start, start + len(images))
            texture = _textured(blob_texture_rng, images.shape, amplitude)
            step = np.float32(model.ice_blobs[1])
            noisy += noise_sd * blob * (step + np.float32(CARBON_TEXTURE_SD) * texture)
        if edges is not None:
            edges.fill(noisy, start)
        writer.write(noisy)
    writer.close()
