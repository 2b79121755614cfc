"""Do the images' Thon rings follow the metadata's CTF? A check of pixel size, voltage and defocus
against the images themselves.

Real particle images hold their CTF's rings in their power: the ice and the molecule are imaged
through it, so each image's rotationally averaged power spectrum rises and falls with ``CTF²``
(what CTFFIND fits on whole micrographs). A pixel size, voltage or defocus written wrong moves the
metadata's rings off the images'. For each of up to ``n_images`` images spread over the set:

- its power spectrum averaged in rings of half a pixel (from :data:`FIRST_RADIUS_PX` to 0.9 of
  Nyquist), divided by its own moving average over :data:`WINDOW_RINGS` rings, less one (the
  noise's smooth colour taken off, the rings kept);
- the metadata's ``CTF²`` averaged over 16 directions (astigmatism) at each ring's mean radius,
  less its own moving average;
- ``z = Σ p·c / sqrt(Σ p²c²)`` over rings and images: about a standard normal deviate where the
  power does not follow the CTF, large and positive where it does.

The same ``z`` with the pixel size scaled by 0.8–1.25 (a wrong pixel size, and to first order a
wrong voltage or a defocus off by a constant factor, which move the rings alike) says whether
another scale fits the rings better (:class:`ThonRingCheck`).

Measured (round 2, session 41) on the real particle images of ``../shared/data/particles``:
EMPIAR-10076 (7 images, box 320) z = +10.5 for its CTF, every scale 0.8–1.25 but 1 under +1.3;
the RELION 3.1 tutorial images (5, box 256) +6.9; TRPV1 (10, box 48) +7.4; beta-galactosidase (17,
box 200) +13.1 with its RELION 3.0 STAR's 1.338 Å, **+0.5 with its 3.1 STAR's 1.4 Å** and a
second optics group at 200 kV, where scales 0.95 and 1.075 reach +5.3 and +6.6. Images simulated
with noise added after the CTF (the benchmark sets, SNR 0.003) hold too little of the rings, but
their coloured noise, its spectrum measured on real images, holds rings of its own, the same in
every image: read as they are, one set (EMD-5625, 2,000 particles) reached +7.2 at scale 0.85.
Their defoci spread over thousands of Å, so they are read across images
(:data:`ACROSS_IMAGES_DEFOCUS_SD_ANGSTROM`): over 20 benchmark sets z −1.9 … +2.2 for their CTF,
at most +3.0 over the scales, and nothing is claimed below :data:`CLEAR_Z`.

A set of several optics settings (:mod:`cryosplat.particles.optics_settings`: groups of
distinct pixel size, voltage, Cs or amplitude contrast, data merged from several sessions or
microscopes) is also read setting by setting, each from its share of the ``n_images`` (at least
100): one wrong setting among right ones is named alone, and settings wrong in opposite
directions, which fit no scale read together, are each named at their own. Measured (round 2,
session 89) on the beta-galactosidase RELION 3.1 STAR (1.4 Å at 300 kV and at 200 kV): together
z = +0.5, best +6.6 at 1.075; apart, the 300 kV group −0.2 as written and +7.3 at 0.95 (1.330 Å:
its RELION 3.0 STAR says 1.338 Å), the 200 kV group +0.8 and +10.6 at 1.075.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from cryosplat.core.aberrations import magnified_frequencies
from cryosplat.core.ctf import ctf_at
from cryosplat.particles.optics_settings import optics_settings
from cryosplat.particles.particle_set import ParticleSet

__all__ = [
    "SettingCheck",
    "ThonRingCheck",
    "check_thon_rings",
    "thon_ring_agreement",
    "ctf_parameters",
    "ctf2_seen",
    "moving_average",
    "sector_ring_power",
    "shared_sample",
    "CLEAR_Z",
    "BETTER_BY_Z",
    "PIXEL_SCALES",
]

FIRST_RADIUS_PX = 4.0  # rings from this radius (pixels), below it the mask's and the box's edge
RING_STEP_PX = 0.5
WINDOW_RINGS = 11  # the moving average that takes the noise's colour off (5.5 pixels)
N_DIRECTIONS = 16  # directions the CTF² is averaged over within a ring (astigmatism)
PIXEL_SCALES = np.round(np.arange(0.8, 1.2501, 0.025), 3)
CLEAR_Z = 6.0  # z from which rings are said to follow a CTF (simulated sets reached 4.7)
BETTER_BY_Z = 5.0  # another scale fits better: this much higher z, and clear itself
# Images whose defoci spread this much (sd, Å; many micrographs) are judged on the rings that move
# with each image's defocus alone (``across_images``): rings common to every image (the benchmark
# sets' noise, its spectrum taken from real images with rings of their own) then count for
# nothing. Under it (one micrograph's particles) the rings as they are.
ACROSS_IMAGES_DEFOCUS_SD_ANGSTROM = 1000.0
# Optics settings (distinct pixel size, voltage, Cs, amplitude contrast) read apart: the largest
# MAX_SETTINGS of them share the sample, each drawing at least MIN_SETTING_SAMPLE images, and a
# setting is judged on its own from MIN_SETTING_IMAGES images.
MAX_SETTINGS = 4
MIN_SETTING_IMAGES = 5
MIN_SETTING_SAMPLE = 100


def moving_average(x: np.ndarray) -> np.ndarray:
    """Mean over :data:`WINDOW_RINGS` neighbouring rings along the last axis (fewer at the ends)."""
    half = WINDOW_RINGS // 2
    n = x.shape[-1]
    sums = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, axis=-1)], axis=-1)
    hi = np.minimum(np.arange(n) + half + 1, n)
    lo = np.maximum(np.arange(n) - half, 0)
    return (sums[..., hi] - sums[..., lo]) / (hi - lo)


def sector_ring_power(
    particles: ParticleSet, indices: np.ndarray, sectors: int = 1, chunk: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each image's power in ``sectors`` directions over half a turn (the power of a real image is
    even) by rings of :data:`RING_STEP_PX` (N, S, R), and each cell's mean radius (pixels) and
    mean direction (radians from the image x axis), (S, R); rings some direction holds no pixel
    of are left out. The images are read and transformed ``chunk`` at a time (memory bounded at
    any box)."""
    box = particles.box
    y, x = np.indices((box, box)) - box // 2
    radius = np.sqrt(x**2 + y**2)
    direction = np.mod(np.arctan2(y, x), np.pi)
    ring = np.floor((radius - FIRST_RADIUS_PX) / RING_STEP_PX).astype(int)
    n_rings = int((0.9 * (box // 2) - FIRST_RADIUS_PX) / RING_STEP_PX)
    sector = np.minimum((direction / np.pi * sectors).astype(int), sectors - 1)
    inside = (ring >= 0) & (ring < n_rings)
    cell = (sector * n_rings + ring)[inside]
    size = sectors * n_rings
    counts = np.bincount(cell, minlength=size)
    held = np.maximum(counts, 1)
    mean_radius = np.bincount(cell, radius[inside], minlength=size) / held
    mean_direction = np.bincount(cell, direction[inside], minlength=size) / held
    kept = (counts.reshape(sectors, n_rings) > 0).all(axis=0)
    rows = []
    for start in range(0, len(indices), chunk):
        images = particles.read_images(indices[start : start + chunk]).astype(np.float64)
        images -= images.mean(axis=(1, 2), keepdims=True)
        power = np.abs(np.fft.fftshift(np.fft.fft2(images), axes=(1, 2))) ** 2
        rows += [np.bincount(cell, p[inside], minlength=size) / held for p in power]

    def cells(values: np.ndarray) -> np.ndarray:
        return values.reshape(*values.shape[:-1], sectors, n_rings)[..., kept]

    return cells(np.stack(rows)), cells(mean_radius), cells(mean_direction)


def shared_sample(
    particles: ParticleSet,
    rows: np.ndarray,
    labels: np.ndarray,
    n_images: int,
    most: int,
    least: int,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Up to ``n_images`` of ``rows`` spread over them; where their ``labels`` (one per row: an
    optics setting, an optics group) take several values, the ``most`` largest share them (at
    least ``least`` images each), label by label in order, with each label's count."""
    present, counts = np.unique(labels, return_counts=True)
    if len(present) < 2:
        return particles.spread_rows_of(rows, n_images), []
    largest = np.sort(present[np.argsort(-counts, kind="stable")[:most]])
    each = max(least, n_images // len(largest))
    chosen = [particles.spread_rows_of(rows[labels == g], each) for g in largest]
    return np.concatenate(chosen), [(int(g), len(c)) for g, c in zip(largest, chosen, strict=True)]


def ctf_parameters(particles: ParticleSet, indices: np.ndarray) -> dict[str, torch.Tensor]:
    """The metadata's CTF of the particles ``indices`` as float64 tensors for
    :func:`~cryosplat.core.ctf.ctf_at`: each field (N, 1, 1), the even Zernike terms (N, 1, 1, J)
    where the metadata hold them."""
    rows = torch.as_tensor(indices)
    fields = particles.ctf.as_tensors(dtype=torch.float64).items()
    params = {name: value[rows].reshape(-1, 1, 1) for name, value in fields}
    if particles.ctf.even_zernike is not None:
        even = torch.as_tensor(particles.ctf.even_zernike[indices], dtype=torch.float64)
        params["even_zernike"] = even.reshape(len(indices), 1, 1, -1)
    return params


def ctf2_seen(
    particles: ParticleSet,
    indices: np.ndarray,
    params: dict[str, torch.Tensor],
    k: torch.Tensor,
    theta: torch.Tensor,
) -> torch.Tensor:
    """``CTF²`` of the particles ``indices`` (``params`` from :func:`ctf_parameters`, perhaps
    altered) at frequencies ``k`` (1/Å) in directions ``theta`` (radians from the image x axis),
    both broadcasting against (N, A, R); an image seen through its magnification matrix ``M``
    holds its CTF at ``M k``."""
    k2 = k**2
    if particles.mag_matrices is not None:
        m = torch.as_tensor(particles.mag_matrices[indices], dtype=torch.float64)[:, None, None]
        kx, ky = magnified_frequencies(m, k * torch.cos(theta), k * torch.sin(theta))
        k2, theta = kx**2 + ky**2, torch.atan2(ky, kx)
    return ctf_at(k2, theta, params) ** 2


def _ctf2_on_rings(particles: ParticleSet, indices: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The metadata's ``CTF²`` of each particle at frequencies ``k`` (1/Å, shape (N, R)),
    averaged over :data:`N_DIRECTIONS` directions: (N, R)."""
    theta = torch.linspace(0.0, np.pi, N_DIRECTIONS + 1, dtype=torch.float64)[:-1][None, :, None]
    k = torch.as_tensor(k, dtype=torch.float64)[:, None, :]
    params = ctf_parameters(particles, indices)
    return ctf2_seen(particles, indices, params, k, theta).mean(dim=1).numpy()


def thon_ring_agreement(
    ring_power: np.ndarray, ctf2: np.ndarray, across_images: bool = False
) -> float:
    """``z`` of the images' ring power (N, R) against ``CTF²`` on the same rings (N, R): both less
    their moving average (the power divided by it first), then ``Σ p·c / sqrt(Σ p²c²)``
    (module docstring); 0 where nothing varies. ``across_images``: both less their mean over
    the images first, so that only rings that move with each image's own defocus count. Rings in
    several directions (N, S, R) are read alike, and ``ctf2`` may be a difference of two
    ``CTF²`` (:mod:`cryosplat.particles.astigmatism_check`: which of two fits better)."""
    p = ring_power / moving_average(ring_power) - 1.0
    c = ctf2 - moving_average(ctf2)
    if across_images:
        p, c = p - p.mean(axis=0), c - c.mean(axis=0)
    spread = float(np.sqrt(np.sum(p**2 * c**2)))
    return float(np.sum(p * c) / spread) if spread > 0 else 0.0


@dataclass(frozen=True)
class ThonRingCheck:
    """The images' rings against the metadata's CTF (``z_given``) and with the pixel size scaled
    by each of ``scales`` (``z_scaled``), over ``n_images`` images; ``settings``: the same for
    each optics setting read apart, where the set holds several
    (:func:`~cryosplat.particles.optics_settings.optics_settings`)."""

    n_images: int
    z_given: float
    scales: np.ndarray
    z_scaled: np.ndarray
    across_images: bool = False
    settings: tuple[SettingCheck, ...] = ()

    @property
    def best_scale(self) -> float:
        return float(self.scales[int(np.argmax(self.z_scaled))])

    @property
    def z_best(self) -> float:
        return float(np.max(self.z_scaled))

    @property
    def own_verdict(self) -> str:
        """The verdict of these images read together (:attr:`verdict` without the settings)."""
        away = abs(self.best_scale - 1.0) >= 0.0249
        if away and self.z_best >= CLEAR_Z and self.z_best >= self.z_given + BETTER_BY_Z:
            return "mismatch"
        return "agree" if self.z_given >= CLEAR_Z else "weak"

    @property
    def verdict(self) -> str:
        """``"mismatch"``: another pixel scale fits the rings clearly better than the metadata's
        CTF (by :data:`BETTER_BY_Z`, at :data:`CLEAR_Z` or more, 2.5 % or more away), for the
        images together or for one optics setting's; ``"agree"``: the metadata's CTF fits them
        clearly (:data:`CLEAR_Z`); ``"weak"``: the rings are too faint to say (simulated images,
        or too few)."""
        if any(s.check.own_verdict == "mismatch" for s in self.settings):
            return "mismatch"
        return self.own_verdict

    def _finding(self, pixel_size_angstrom: float) -> str:
        given = f"z = {self.z_given:+.1f} for the metadata's CTF ({self.n_images} images)"
        if self.own_verdict != "mismatch":
            return given
        return (
            f"{given}, {self.z_best:+.1f} with the pixel size {self.best_scale:g} times it "
            f"({self.best_scale * pixel_size_angstrom:.3f} Å)"
        )

    def describe(self, pixel_size_angstrom: float) -> str:
        """One line for ``cryosplat info`` and the log."""
        if self.settings:
            return self._describe_settings()
        if self.verdict == "mismatch":
            return (
                "the images' Thon rings do not follow the metadata's CTF: "
                f"{self._finding(pixel_size_angstrom)}; {WRONG_CTF_COST}"
            )
        if self.verdict == "agree":
            return f"the images' Thon rings follow the metadata's CTF: {self._finding(0.0)}"
        return (
            f"the images' Thon rings are too faint to check the CTF against: "
            f"{self._finding(0.0)} (clear from {CLEAR_Z:g}; simulated images hold none)"
        )

    def _describe_settings(self) -> str:
        words = {"mismatch": "do not follow", "agree": "follow", "weak": "too faint for"}
        parts = [
            f"{s.name} ({s.pixel_size_angstrom:g} Å, {s.voltage_kv:g} kV): "
            f"{words[s.check.own_verdict]} it, {s.check._finding(s.pixel_size_angstrom)}"
            for s in self.settings
        ]
        wrong = sum(s.check.own_verdict == "mismatch" for s in self.settings)
        if self.verdict == "mismatch":
            head = (
                f"the images' Thon rings do not follow the metadata's CTF in {wrong} of "
                f"{len(self.settings)} optics settings read apart"
            )
            return f"{head}: {'; '.join(parts)}; {WRONG_CTF_COST}"
        verdict = {"agree": "follow the metadata's CTF", "weak": "are too faint to check"}
        return (
            f"the images' Thon rings {verdict[self.verdict]} (z = {self.z_given:+.1f}, "
            f"{self.n_images} images); by optics setting: {'; '.join(parts)}"
        )


@dataclass(frozen=True)
class SettingCheck:
    """The check of one optics setting's images: ``name`` lists its optics groups."""

    name: str
    pixel_size_angstrom: float
    voltage_kv: float
    check: ThonRingCheck


WRONG_CTF_COST = (
    "a pixel size, voltage or defocus written wrong (e.g. the pixel size of unbinned images "
    "given to binned ones) costs the map its resolution"
)


def _sample(particles: ParticleSet, n_images: int) -> tuple[np.ndarray, list]:
    """Up to ``n_images`` images spread over the set; where it holds several optics settings, the
    :data:`MAX_SETTINGS` largest share them (at least :data:`MIN_SETTING_SAMPLE` each: real
    images' rings give z ≥ 7 from 8 images) and are read apart."""
    setting, named = optics_settings(particles)
    rows = np.arange(len(particles))
    indices, parts = shared_sample(
        particles, rows, setting, n_images, MAX_SETTINGS, MIN_SETTING_SAMPLE
    )
    return indices, [(named[s], n) for s, n in parts]


def check_thon_rings(particles: ParticleSet, n_images: int = 300) -> ThonRingCheck | None:
    """Read up to ``n_images`` images spread over the set (shared by its optics settings, where
    it holds several) and check their rings against the metadata's CTF and scaled pixel sizes
    (module docstring); None without a CTF or with images smaller than 24 pixels."""
    if particles.ctf is None or particles.box < 24 or len(particles) == 0:
        return None
    indices, settings = _sample(particles, n_images)
    power, radius_px, _ = sector_ring_power(particles, indices)
    rings, radius_px = power[:, 0], radius_px[0]
    pixel = particles.pixel_sizes_angstrom(indices)[:, None]
    k = radius_px[None, :] / (particles.box * pixel)
    ctf = particles.ctf
    mean_defocus = 0.5 * (ctf.defocus_u_angstrom + ctf.defocus_v_angstrom)[indices]
    ctf2 = [_ctf2_on_rings(particles, indices, k / s) for s in PIXEL_SCALES]
    given = int(np.flatnonzero(PIXEL_SCALES == 1.0)[0])  # 1.0 among them: the CTF as given

    def scan(rows: slice) -> ThonRingCheck:
        across = bool(np.std(mean_defocus[rows]) >= ACROSS_IMAGES_DEFOCUS_SD_ANGSTROM)
        z = np.array([thon_ring_agreement(rings[rows], c[rows], across) for c in ctf2])
        n = len(mean_defocus[rows])
        return ThonRingCheck(n, float(z[given]), PIXEL_SCALES.copy(), z, across)

    starts = np.cumsum([0] + [n for _, n in settings])
    parts = tuple(
        SettingCheck(g.name, g.pixel_size_angstrom, g.voltage_kv, scan(slice(a, a + n)))
        for (g, n), a in zip(settings, starts, strict=False)
        if n >= MIN_SETTING_IMAGES
    )
    whole = scan(slice(None))
    return replace(whole, settings=parts if len(parts) > 1 else ())
