"""Do the images hold their CTF as the metadata say: raw, phase-flipped or CTF-premultiplied?

RELION marks images that already carry their CTF (``rlnCtfDataArePhaseFlipped``,
``rlnCtfDataAreCtfPremultiplied``; :data:`~cryosplat.core.ctf.CTF_IN_IMAGES`). A converter that
drops the flag, or sets it on raw images, leaves a set whose map is right up to the CTF's first
zero and wrong past it, with no word: EMD-5625's 4,000 benchmark particles phase-flipped and read
as raw gave a map whose FSC with the truth fell from 0.54 to 0.19 at 19.7 Å and below zero past
it (0.5 at 21.2 Å for 18.5 Å), its reported resolution 19.6 Å (round 2, session 88).

The two half sets' direct inversions say which reading fits, as for the poses
(:mod:`cryosplat.reconstruct.pose_check`, on the same sample): the images are inverted as written
and as each of the three states, and the halves' mean FSC over the shells past the CTF's first
zero (from where a quarter of the sample's images have passed theirs, on the check's grid; before
it every reading agrees) ranks them. A reading that fits better by :data:`CLEAR_MARGIN` or more
is named in a warning (``cryosplat info``) and stops a reconstruction unless
``--accept-warnings`` (:func:`~cryosplat.reconstruct.pose_check.apply_pose_check` runs both).

Measured (round 2, session 88; ``python benchmarks/bench_checks.py SET...``, each set's raw
images flagged raw, phase-flipped and CTF-premultiplied; 3,000 particles, 1.3–2.8 s): on eight
sets with signal past the first zero (six real maps at SNR 0.02–0.1, 3J9G's atoms at 0.05, 8ZPM's
with preferred views at 0.005) the flag raw agreed, the raw reading leading by 0.088–0.465, and
both wrong flags were named; on three at the benchmarks' SNR of 0.002–0.003 (EMD-5625,
β-galactosidase, EMD-1832) and the 70S ribosome at SNR 0.03 (its map's power falls 30-fold past
27 Å) no reading held 0.1 past the first zero: too weak to judge, and said so. The same EMD-6824
images phase-flipped and read as raw were named the other way round (phase-flipped 0.65, raw
0.18).

A set of several optics settings (data merged from several sources: RELION keeps the flags per
optics group) is also read setting by setting: each setting's images as each state, the rest as
written (:class:`~cryosplat.reconstruct.grid.sample_maps.SettingReading`). Read whole, a set whose
sources differ in state fits no single state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from cryosplat.core.ctf import ctf_from_params
from cryosplat.core.fourier import frequency_grid_2d
from cryosplat.core.option_names import option_name
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.sample_maps import (
    CHECK_IMAGES,
    CLEAR_MARGIN,
    MIN_FSC,
    CheckSample,
    SettingReading,
    can_check,
    check_sample,
    clearest_mismatch,
    first_best,
    reading_verdict,
    sample_verdict,
)
from cryosplat.validation.fsc import fsc

__all__ = [
    "CLEAR_MARGIN",
    "MIN_FSC",
    "STATES",
    "CtfStateCheck",
    "check_ctf_state",
    "first_zero_shell",
]

STATES = ("raw", "phase-flipped", "CTF-premultiplied")
"""The images' CTF states by code (the index, as :data:`~cryosplat.core.ctf.CTF_IN_IMAGES`), in
words."""
FIRST_ZERO_QUANTILE = 0.25
"""The readings are compared from the shell by which this share of the sample's images have
passed their CTF's first zero: a wrong reading turns those images' signal over there. From the
median instead, EMD-1832 at SNR 0.1 flagged phase-flipped led by 0.036, under the margin (0.089
from the quarter; β-galactosidase 0.119 → 0.152, the seven other sets within ±0.017; round 2
session 88, ``benchmarks/bench_checks.py``)."""


def _written(particles: ParticleSet) -> str:
    """The metadata's state in words: one of :data:`STATES`, or ``"mixed"``."""
    codes = particles.ctf_in_images
    if codes is None or not len(codes):
        return STATES[0]
    first = int(codes[0])
    return STATES[first] if bool((codes == first).all()) else "mixed"


def first_zero_shell(particles: ParticleSet, quantile: float = FIRST_ZERO_QUANTILE) -> float:
    """The radius (pixels of ``particles``' box) by which ``quantile`` of the images have passed
    their CTF's first zero (the nearest pixel of the opposite sign to the pixel beside the zero
    frequency: the zero frequency itself is 0 without amplitude contrast);
    ``inf`` where fewer have one within the box."""
    box, pixel = particles.box, particles.pixel_size_angstrom
    ctf = ctf_from_params(particles.ctf, box, pixel, dtype=torch.float64)
    kx, ky = frequency_grid_2d(box, pixel, dtype=torch.float64)
    radius = torch.sqrt(kx * kx + ky * ky) * box * pixel
    centre = torch.sign(ctf[:, box // 2, box // 2 + 1])  # beside k = 0, where Q = 0 gives 0
    flipped = torch.sign(ctf) == -centre[:, None, None]  # the opposite sign, not a 0
    nearest = torch.where(flipped, radius, torch.full_like(radius, float("inf")))
    return float(torch.quantile(nearest.flatten(1).amin(dim=1), quantile))


@dataclass(frozen=True)
class CtfStateCheck:
    """The halves' mean FSC past the CTF's first zero (shells ``first``..``box//2 - 1``) with
    the images read as written (``written``: their state in words) and as each of
    :data:`STATES` (``scores``), from ``n_images`` particles at box ``box``; ``settings``: each
    optics setting's images read as each state, the rest as written, where the sample holds
    several."""

    n_images: int
    box: int
    first: int
    written: str
    written_score: float
    scores: tuple[float, ...]
    settings: tuple[SettingReading, ...] = ()

    @property
    def best(self) -> str:
        return STATES[first_best(self.scores)]

    @property
    def misread_setting(self) -> SettingReading | None:
        """The optics setting whose images fit another state best and clearly (none where none
        does)."""
        return clearest_mismatch(self.settings)

    @property
    def verdict(self) -> str:
        """``"mismatch"``: another state fits clearly better than the metadata's
        (:data:`CLEAR_MARGIN`), for the whole sample or one optics setting's images; ``"weak"``:
        no reading holds :data:`MIN_FSC`; else ``"agree"``."""
        return sample_verdict(self.written_score, self.scores, self.settings)

    def describe(self) -> str:
        scores = ", ".join(f"{s} {v:.2f}" for s, v in zip(STATES, self.scores, strict=True))
        where = (
            f"({self.n_images} particles at box {self.box}, the halves' mean FSC past the CTF's "
            f"first zero, shells {self.first}-{self.box // 2 - 1}: as written "
            f"{self.written_score:.2f}, {scores})"
        )
        whole = reading_verdict(self.written_score, self.scores)
        flags = (
            "cryosplat reads rlnCtfDataArePhaseFlipped and rlnCtfDataAreCtfPremultiplied from a "
            "STAR file (its optics table, or per particle); the map would be wrong past the CTF's "
            "first zero"
        )
        setting = self.misread_setting
        if whole != "mismatch" and setting is not None:
            state = STATES[setting.best]
            return (
                f"the images of optics setting {setting.name} ({setting.n_particles} of the "
                f"sample's particles) fit their CTF better read as {state} than as "
                f"the metadata say (the halves' mean FSC {max(setting.scores):.2f} against "
                f"{setting.given:.2f}; the whole sample {where}): a flag lost or set in one "
                f"source of a merged set? {flags} (cryosplat amend --optics-group "
                f"{setting.name} --ctf-state-as {option_name(state)} writes it so)"
            )
        if whole == "mismatch":
            return (
                f"the images fit their CTF better read as {self.best} than as the metadata say "
                f"({self.written}) {where}: a flag lost or set in a conversion? {flags} "
                f"(cryosplat amend --ctf-state-as {option_name(self.best)} writes it so)"
            )
        if whole == "weak":
            return f"the images' CTF state could not be told {where}"
        return f"the images hold their CTF as the metadata say ({self.written}) {where}"


def check_ctf_state(
    particles: ParticleSet, n_images: int = CHECK_IMAGES, sample: CheckSample | None = None
) -> CtfStateCheck | None:
    """Rank the images' CTF state as written against each of :data:`STATES` (module docstring)
    on ``sample`` (default: :func:`check_sample` of ``n_images``); None without poses and CTF,
    under 20 particles, or with fewer than two shells past the CTF's first zero at the check's
    box (near focus, coarse pixels: nothing to tell the states apart)."""
    if not can_check(particles):
        return None
    sample = check_sample(particles, n_images) if sample is None else sample
    small = sample.particles
    zero = first_zero_shell(small)
    if not small.box // 2 - zero >= 2:  # also an infinite zero: no sign change in the box
        return None
    first = int(np.ceil(zero))
    shells = slice(first, small.box // 2)

    written = _written(small)
    as_written = np.zeros(len(small), dtype=np.int64)
    if small.ctf_in_images is not None:
        as_written = np.asarray(small.ctf_in_images, dtype=np.int64)

    def score(codes: np.ndarray) -> float:
        same = bool((codes == as_written).all())  # as written: the sample's own inversions
        read = None if same else replace(small, ctf_in_images=codes)
        return float(np.mean(fsc(*sample.inversions(read))[shells]))

    def read_as(state: int, rows: np.ndarray | None = None) -> float:
        """The score with ``rows`` (every row where None) read as ``state``, the rest as written."""
        take = np.ones(len(small), dtype=bool) if rows is None else rows
        return score(np.where(take, state, as_written))

    scores = tuple(read_as(code) for code in range(len(STATES)))
    written_score = score(as_written)
    settings = tuple(
        SettingReading(
            name,
            int(rows.sum()),
            written_score,
            tuple(read_as(code, rows) for code in range(len(STATES))),
        )
        for name, rows in sample.settings()
    )
    return CtfStateCheck(len(small), small.box, first, written, written_score, scores, settings)
