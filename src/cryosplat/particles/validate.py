"""Physical ranges of particle metadata and images, checked before any work.

Two kinds of check, both here so that every reader and command applies the same rules:

* **Range errors** (:func:`check_range`, :func:`check_ctf_columns`): a number that cannot be right
  (a voltage of 0 kV, an amplitude contrast of 1.2, a B-factor of -5000 Å², a pixel size of 0) is
  refused by the reader with one message naming the file, the table, the column and the 1-based row,
  and what was expected. Readers call these on the raw columns, before they build anything.
* **Findings** (:func:`check_particles`): the set as a whole looks wrong though each number is
  possible (defocus written in µm, all defocus 0, most defocus negative, angles in radians, shifts beyond a quarter of the box, duplicated
  images, one image in both half sets, every particle in one half, half the views within 20° of one axis,
  several 3D classes nobody chose). A finding with ``refuse=True`` stops a reconstruction unless
  the user accepts it (``--accept-warnings``); the others are logged.
* **Images** (:func:`bad_image_rows`): non-finite or absurd pixel values, checked on the batches the
  streaming passes read anyway (no extra read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from cryosplat.core.conventions import matrix_to_euler_relion
from cryosplat.core.errors import InputError
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.summary import (
    MIN_VIEWS_FOR_ORIENTATION,
    PREFERRED_CONE_DEGREES,
    PREFERRED_SHARE,
    densest_cone,
    uniform_cone_share,
    viewing_directions,
)

__all__ = [
    "Range",
    "RANGES",
    "Finding",
    "check_range",
    "check_ctf_columns",
    "check_particles",
    "apply_findings",
    "apply_check",
    "bad_image_rows",
    "describe_image",
    "MAX_ABS_PIXEL",
    "ACCEPT_OPTION",
]


ACCEPT_OPTION = "--accept-warnings"
MAX_ABS_PIXEL = 1e8  # far above any detector count or normalised value; its square fits float32
MICRON_LIKE_DEFOCUS_ANGSTROM = 100.0  # a median defocus below this is µm (or nm) written as Å


@dataclass(frozen=True)
class Range:
    """The physical range ``[low, high]`` (``high`` excluded when ``high_open``) of one quantity."""

    low: float
    high: float
    unit: str
    what: str
    high_open: bool = False

    def contains(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        above = values >= self.high if self.high_open else values > self.high
        return np.isfinite(values) & (values >= self.low) & ~above

    def describe(self) -> str:
        close = ")" if self.high_open else "]"
        return f"{self.what} in [{self.low:g}, {self.high:g}{close}{self.unit}"


RANGES: dict[str, Range] = {
    "defocus_u_angstrom": Range(-5e4, 2e5, " Å", "a defocus (positive underfocus)"),
    "defocus_v_angstrom": Range(-5e4, 2e5, " Å", "a defocus (positive underfocus)"),
    "defocus_angle_degrees": Range(-720.0, 720.0, "°", "an astigmatism angle"),
    "voltage_kv": Range(10.0, 1000.0, " kV", "an acceleration voltage"),
    "cs_mm": Range(0.0, 20.0, " mm", "a spherical aberration"),
    "amplitude_contrast": Range(0.0, 1.0, "", "an amplitude contrast", high_open=True),
    "phase_shift_degrees": Range(-720.0, 720.0, "°", "a phase shift"),
    "bfactor_angstrom2": Range(-500.0, 1000.0, " Å²", "a CTF envelope B-factor"),
    "scale": Range(1e-3, 100.0, "", "a CTF scale factor"),
    "pixel_size_angstrom": Range(1e-3, 100.0, " Å", "a pixel size"),
    "magnification": Range(1.0, 1e7, "", "a magnification"),
    "detector_pixel_um": Range(1e-3, 1e3, " µm", "a detector pixel size"),
}


def check_range(values: ArrayLike, quantity: str, source: Path | str | None, where: str) -> None:
    """Raise :class:`InputError` at the first value outside ``RANGES[quantity]``.

    Parameters
    ----------
    values : array_like, shape (N,)
        One column, in the units of ``RANGES[quantity]``.
    quantity : str
        A key of :data:`RANGES`.
    source : Path or str
        The file (first in the message).
    where : str
        Table and column as the user knows them, e.g. ``"data_optics, column rlnVoltage"``; the
        message adds the 1-based row.
    """
    rule = RANGES[quantity]
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~rule.contains(values))
    if bad.size:
        r = int(bad[0])
        more = f" (and {bad.size - 1} more rows)" if bad.size > 1 else ""
        raise InputError(
            f"{source}: {where}, row {r + 1}: {values[r]:g}{rule.unit} is not "
            f"{rule.describe()}{more}"
        )


def check_ctf_columns(source: Path | str | None, columns: dict[str, tuple[str, object]]) -> None:
    """:func:`check_range` for each CTF field given as ``{field: (where, values)}``."""
    for quantity, (where, values) in columns.items():
        check_range(values, quantity, source, where)


@dataclass(frozen=True)
class Finding:
    """Something suspicious about a particle set as a whole.

    Attributes
    ----------
    message : str
        One sentence naming the column(s) and rows.
    refuse : bool
        A reconstruction stops unless the user accepts it (``--accept-warnings``).
    """

    message: str
    refuse: bool


def _labels(particles: ParticleSet) -> dict[str, str]:
    suffix = Path(particles.source).suffix.lower() if particles.source else ""
    if suffix == ".cs":
        return {
            "defocus": "fields ctf/df1_A, ctf/df2_A",
            "shifts": "field alignments3D/shift",
            "subset": "field alignments3D/split",
            "images": "fields blob/path, blob/idx",
            "angles": "",  # rotation vectors and radians by definition
            "astigmatism": "",
            "phase": "",
        }
    if suffix in (".mrcs", ".mrc"):
        return {
            "defocus": "ctf.pkl columns dfU, dfV",
            "shifts": "poses.pkl translations",
            "subset": "random subset",
            "images": "stack images",
            "angles": "",
            "astigmatism": "ctf.pkl column dfang",
            "phase": "ctf.pkl column phase_shift",
        }
    return {
        "defocus": "data_particles, columns rlnDefocusU, rlnDefocusV",
        "shifts": "data_particles, columns rlnOriginXAngst, rlnOriginYAngst (or rlnOriginX/Y)",
        "subset": "data_particles, column rlnRandomSubset",
        "images": "data_particles, column rlnImageName",
        "angles": "data_particles, columns rlnAngleRot, rlnAngleTilt, rlnAnglePsi",
        "astigmatism": "data_particles, column rlnDefocusAngle",
        "phase": "column rlnPhaseShift",
    }


def _rows(rows: np.ndarray, limit: int = 3) -> str:
    listed = ", ".join(str(int(r) + 1) for r in rows[:limit])
    return listed + (f" and {rows.size - limit} more" if rows.size > limit else "")


def _defocus_findings(particles: ParticleSet, label: str) -> list[Finding]:
    ctf = particles.ctf
    mean = 0.5 * (ctf.defocus_u_angstrom + ctf.defocus_v_angstrom)
    if np.all(ctf.defocus_u_angstrom == 0) and np.all(ctf.defocus_v_angstrom == 0):
        return [
            Finding(
                f"{label}: every defocus is 0 (no CTF estimated?); the CTF is then a "
                "constant and the map cannot be corrected for it",
                refuse=True,
            )
        ]
    median = float(np.median(np.abs(mean)))
    if median < MICRON_LIKE_DEFOCUS_ANGSTROM:
        raise InputError(
            f"{particles.source}: {label}: the median defocus is {median:g} Å, which is "
            f"{median:g} µm written in the wrong unit, not a real defocus; RELION and cryoSPARC "
            f"write defocus in Å (e.g. {median * 1e4:g} for {median:g} µm)"
        )
    findings = []
    overfocus = int(np.count_nonzero(mean < 0))
    if 2 * overfocus > mean.size:
        # The CTF of the opposite defocus inverts the map's contrast band by band, and the halves
        # agree on it: EMD-5625 with every defocus negated came out at 183 Å against the truth
        # (FSC −0.95 at 60 Å) while the run reported 19.6 Å.
        findings.append(
            Finding(
                f"{label}: {overfocus} of {mean.size} particles have a negative defocus "
                "(overfocus); RELION, cryoSPARC and cryoDRGN write underfocus as positive, so "
                "the sign is probably flipped, and the CTF and the map would be wrong with no "
                "other sign of it",
                refuse=True,
            )
        )
    elif overfocus:
        findings.append(
            Finding(
                f"{label}: {overfocus} of {mean.size} particles have a negative defocus "
                f"(overfocus; the first in row {int(np.flatnonzero(mean < 0)[0]) + 1}): real data "
                "are underfocused, written as positive",
                refuse=False,
            )
        )
    if len(particles) > 1 and np.ptp(mean) == 0:
        findings.append(
            Finding(
                f"{label}: every particle has the same defocus {mean[0]:g} Å (a simulation? "
                "real data spread over a range of defocus)",
                refuse=False,
            )
        )
    return findings


def _shift_findings(particles: ParticleSet, label: str) -> list[Finding]:
    pixel = particles.pixel_size_angstrom
    shifts_px = np.abs(np.asarray(particles.shifts_angstrom, dtype=np.float64)) / pixel
    largest = shifts_px.max(axis=1)
    half = particles.box / 2
    outside = np.flatnonzero(largest > half)
    if outside.size:
        r = int(outside[0])
        raise InputError(
            f"{particles.source}: {label}, row {r + 1}: shift "
            f"{particles.shifts_angstrom[r, 0]:g}, {particles.shifts_angstrom[r, 1]:g} Å "
            f"({largest[r]:.1f} px) moves the particle out of its {particles.box}-pixel box "
            f"(at most {half:g} px = {half * pixel:g} Å; {outside.size} such rows)"
        )
    far = np.flatnonzero(largest > particles.box / 4)
    if far.size:
        return [
            Finding(
                f"{label}: {far.size} of {len(particles)} particles are shifted by more than a "
                f"quarter of the box ({particles.box / 4 * pixel:g} Å; rows {_rows(far)}): "
                "origins in the wrong unit (Å read as pixels, or pixels as Å), or a bad "
                "refinement?",
                refuse=True,
            )
        ]
    return []


def _duplicate_findings(
    particles: ParticleSet, label: str, subset_label: str, use_random_subset: bool
) -> list[Finding]:
    if not particles.stacks or len(particles) < 2:
        return []
    ids = particles.image_ids()
    _, first = np.unique(ids, return_index=True)
    if first.size == len(particles):
        return []
    repeated = np.setdiff1d(np.arange(len(particles)), first)
    findings = [
        Finding(
            f"{label}: {repeated.size} rows refer to an image already listed (rows "
            f"{_rows(repeated)}): each would be counted twice",
            refuse=True,
        )
    ]
    subset = particles.random_subset
    if use_random_subset and subset is not None:
        in_a = np.bincount(ids, weights=subset == 1, minlength=first.size) > 0
        in_b = np.bincount(ids, weights=subset == 2, minlength=first.size) > 0
        shared = np.flatnonzero(in_a & in_b)
        if shared.size:
            rows = np.flatnonzero(np.isin(ids, shared))
            findings.append(
                Finding(
                    f"{subset_label}: {shared.size} images are listed in both half sets (rows "
                    f"{_rows(rows)}): the halves share their noise, so their FSC and the "
                    "resolution would read too high (--ignore-random-subset splits at random, "
                    "keeping each image's rows in one half)",
                    refuse=True,
                )
            )
    return findings


def _subset_findings(particles: ParticleSet, label: str) -> list[Finding]:
    subset = particles.random_subset
    if subset is None or len(particles) < 2:
        return []
    values = np.unique(subset)
    if values.size == 1:
        return [
            Finding(
                f"{label}: every particle is in subset {int(values[0])}, so it cannot define "
                "two half sets; the halves would be a random split instead (what "
                "--ignore-random-subset asks for)",
                refuse=True,
            )
        ]
    return []


# Angles written in radians where degrees are read: every one of at least this many within ±π
# (spread angles fall there by chance with probability (2π/360)^N).
RADIAN_LIKE_MIN_COUNT = 20


def _radian_like(values: np.ndarray) -> bool:
    return (
        values.size >= RADIAN_LIKE_MIN_COUNT
        and float(np.abs(values).max()) <= np.pi + 1e-6
        and float(np.ptp(values)) > 0.5
    )


def _radian_findings(particles: ParticleSet, labels: dict[str, str]) -> list[Finding]:
    """Euler angles (STAR only: the other formats hold rotations), astigmatism angles or phase
    shifts that are all within ±π degrees: radians written where RELION writes degrees. Read as
    degrees, every pose is within 3° of the identity, the astigmatism's axis off by up to 177°,
    or a phase plate's shift of 90° read as 1.6°."""
    suspects = []  # (label, the columns' values, what they are, what degrees would do)
    if labels["angles"] and particles.rotations is not None:
        angles = matrix_to_euler_relion(np.asarray(particles.rotations, dtype=np.float64))
        what = f"every angle of {len(angles)} particles"
        suspects.append(
            (labels["angles"], (angles[:, 0], angles[:, 2]), what, "every view near one")
        )
    if labels["astigmatism"] and particles.ctf is not None:
        ctf = particles.ctf
        astigmatic = np.abs(ctf.defocus_u_angstrom - ctf.defocus_v_angstrom) > 10.0
        what = f"the astigmatism angle of all {int(astigmatic.sum())} astigmatic particles"
        angles = np.asarray(ctf.defocus_angle_degrees)[astigmatic]
        suspects.append((labels["astigmatism"], (angles,), what, "the CTF's axis wrong"))
    if labels["phase"] and particles.ctf is not None:
        shifts = np.asarray(particles.ctf.phase_shift_degrees, dtype=np.float64)
        shifts = shifts[shifts != 0]
        what = f"every non-zero phase shift of {shifts.size} particles"
        suspects.append((labels["phase"], (shifts,), what, "a phase plate's tens of degrees ~1°"))
    return [
        Finding(
            f"{label}: {what} lies within ±π = ±3.14°: radians, where degrees are read? "
            f"(read as degrees: {effect})",
            refuse=True,
        )
        for label, columns, what, effect in suspects
        if all(_radian_like(values) for values in columns)
    ]


def _view_findings(
    particles: ParticleSet, cone: tuple[float, np.ndarray] | None = None
) -> list[Finding]:
    """Preferred orientation: half the views within 20° of one axis (never refused: the map is
    still made, resolved unevenly; :mod:`cryosplat.particles.summary`). ``cone``: the densest
    cone when the caller has it."""
    if particles.rotations is None or len(particles) < MIN_VIEWS_FOR_ORIENTATION:
        return []
    if cone is None:
        cone = densest_cone(viewing_directions(particles.rotations))
    share, axis = cone
    if share < PREFERRED_SHARE:
        return []
    return [
        Finding(
            f"preferred orientation: {100 * share:.0f} % of the views lie within "
            f"{PREFERRED_CONE_DEGREES:g}° of one axis ({axis[0]:.2f}, {axis[1]:.2f}, "
            f"{axis[2]:.2f}) where uniform views put "
            f"{100 * uniform_cone_share(PREFERRED_CONE_DEGREES):.0f} %: the directions at right "
            "angles to it are thinly sampled, so the map will be resolved unevenly (the "
            "Gaussians fill in part of what the views miss)",
            refuse=False,
        )
    ]


def check_particles(
    particles: ParticleSet,
    use_random_subset: bool = True,
    densest: tuple[float, np.ndarray] | None = None,
) -> list[Finding]:
    """Whole-set checks of a particle set's metadata (see the module docstring);
    ``use_random_subset=False``: the half-set labels are not used, so not checked; ``densest``:
    the views' densest cone when the caller has it (``ParticleSummary.densest_cone``), not
    counted again.

    Raises
    ------
    InputError
        For what cannot be right: defocus written in µm, a shift beyond half the box.

    Returns
    -------
    list[Finding]
        The suspicious-but-possible, ``refuse=True`` for those a reconstruction stops on.
    """
    labels = _labels(particles)
    findings: list[Finding] = []
    if particles.ctf is not None:
        findings += _defocus_findings(particles, labels["defocus"])
    if particles.shifts_angstrom is not None:
        findings += _shift_findings(particles, labels["shifts"])
    findings += _duplicate_findings(
        particles, labels["images"], labels["subset"], use_random_subset
    )
    if use_random_subset:
        findings += _subset_findings(particles, labels["subset"])
    findings += _radian_findings(particles, labels)
    if particles.classes is not None and (mixed := particles.classes.unchosen_warning()):
        findings.append(Finding(mixed, refuse=False))
    findings += _view_findings(particles, densest)
    return findings


def apply_findings(
    particles: ParticleSet, findings: list[Finding], accept_warnings: bool = False
) -> None:
    """Raise :class:`InputError` for refusing findings unless accepted; every finding goes to
    ``particles.warnings``, which the run's log gives once, at the warning level."""
    refusing = [f.message for f in findings if f.refuse]
    if refusing and not accept_warnings:
        raise InputError(
            f"{particles.source}: " + "; ".join(refusing) + f" (pass {ACCEPT_OPTION} to run anyway)"
        )
    for f in findings:
        particles.warnings.append(f.message + (" (accepted)" if f.refuse else ""))


def apply_check(particles: ParticleSet, line: str, passed: bool, accept_warnings: bool) -> None:
    """A data check's result for a reconstruction (the poses' conventions, the point group): its
    ``line`` goes to ``particles.notes`` where it ``passed``; where it failed, :class:`InputError`
    unless ``accept_warnings``, then the line is one of ``particles.warnings``."""
    if passed:
        particles.notes.append(line)
    elif not accept_warnings:
        raise InputError(f"{particles.source}: {line} (pass {ACCEPT_OPTION} to run anyway)")
    else:
        particles.warnings.append(f"{line} (accepted)")


def bad_image_rows(images: np.ndarray) -> np.ndarray:
    """Indices (into ``images``, shape (B, D, D)) of images with NaN, infinite or absurd pixels.

    Absurd: ``|value| > MAX_ABS_PIXEL``, beyond any detector count or normalised image, whose
    square would overflow single precision sums.
    """
    flat = np.asarray(images).reshape(len(images), -1)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(flat).all(axis=1) & (
            np.abs(flat).max(axis=1, initial=0.0) <= MAX_ABS_PIXEL
        )
    return np.flatnonzero(~ok)


def describe_image(particles: ParticleSet, row: int, images: np.ndarray | None = None) -> str:
    """``row 17 (image 3 of stack.mrcs): 1 NaN pixel`` for messages about one particle's image."""
    where = f"row {row + 1}"
    s = int(particles.stack_index[row])
    if 0 <= s < len(particles.stacks):
        where += f" (image {int(particles.image_index[row]) + 1} of {particles.stacks[s].path})"
    if images is None:
        return where
    img = np.asarray(images, dtype=np.float64)
    n_nan, n_inf = int(np.isnan(img).sum()), int(np.isinf(img).sum())
    finite = img[np.isfinite(img)]
    parts = []
    if n_nan:
        parts.append(f"{n_nan} NaN pixel(s)")
    if n_inf:
        parts.append(f"{n_inf} infinite pixel(s)")
    if finite.size and np.abs(finite).max() > MAX_ABS_PIXEL:
        parts.append(f"a pixel of {finite[np.argmax(np.abs(finite))]:.3g}")
    return where + ": " + ", ".join(parts)
