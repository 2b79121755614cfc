"""Do the poses fit the images as written, or as a converter's common slips would have them?

A pose read with the wrong convention still makes a map, only a worse one, and its reported
resolution follows it down without a word: EMD-5625's particles with their shifts negated came out
at 23.7 Å for 18.1 Å (round 2, session 40). The two half sets' direct inversions say which way
the poses fit: up to :data:`N_IMAGES` particles spread over the set, Fourier-cropped to
:data:`BOX` pixels, are inverted half by half (a seeded random split) with the poses as written and
with each slip (:data:`VARIANTS`: shifts negated, x and y swapped, rotations inverted, the
rotations inverted and the shifts negated, the Euler angles rot and psi swapped, alone and with the
rotations inverted, the x or y axis flipped (images mirrored against their poses), the shifts
halved); the halves' mean FSC over shells 2 to a quarter of the
box (the low frequencies, where a slip costs most and noise least), and on while the best reading
holds an FSC of 0.5 (:func:`~cryosplat.reconstruct.grid.sample_maps.judged_shells`: at high signal
every reading is near 1 over the low shells), ranks them.

Measured (round 2, session 41; 3,000 particles of four benchmark sets, 2.4–3.6 s): as written
0.63, 0.87, 0.70 and 0.89 (EMD-5625, beta-galactosidase, EMD-1832 with the real
cryoSPARC CTF, 8ZPM); the nearest slip (x and y swapped on all four)
0.06–0.23 under it, the rotations inverted 0.29–0.46 under it. A slip that fits better by
:data:`CLEAR_MARGIN` or more is named in a warning (``cryosplat info``) and stops a
reconstruction (:func:`apply_pose_check`; ``--accept-warnings`` runs it).

The sample is read once (:func:`~cryosplat.reconstruct.grid.sample_maps.check_sample`) and
inverted once per reading: 15,000 images inserted at box 48, as long as a statistics pass over
15,000 images of box 48 (4.7 s against a whole run of 7.9 s on 20,000 particles of box 56). The
same sample then says whether the images hold their CTF as the metadata say
(:mod:`cryosplat.reconstruct.ctf_state_check`, three readings more). A reconstruction runs both
by default where that is a tenth of its statistics pass or less, ``N·D²`` at least
:data:`AUTO_MIN_PIXELS` (287,000 particles of box 56, 90,000 of box 100, 13,700 of box 256: real
data sets, not the benchmarks' small ones; before the mirrors were read, 242,000, 76,000 and
11,600, before the Euler angles' order and the shifts halved, 176,000, 55,000 and 8,400, before
the CTF's readings, 110,000, 35,000 and 5,300);
``--pose-check on`` runs them on any set, ``off`` on none.

Images mirrored against their poses (round 2, session 92): the x or y axis flipped (each pose
turned by half a turn about the image's other axis, :data:`FLIP_TURNS`, and that shift component
negated) makes the mirrored images exactly. Before these readings, EMD-5625's 4,000 benchmark
images mirrored in x or y were named as the Euler angles' signs turned (rot and psi swapped and
rotations inverted, 0.58 and 0.57 against 0.28 and 0.24 as written), and the set so amended made a
map of the other hand whose shifts were wrong in the mirrored axis: FSC 0.5 with the truth, so
mirrored, at 19.7 and 21.5 Å for 18.0 Å, the reported resolution 21.1 and 22.3 Å. Now the mirror is
named (0.63 against the signs turned 0.58 and 0.57) and amended gives 18.0 and 18.2 Å in the
truth's hand.

A set of several optics settings (data merged from several sources, one of them perhaps through
a converter with a slip) is also read setting by setting: each setting's poses with each slip, the
rest as written (:class:`~cryosplat.reconstruct.grid.sample_maps.SettingReading`; one reading
more per slip and setting). Read whole, half the particles slipped fit neither way much better.
One source whose rows are out of order against its images fits no slip at all; each setting's own
particles are therefore also inverted alone (:func:`~cryosplat.reconstruct.grid.sample_maps.
settings_alone`) and named where they agree less than the other settings' predict at their count
and little better than shuffled, in a warning (:attr:`PoseCheck.unrelated_setting`; round 2,
session 94: named on nine merged benchmark sets with 10–50 % of the particles so shuffled, on
none of nine made right).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cryosplat.core.conventions import euler_relion_to_matrix, matrix_to_euler_relion
from cryosplat.core.errors import InputError
from cryosplat.core.option_names import option_name
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.validate import apply_check
from cryosplat.reconstruct.ctf_state_check import STATES, check_ctf_state
from cryosplat.reconstruct.grid.sample_maps import CHECK_BOX as BOX
from cryosplat.reconstruct.grid.sample_maps import (
    CHECK_IMAGES,
    CLEAR_MARGIN,
    CheckSample,
    SettingAlone,
    SettingReading,
    can_check,
    check_sample,
    clearest_mismatch,
    first_best,
    judged_shells,
    reading_verdict,
    sample_verdict,
    settings_alone,
    shuffled_poses,
)
from cryosplat.validation.fsc import fsc

__all__ = [
    "AUTO_MIN_PIXELS",
    "BOX",
    "CLEAR_MARGIN",
    "MODES",
    "N_IMAGES",
    "PoseCheck",
    "UNRELATED_MARGIN",
    "UNRELATED_SHARE",
    "VARIANTS",
    "apply_pose_check",
    "check_pose_conventions",
    "read_as",
]

N_IMAGES = CHECK_IMAGES
MODES = ("auto", "on", "off")  # --pose-check: by the set's size, always, never
VARIANTS = (
    "as written",
    "shifts negated",
    "shifts' x and y swapped",
    "rotations inverted",
    "rotations inverted and shifts negated",
    "rot and psi swapped",
    "rot and psi swapped and rotations inverted",
    "x axis flipped",
    "y axis flipped",
    "shifts halved",
)
"""The readings of the poses: as written, then the slips that undo a converter's sign or axis
convention, or its order of the Euler angles (a rotation's intrinsic angles read as extrinsic ones,
alone or with the rotation inverted; every slip but the last undoes itself), or a unit (the shifts
halved undo shifts twice or more too large: origins in Å read as pixels of 2 Å or more, or pixels
as Å of 0.5 Å or less, or pixels of a stack since binned; shifts too small cost a map little,
round 2, session 90)."""
AXES = ("x", "y")
FLIP_TURNS = (np.diag([-1.0, 1.0, -1.0]), np.diag([1.0, -1.0, -1.0]))
"""The images mirrored in x or y (:data:`AXES`) are the molecule's projections turned by half a
turn about the image's y or x axis: the map point ``r`` that a pose ``A`` puts at ``(A·r)ₓᵧ`` lands
at its mirror image under ``T·A`` (``T`` the turn; :mod:`cryosplat.core.conventions`), and the
shift's mirrored component changes sign. The same images also fit the Euler angles' signs turned
(``(-rot, -tilt, -psi)`` for x, the reading rot and psi swapped and rotations inverted;
``(-rot, tilt, -psi)`` for y) with the map's hand turned and the shifts as written: the half sets
cannot tell a mirror from those but by the mirrored shifts' sign."""
UNRELATED_SHARE = 0.25
"""An optics setting whose own halves gain over its poses shuffled less than this share of what
a right one of its count would is named (:attr:`PoseCheck.unrelated_setting`). Measured (round 2,
session 94, :func:`~cryosplat.reconstruct.grid.sample_maps.settings_alone`, merged sets of four
benchmark sets): a setting whose rows are out of order gained −0.05–0.09 of it (nine sets), a
right one 0.68–1.14 (nine), one whose images hold twice or four times the noise power of the
rest's 0.32–0.77 and 0.13–0.54 (four each)."""
UNRELATED_MARGIN = 0.15
"""A slip is named alone only where its reading also fits the images by this much better than
the sample's poses shuffled among its rows (:attr:`PoseCheck.shuffled`); under it the warning
says first that the rows may be out of order against the images, then names the slip. Poses
unrelated to their images (rows shuffled) fit every reading alike, and the best of ten by chance
beat the poses as written by the margin: on five benchmark sets so shuffled, 3,000 and 300
particles sampled, a slip was named in 8 of 10 (EMD-5625: "rotations inverted", 0.277 against
0.224 as written), 0.03–0.15 over the shuffled reading; the slips written on the same sets fit
0.38–0.55 over it from 3,000 particles, 0.13–0.28 from 300 (round 2, session 92,
``/work/bench/s92/null2.py``)."""
AUTO_MIN_PIXELS = 10 * (len(VARIANTS) + len(STATES)) * N_IMAGES * BOX**2
"""Image pixels (particles × box²) from which a reconstruction checks the poses (and the images'
CTF state, :mod:`cryosplat.reconstruct.ctf_state_check`) by default: the checks' inversions are
then a tenth of the statistics pass or less."""


def read_as(particles: ParticleSet, name: str, rows: np.ndarray | None = None) -> ParticleSet:
    """The particles with their poses read as ``name`` (:data:`VARIANTS`); only ``rows``
    (boolean) where given, the others as written (``cryosplat amend --poses-as`` writes a set
    so read)."""
    shifts, rotations = particles.shifts_angstrom, particles.rotations.copy()
    take = np.ones(len(particles), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    if shifts is not None:  # a set without shifts has none to slip
        shifts = shifts.copy()
        if "negated" in name:
            shifts[take] = -shifts[take]
        if "x and y swapped" in name:
            shifts[take] = shifts[take][:, ::-1]
        if "halved" in name:
            shifts[take] = shifts[take] / 2
    if "inverted" in name:
        rotations[take] = np.transpose(rotations[take], (0, 2, 1))
    if "rot and psi swapped" in name:  # commutes with the inversion
        rot, tilt, psi = np.moveaxis(matrix_to_euler_relion(rotations[take]), -1, 0)
        rotations[take] = euler_relion_to_matrix(psi, tilt, rot)
    if "axis flipped" in name:
        axis = AXES.index(name[0])
        if shifts is not None:
            shifts[take, axis] = -shifts[take, axis]
        rotations[take] = FLIP_TURNS[axis] @ rotations[take]
    return replace(particles, shifts_angstrom=shifts, rotations=rotations)


def _cause(reading: str) -> str:
    """What a slip that ``reading`` undoes most likely is."""
    if "axis flipped" in reading:
        return (
            f"images mirrored in {reading[0]} against their poses (a stack written with its "
            f"{'rows' if reading[0] == 'y' else 'columns'} in the other order, e.g. by a program "
            "whose images start at the top-left corner; their astigmatism is mirrored too, unless "
            "their CTF was fitted on them so: the astigmatism check reads which)"
        )
    if reading == "rot and psi swapped and rotations inverted":  # = x axis flipped, hand turned
        return (
            "Euler angles in the other order and inverted (the three angles' signs turned), or "
            "images mirrored in x against their poses (x axis flipped: the same fit but for the x "
            "shifts' sign, and a map of the other hand; without shifts, images mirrored in y fit "
            "alike too)"
        )
    if "rot and psi" in reading:
        return (
            "Euler angles in the other order (rot and psi swapped: a rotation's intrinsic ZYZ "
            "angles read as extrinsic ones)"
        )
    if "halved" in reading:
        return (
            "shifts in the wrong unit (Å read as pixels, or pixels as Å, or pixels of a finer "
            "sampling than the images')"
        )
    return "a converter's sign or axis convention"


@dataclass(frozen=True)
class PoseCheck:
    """Mean half-set FSC over shells 2 to ``last_shell`` (``scores``, one per :data:`VARIANTS`;
    :func:`~cryosplat.reconstruct.grid.sample_maps.judged_shells`) from ``n_images`` particles at
    box ``box``; ``settings``: each optics setting's poses read each slipped way, the rest as
    written (``scores`` of :data:`VARIANTS` [1:]), where the sample holds several."""

    n_images: int
    box: int
    scores: tuple[float, ...]
    last_shell: int
    settings: tuple[SettingReading, ...] = ()
    shuffled: float | None = None
    """The halves' mean FSC with the sample's poses shuffled among its rows (poses that belong to
    no image), read where a slip leads the poses as written (None elsewhere)."""
    alone: tuple[SettingAlone, ...] = ()
    """Each optics setting's own particles inverted alone, where the sample holds several."""

    @property
    def unrelated_setting(self) -> SettingAlone | None:
        """The optics setting whose own halves, read as written or by a slip that fits clearly
        better, gain over its poses shuffled among its rows less than :data:`UNRELATED_SHARE` of
        what the other settings predict a right one of its count would (where that is
        :data:`UNRELATED_MARGIN` or more: a right one could be told apart): one source's rows out
        of order against its images, or images holding almost no signal (the one short of its
        prediction by most, where several are)."""
        named = [
            a
            for a in self.alone
            if a.predicted - a.shuffled >= UNRELATED_MARGIN
            and a.read - a.shuffled < UNRELATED_SHARE * (a.predicted - a.shuffled)
        ]
        return max(named, key=lambda a: a.predicted - a.read) if named else None

    def unrelated_setting_warning(self) -> str | None:
        """The warning of :attr:`unrelated_setting`, None where there is none. A warning, not a
        stop: a source of images four times noisier than the rest's was named once in eight
        sets (round 2, session 94)."""
        alone = self.unrelated_setting
        if alone is None:
            return None
        return (
            f"the poses of optics setting {alone.name} ({alone.n_particles} of the sample's "
            f"particles) fit its images little better than shuffled among them: its own halves' "
            f"mean FSC over shells 2-{self.last_shell} {alone.read:.2f}, shuffled "
            f"{alone.shuffled:.2f}, where the other settings' halves predict "
            f"{alone.predicted:.2f} at its count: rows out of order against the images, or "
            "poses of another set, in one source of a merged set? (Or images that hold almost no "
            "signal.) Its particles add noise to the map: reconstruct the other optics groups "
            "alone (--optics-group NAME,...), or fix its rows"
        )

    @property
    def unrelated(self) -> bool:
        """Whether no reading fits the images clearly better than poses shuffled among them
        (:data:`UNRELATED_MARGIN`): rows out of order against the images, poses of another set."""
        return self.shuffled is not None and max(self.scores) - self.shuffled < UNRELATED_MARGIN

    @property
    def best(self) -> str:
        return VARIANTS[first_best(self.scores)]

    @property
    def slipped_setting(self) -> SettingReading | None:
        """The optics setting whose own slip fits best and clearly (none where none does)."""
        return clearest_mismatch(self.settings)

    @property
    def verdict(self) -> str:
        """``"mismatch"``: a slip fits clearly better than the poses as written
        (:data:`CLEAR_MARGIN`), for the whole sample or one optics setting's particles;
        ``"weak"``: no reading holds :data:`~cryosplat.reconstruct.grid.sample_maps.MIN_FSC`;
        else ``"agree"`` (:func:`~cryosplat.reconstruct.grid.sample_maps.reading_verdict`)."""
        return sample_verdict(self.scores[0], self.scores, self.settings)

    def describe(self) -> str:
        scores = ", ".join(f"{v} {s:.2f}" for v, s in zip(VARIANTS, self.scores, strict=True))
        where = (
            f"({self.n_images} particles at box {self.box}, the halves' mean FSC over shells "
            f"2-{self.last_shell}: {scores})"
        )
        whole = reading_verdict(self.scores[0], self.scores)
        setting = self.slipped_setting
        if whole != "mismatch" and setting is not None:
            slip = VARIANTS[1 + setting.best]
            return (
                f"the poses of optics setting {setting.name} ({setting.n_particles} of the "
                f"sample's particles) fit the images better with their {slip} than as written "
                f"(the halves' mean FSC {max(setting.scores):.2f} against {setting.given:.2f}; "
                f"the whole sample {where}): {_cause(slip)} in one source of a merged set? The "
                f"map would lose resolution (cryosplat amend --poses-as {option_name(slip)} "
                f"--optics-group '{setting.name}' writes them so)"
            )
        if whole == "mismatch" and self.unrelated:
            return (
                f"the poses fit the images little better read any way than shuffled among them "
                f"(best {max(self.scores):.2f}, as written {self.scores[0]:.2f}, shuffled "
                f"{self.shuffled:.2f}; {where}): rows out of order against the images, or poses of "
                f"another set? Else they fit best with their {self.best} (cryosplat amend --poses-as "
                f"{option_name(self.best)} writes them so), though by too little over poses that "
                "belong to no image to be sure. The map would lose resolution"
            )
        if whole == "mismatch":
            return (
                f"the poses fit the images better with their {self.best} than as written "
                f"{where}: {_cause(self.best)}? The map would lose resolution (cryosplat amend "
                f"--poses-as {option_name(self.best)} writes them so)"
            )
        if whole == "weak":
            return f"the poses' conventions could not be told apart {where}"
        return f"the poses fit the images best as written {where}"


def check_pose_conventions(
    particles: ParticleSet, n_images: int = N_IMAGES, sample: CheckSample | None = None
) -> PoseCheck | None:
    """Rank the poses as written against the slips of :data:`VARIANTS` (module docstring) on
    ``sample`` (default: :func:`check_sample` of ``n_images``); None without poses and CTF, or
    under 20 particles."""
    if not can_check(particles):
        return None
    sample = check_sample(particles, n_images) if sample is None else sample
    small = sample.particles

    def curve(read: ParticleSet | None) -> np.ndarray:
        return np.asarray(fsc(*sample.inversions(read)))

    whole = [curve(None)] + [curve(read_as(small, name)) for name in VARIANTS[1:]]
    apart = [
        (name, rows, [curve(read_as(small, slip, rows)) for slip in VARIANTS[1:]])
        for name, rows in sample.settings()
    ]
    shells = judged_shells(whole + [c for _, _, curves in apart for c in curves], small.box)

    def score(curves: list[np.ndarray]) -> tuple[float, ...]:
        return tuple(float(np.mean(c[shells])) for c in curves)

    scores = score(whole)
    shuffled = None
    if reading_verdict(scores[0], scores) == "mismatch":
        every = np.ones(len(small), dtype=bool)
        shuffled = score([curve(shuffled_poses(small, every))])[0]
    settings = tuple(
        SettingReading(name, int(rows.sum()), scores[0], score(curves))
        for name, rows, curves in apart
    )
    slips = {  # a setting's best slip, where it fits clearly better than as written
        setting.name: read_as(small, VARIANTS[1 + setting.best], rows)
        for setting, (_, rows, _) in zip(settings, apart, strict=True)
        if setting.verdict == "mismatch"
    }
    alone = settings_alone(sample, shells, slips)
    return PoseCheck(len(small), small.box, scores, shells.stop - 1, settings, shuffled, alone)


def apply_pose_check(
    particles: ParticleSet, mode: str = "auto", accept_warnings: bool = False
) -> PoseCheck | None:
    """Run :func:`check_pose_conventions`, and on the same sample
    :func:`~cryosplat.reconstruct.ctf_state_check.check_ctf_state`, for a reconstruction, as
    ``mode`` (:data:`MODES`) asks.

    Their lines go to ``particles.notes`` (the run's log lists them), as does a line saying why
    they were not run; poses that fit a slip clearly better, or images that fit another CTF state
    than the metadata's, stop the run with :class:`InputError` unless ``accept_warnings``, then it
    is a warning.
    """
    if mode not in MODES:
        raise InputError(f"pose check must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off":
        particles.notes.append("pose check: off (--pose-check off), nor the CTF state's")
        return None
    if mode == "auto" and len(particles) * particles.box**2 < AUTO_MIN_PIXELS:
        particles.notes.append(
            f"pose check: not run on a set this small ({len(particles):,} particles of box "
            f"{particles.box}), nor the CTF state's, where they would cost more than a tenth of "
            "the statistics pass (--pose-check on, or cryosplat info, runs them)"
        )
        return None
    if not can_check(particles):
        return None
    sample = check_sample(particles, N_IMAGES)
    result = check_pose_conventions(particles, sample=sample)
    line = f"pose check: {result.describe()}"
    apply_check(particles, line, result.verdict != "mismatch", accept_warnings)
    if (warning := result.unrelated_setting_warning()) is not None:
        particles.warnings.append(f"pose check: {warning}")
    state = check_ctf_state(particles, sample=sample)
    if state is not None:
        line = f"CTF state check: {state.describe()}"
        apply_check(particles, line, state.verdict != "mismatch", accept_warnings)
    return result
