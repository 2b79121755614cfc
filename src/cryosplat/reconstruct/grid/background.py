"""The images' background level: measured in the statistics pass, taken off their zero frequency
where it is too large to be the molecule's.

Normalised particle images (``relion_preprocess --norm``, and RELION's and cryoSPARC's extraction)
have a background of mean zero. Images whose background is not at zero (a constant left by another
extraction, a simulation's offset, counts) add ``c·D²`` to their zero frequency alone (the
transform of a constant over the box is its zero frequency); the statistics carry it to the map's
zero frequency divided by ``CTF(0) ≈ −Q``, and a mixture of Gaussians fitted to that mass puts it
everywhere. Measured on EMD-5625 (box 56, 4,000 particles, white noise; round 2, session 40): an
offset of 3 % of the noise's standard deviation in every image took the map's FSC with the truth
at 0.5 from 18.13 to 20.11 Å, 10 % to 22.11 Å, twice the noise's sd to 109 Å (reported 26 Å),
while ``relion_reconstruct``'s map stayed at 21.79 Å.

The level is measured in the corners (pixels at least ``D/2`` from the centre ``D//2``) as the
mean over the pass's images of each image's corner mean. Where it exceeds :data:`TAKE_OFF_FRACTION`
of the corners' noise sd, the pass's sums are made those of the images less it (the zero frequency
of ``B`` less ``c·D²·Σ amplitude·CTF(0)``, the data power's first value to match: exactly as if
``c`` had been subtracted from every pixel; one level for the pass, since a level per image would
add its noise to each image's zero frequency, and offsets that vary with zero mean cost nothing
measurable: 18.03 Å with one of half the noise's sd per image), with a warning. Below it the level
is left, and logged: a molecule's own density reaches the corners (the projection of a map whose
edge is not at zero, the CTF's delocalised signal), and there the zero frequency as it is holds the
map's mass better than the same frequency taken to a zero background. On the 34 benchmark sets
(levels 0.00-1.3 % of the noise's sd) taking every level off moved the 0.5 crossings by 0.00 % on
average but cost the EMD-6824 sets, whose truth is negative at the box's edge (−1.3 %), 0.5-1.1 %
at 0.5 and raised their lowest shells' deficit under the better peer from 0.001-0.008 to
0.010-0.020; dropping the zero frequency altogether (as relion's map does) cost EMD-1832 1.3-1.6 %
over three seeds.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np
import torch

from cryosplat.core.fourier import squared_radius
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.statistics import FourierStatistics

__all__ = [
    "BackgroundMeter",
    "corner_pixels",
    "remove_background",
    "scaled_for_expansion",
    "background_level",
    "measure_background",
    "TAKE_OFF_FRACTION",
    "level_to_take_off",
]

log = logging.getLogger("cryosplat")

# A level above this fraction of the corners' noise sd is taken off (with a warning: the images
# were probably not normalised); below it, left and logged. The benchmark sets: 0.0000-0.013; an
# offset of 0.03 costs EMD-5625 11 % at 0.5.
TAKE_OFF_FRACTION = 0.02

# The sums, in order: images, Σ corner means, Σ corner variances (each image's own), Σ a·CTF(0)
# (B's zero frequency per unit of level and D², times the insertions per image), Σ a² and
# Σ a·Y(0) (the data power's zero frequency), a the optics group's amplitude factor.
_N, _MEAN, _VAR, _DC, _A2, _AY = range(6)
N_SUMS = 6


def corner_pixels(box: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The corners of a ``D × D`` image, flat (D²,) bool: pixels at least ``D/2`` from its
    centre ``D//2``, where a centred molecule puts least of itself."""
    r2 = squared_radius(box, 2, device=device, dtype=torch.float64)
    return (r2 >= (box / 2) ** 2).reshape(-1)


class BackgroundMeter:
    """The pass's background sums, as a (6,) float64 tensor (saved with a partial pass).

    Parameters
    ----------
    box : int
    device : torch.device
    """

    def __init__(self, box: int, device: torch.device) -> None:
        self.corners = corner_pixels(box, device)
        self.sums = torch.zeros(N_SUMS, dtype=torch.float64, device=device)

    def add_images(self, images: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Count the corners of a batch ``(B, D, D)`` of images as stored (before any shift),
        but those of weight 0 (``weights`` (B,): left out of the statistics)."""
        corners = images.reshape(images.shape[0], -1)[:, self.corners].double()
        if weights is not None:
            corners = corners[weights > 0]
        if corners.shape[0] == 0:  # a batch wholly left out (PyTorch warns on an empty var)
            return
        self.sums[_N] += corners.shape[0]
        self.sums[_MEAN] += corners.mean(dim=1).sum()
        self.sums[_VAR] += corners.var(dim=1, correction=0).sum()

    def add_zero_frequency(
        self,
        amplitude: float,
        factor: torch.Tensor,
        spectra: torch.Tensor,
        insertions: int,
        weights: torch.Tensor | None = None,
    ) -> None:
        """Count a group of images: ``factor`` (B,) the CTF (or its stand-in) at the zero
        frequency, ``spectra`` (B,) their zero-frequency samples as inserted (amplitude applied),
        each inserted ``insertions`` times (pose expansion), each weighed by ``weights`` (B,)
        in the sums as in the statistics (:mod:`cryosplat.reconstruct.grid.noise_levels`; 1 by
        default)."""
        w = torch.ones_like(factor, dtype=torch.float64) if weights is None else weights.double()
        self.sums[_DC] += insertions * amplitude * (w * factor.double()).sum()
        self.sums[_A2] += insertions * amplitude**2 * w.sum()
        self.sums[_AY] += insertions * amplitude * (w * spectra.real.double()).sum()


def scaled_for_expansion(sums: torch.Tensor, copies: int) -> torch.Tensor:
    """The sums of a pass whose grids were then symmetrised over ``copies`` operators (each image
    in them ``copies`` times: its zero frequency too; the images themselves once)."""
    scaled = sums.clone()
    scaled[[_DC, _A2, _AY]] *= copies
    return scaled


def level_to_take_off(sums: torch.Tensor) -> tuple[float, float, bool]:
    """``(level, share of the noise's sd, take it off)`` from a meter's sums."""
    s = sums.double().cpu().tolist()
    if s[_N] <= 0:
        return 0.0, 0.0, False
    level = s[_MEAN] / s[_N]
    noise_sd = math.sqrt(max(s[_VAR] / s[_N], 0.0))
    share = abs(level) / noise_sd if noise_sd > 0 else (math.inf if level else 0.0)
    return level, share, share > TAKE_OFF_FRACTION


def _report(level: float, share: float, taken: bool, label: str = "") -> str:
    what = f"background ({label})" if label else "background"
    note = f"{what}: the images' corners average {level:.4g} ({share:.2%} of their noise's sd)"
    if taken:
        note += ", taken off their zero frequency"
        log.warning(
            "%s: were the images normalised to a zero background (relion_preprocess --norm)? "
            "Left in, it would have been fitted as mass spread over the map",
            note,
        )
    else:
        note += f", left (under {TAKE_OFF_FRACTION:.0%}: what a molecule's density can put there)"
        log.info("%s", note)
    return note


def remove_background(stats: FourierStatistics, label: str = "") -> FourierStatistics:
    """``stats`` as if the mean corner level of their images had been subtracted from every pixel,
    where it is over :data:`TAKE_OFF_FRACTION` of their noise's sd.

    Parameters
    ----------
    stats : FourierStatistics
        As gathered, with the :class:`BackgroundMeter` sums of the same images in
        ``background_sums`` (summed over the ranks of a distributed pass, as the statistics are).
    label : str
        Which images these are, named in the logged level (e.g. ``"half A"``); none by default.

    Returns
    -------
    FourierStatistics
        ``background_sums`` None and a note with the level; where it is taken off, ``B``'s zero
        frequency and the first value of the data power corrected. Unchanged where
        ``background_sums`` is None already.
    """
    if stats.background_sums is None:
        return stats
    s = stats.background_sums.double().cpu().tolist()
    if s[_N] <= 0:
        return replace(stats, background_sums=None)
    level, share, take_off = level_to_take_off(stats.background_sums)
    notes = [*stats.notes, _report(level, share, take_off, label)]
    if not take_off:
        return replace(stats, notes=notes, background_sums=None)
    size = stats.padded_box
    d2 = float(stats.box) ** 2
    data = stats.data.clone()
    data[size // 2, size // 2, 0] -= level * d2 * s[_DC]
    power = stats.power.clone()
    power[0] += level**2 * d2**2 * s[_A2] - 2.0 * level * d2 * s[_AY]
    return replace(stats, data=data, power=power, notes=notes, background_sums=None)


def measure_background(
    particles: ParticleSet, rows: np.ndarray, max_images: int = 2000, batch: int = 256
) -> tuple[float, float, bool]:
    """``(level, share of the noise's sd, take it off)`` of ``rows``' images, read from at most
    ``max_images`` of them spread evenly over the rows (:func:`level_to_take_off`)."""
    rows = np.asarray(rows)
    if rows.size == 0:
        return 0.0, 0.0, False
    picked = rows[np.unique(np.linspace(0, rows.size - 1, min(rows.size, max_images)).astype(int))]
    meter = BackgroundMeter(particles.box, torch.device("cpu"))
    for start in range(0, picked.size, batch):
        meter.add_images(torch.from_numpy(particles.read_images(picked[start : start + batch])))
    return level_to_take_off(meter.sums)


def background_level(particles: ParticleSet, rows: np.ndarray, max_images: int = 2000) -> float:
    """The level the per-image engine takes off every image of ``rows``: their mean corner level
    (:func:`measure_background`) where it is over :data:`TAKE_OFF_FRACTION` of their noise's sd;
    else 0."""
    level, _, take_off = measure_background(particles, rows, max_images)
    return level if take_off else 0.0
