"""Half maps of a sample of the particles at a small box: what the data checks compare.

The checks that read the data before a run (the poses' conventions,
:mod:`cryosplat.reconstruct.pose_check`; the images' CTF state,
:mod:`cryosplat.reconstruct.ctf_state_check`; the point group, :mod:`.symmetry_check`) invert a
few thousand images Fourier-cropped to :data:`CHECK_BOX` pixels, two sets of rows at a time, and
compare the two maps' FSC within the soft sphere over the shells that tell their readings apart
(the low ones for the poses and the group, where signal is strongest, and on while they hold
signal, :func:`judged_shells`; past the CTF's first zero for its state). The first two read one
sample (:func:`check_sample`), and where it holds several optics settings
(:mod:`cryosplat.particles.optics_settings`: data merged from several sources) also each setting
read another way while the rest stay as written (:class:`SettingReading`): one source's slip among
right ones. Each setting's own particles are also inverted alone (:func:`settings_alone`): one
source whose rows are out of order against its images fits no slip, and among right ones it
lowers the whole sample's agreement too little to be seen, but its own halves agree less than the
other settings' would at its count.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.particles.downsample import downsample_particles, even_box
from cryosplat.particles.optics_settings import setting_rows
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.preloaded import preloaded
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.validation.fsc import fsc
from cryosplat.validation.masks import spherical_mask

__all__ = [
    "CHECK_BOX",
    "CHECK_IMAGES",
    "CLEAR_MARGIN",
    "JUDGED_FSC",
    "LEVEL",
    "MIN_FSC",
    "CheckSample",
    "SettingAlone",
    "SettingReading",
    "can_check",
    "clearest_mismatch",
    "first_best",
    "sample_verdict",
    "check_sample",
    "judged_shells",
    "reading_verdict",
    "cropped_for_checks",
    "masked_inversions",
    "settings_alone",
    "shuffled_poses",
]

CHECK_BOX = 48
"""The box a check's sample is inverted at (the particles' own where smaller)."""
CHECK_IMAGES = 3000
"""The particles a check's sample holds at most (:func:`check_sample`)."""
MIN_CHECK_PARTICLES = 20  # fewer cannot be judged
CLEAR_MARGIN = 0.05  # mean FSC by which another reading must beat the metadata's to be named
MIN_FSC = 0.1  # below this mean FSC the best reading holds too little signal to judge by
JUDGED_FSC = 0.5
"""Shells where the halves' FSC (of the best reading) reaches this hold signal enough to judge
readings by."""


def judged_shells(curves: list[np.ndarray], box: int) -> slice:
    """The shells a check of the poses ranks its readings over, given each reading's halves' FSC
    (``curves``, shells 0 to ``box // 2`` or more): from 2 to a quarter of ``box`` (the low
    frequencies, where a slip costs most and noise least), and on past it while the best
    reading's FSC holds :data:`JUDGED_FSC`, to ``box // 2 - 1`` at most.

    At high signal every reading's FSC is near 1 over the low shells, so no slip can lead there
    by :data:`CLEAR_MARGIN`; the shells past them, where the right reading still holds signal and
    a slipped one no longer does, tell them apart (EMD-1832 at SNR 0.3, its shifts negated: 0.968
    as written against 0.995 negated back over shells 2-12 of 48, 0.789 against 0.938 over 2-17;
    round 2, session 90). Where the data hold less, the band is the low one alone.
    """
    best = np.max(np.stack([np.asarray(c, dtype=float) for c in curves]), axis=0)
    last = box // 4
    while last + 1 < box // 2 and best[last + 1] >= JUDGED_FSC:
        last += 1
    return slice(2, last + 1)


def can_check(particles: ParticleSet) -> bool:
    """Whether the readings of a set can be compared: poses, a CTF and enough particles."""
    return particles.has_poses and particles.has_ctf and len(particles) >= MIN_CHECK_PARTICLES


LEVEL = 1e-6
"""Readings whose scores lie within this of each other are level: they make the same half-set
agreement up to rounding (the x or y axis flipped and the Euler angles' signs turned, on a set
without shifts: maps that differ only in hand or a turn)."""


def first_best(scores: tuple[float, ...]) -> int:
    """The index of the best score, the first of those level with it (:data:`LEVEL`): among
    readings that fit alike the earlier, commoner one is named, not whichever rounding favours."""
    values = np.asarray(scores, dtype=np.float64)
    return int(np.flatnonzero(values >= values.max() - LEVEL)[0])


def reading_verdict(given: float, readings: tuple[float, ...]) -> str:
    """The verdict on the metadata as written (mean FSC ``given``) against other ``readings``:
    ``"mismatch"`` where one fits better by :data:`CLEAR_MARGIN` or more, ``"weak"`` where none
    (nor the given) holds :data:`MIN_FSC`, else ``"agree"``."""
    if max(given, *readings) < MIN_FSC:
        return "weak"
    return "mismatch" if max(readings) - given >= CLEAR_MARGIN else "agree"


@dataclass(frozen=True)
class SettingReading:
    """One optics setting's particles read each other way while the rest stay as written: the
    halves' mean FSC as written (``given``) and for each reading (``scores``, in the check's
    order), from ``n_particles`` of the sample."""

    name: str
    n_particles: int
    given: float
    scores: tuple[float, ...]

    @property
    def verdict(self) -> str:
        """:func:`reading_verdict` of the setting's readings."""
        return reading_verdict(self.given, self.scores)

    @property
    def best(self) -> int:
        """The index of the best-fitting reading."""
        return first_best(self.scores)


def clearest_mismatch(readings: tuple[SettingReading, ...]) -> SettingReading | None:
    """The setting whose other reading fits clearly better (:func:`reading_verdict`) by the
    most; None where none does."""
    named = [r for r in readings if r.verdict == "mismatch"]
    return max(named, key=lambda r: max(r.scores) - r.given) if named else None


def sample_verdict(
    given: float, readings: tuple[float, ...], settings: tuple[SettingReading, ...]
) -> str:
    """A check's verdict: ``"mismatch"`` where one optics setting's own other reading fits
    clearly better (:func:`clearest_mismatch`), else :func:`reading_verdict` of the whole
    sample's ``readings`` against ``given``."""
    if clearest_mismatch(settings) is not None:
        return "mismatch"
    return reading_verdict(given, readings)


def cropped_for_checks(particles: ParticleSet) -> ParticleSet:
    """``particles`` Fourier-cropped to :data:`CHECK_BOX` (unchanged where the box is smaller)."""
    box = even_box(min(CHECK_BOX, particles.box))
    return downsample_particles(particles, box) if box < particles.box else particles


@dataclass(frozen=True)
class CheckSample:
    """Up to a few thousand particles spread over a set, Fourier-cropped to :data:`CHECK_BOX`
    and read once (``particles``), with each one's half (``half``: 0 or 1, drawn at random,
    seeded: a split by alternate rows would put every particle of a file that alternates two
    kinds, classes or groups, into one half each)."""

    particles: ParticleSet
    half: np.ndarray
    _written: list = field(default_factory=list, repr=False, compare=False)

    def halves(self) -> list[np.ndarray]:
        """The two halves' rows as boolean masks, for :func:`masked_inversions`."""
        return [self.half == 0, self.half == 1]

    def settings(self) -> list[tuple[str, np.ndarray]]:
        """The sample's optics settings of :data:`MIN_CHECK_PARTICLES` or more, as (name,
        boolean rows), where it holds two or more such (none else)."""
        return setting_rows(self.particles, MIN_CHECK_PARTICLES)

    def inversions(self, read: ParticleSet | None = None) -> list[torch.Tensor]:
        """The halves' :func:`masked_inversions` of the sample ``read`` another way (its poses
        or CTF state), or as written (None): that one made once, for every check that reads
        it."""
        if read is not None:
            return masked_inversions(read, self.halves())
        if not self._written:
            self._written.extend(masked_inversions(self.particles, self.halves()))
        return list(self._written)


def check_sample(particles: ParticleSet, n_images: int = CHECK_IMAGES) -> CheckSample:
    """The :class:`CheckSample` of up to ``n_images`` particles spread evenly over the set."""
    small = preloaded(cropped_for_checks(particles.subset(particles.spread_rows(n_images))))
    return CheckSample(small, np.random.default_rng(0).permutation(len(small)) % 2)


def masked_inversions(
    particles: ParticleSet, row_sets: list[ArrayLike], config: AccumulateConfig | None = None
) -> list[torch.Tensor]:
    """The direct inversion (:meth:`FourierStatistics.reconstruct_wiener`) of each set of rows
    (indices or a boolean mask), times the soft spherical mask, float64 on the CPU.

    The images' background level is left in: it touches the zero frequency alone, which the
    checks leave out.
    """
    mask = torch.as_tensor(spherical_mask(particles.box), dtype=torch.float64)
    maps = []
    for rows in row_sets:
        stats = accumulate(particles, np.asarray(rows), config, take_off_background=False)
        maps.append(stats.reconstruct_wiener().double().cpu() * mask)
    return maps


MIN_ALONE_PARTICLES = 100
"""The sample's particles a setting needs to be inverted alone (:func:`settings_alone`)."""
SHUFFLE_SEED = 92
"""The seed of the poses shuffled among a sample's rows (:func:`shuffled_poses`)."""


@dataclass(frozen=True)
class SettingAlone:
    """One optics setting's own particles inverted alone, half by half: the halves' mean FSC as
    read (``read``: as written, or with the poses read another way where that agrees better),
    with its poses shuffled among its rows (``shuffled``: poses that belong to no image), and as
    the other settings' halves predict at its count (``predicted``), from ``n_particles`` of the
    sample."""

    name: str
    n_particles: int
    read: float
    shuffled: float
    predicted: float


SHUFFLES = 3
"""Shuffles of a setting's poses whose agreements :func:`settings_alone` averages: one alone read
0.031 where its rows out of order read 0.141 (TRPV1, 10 % of the particles), as far from each
other as a right setting's reading from its shuffle."""


def shuffled_poses(
    particles: ParticleSet, rows: np.ndarray, seed: int = SHUFFLE_SEED
) -> ParticleSet:
    """``particles`` with the poses of ``rows`` (boolean) shuffled among them, seeded."""
    where = np.flatnonzero(rows)
    order = where[np.random.default_rng(seed).permutation(len(where))]
    rotations = particles.rotations.copy()
    rotations[where] = particles.rotations[order]
    out = replace(particles, rotations=rotations)
    if particles.shifts_angstrom is not None:
        shifts = particles.shifts_angstrom.copy()
        shifts[where] = particles.shifts_angstrom[order]
        out = replace(out, shifts_angstrom=shifts)
    return out


def settings_alone(
    sample: CheckSample, shells: slice, readings: dict[str, ParticleSet] | None = None
) -> tuple[SettingAlone, ...]:
    """:class:`SettingAlone` of each of the sample's optics settings with
    :data:`MIN_ALONE_PARTICLES` or more (none where it holds one setting), scored over
    ``shells``; ``readings``: per setting's name, the sample with its poses read another way,
    whose agreement counts where it is the higher (a slip's).

    The prediction: the other settings' halves' FSC ``F`` per shell is a half map's signal to
    noise ``F / (1 − F)``, which scales with the particles inverted; at the setting's count it
    gives ``S / (1 + S)``."""
    readings = readings or {}
    small, (first, second) = sample.particles, sample.halves()

    written: dict[bytes, np.ndarray] = {}  # as written, by rows: two settings' rests are each other

    def score(read: ParticleSet, rows: np.ndarray) -> np.ndarray:
        key = rows.tobytes()
        if read is small and key in written:
            return written[key]
        curve = np.asarray(fsc(*masked_inversions(read, [first & rows, second & rows])))
        if read is small:
            written[key] = curve
        return curve

    alone = []
    for name, rows in sample.settings():
        if int(rows.sum()) < MIN_ALONE_PARTICLES:
            continue
        read = max(
            float(np.mean(score(r, rows)[shells]))
            for r in (small, *([readings[name]] if name in readings else []))
        )
        shuffled = float(
            np.mean(
                [
                    np.mean(score(shuffled_poses(small, rows, SHUFFLE_SEED + i), rows)[shells])
                    for i in range(SHUFFLES)
                ]
            )
        )
        rest = np.clip(score(small, ~rows), 0.0, 0.999)
        ssnr = rest / (1.0 - rest) * (rows.sum() / (~rows).sum())
        predicted = float(np.mean((ssnr / (1.0 + ssnr))[shells]))
        alone.append(SettingAlone(name, int(rows.sum()), read, shuffled, predicted))
    return tuple(alone)
