"""Is the astigmatism written as the images hold it? Its axis read from the images' Thon rings.

RELION's ``rlnDefocusAngle`` is the angle from the image x axis, counter-clockwise, to the axis of
``rlnDefocusU`` (:func:`~cryosplat.core.ctf.ctf_at`). A converter or a program of other
conventions can write the angle the other way round (images or frames mirrored in x or y), or name
the two defoci the other way round (the axis off by 90°), with no word: the metadata's CTF is
then right on average and wrong in every direction where the astigmatism bends its rings. The
map loses what lies past that: 8ZPM's atoms, box 96 at 1.5 Å, astigmatism up to 1,000 Å, SNR
0.05 (round 2, session 91): FSC with the truth at 3.5 Å 0.91 as written, 0.78 with the angle
negated, 0.41 with U and V swapped, and the reported resolution follows the loss, so nothing says
why.

Real images hold their CTF's rings in their power (:mod:`cryosplat.particles.thon_rings`), and an
astigmatic CTF's rings are ellipses: the images say where its axis lies. For up to ``n_images``
images spread over the set, each image's power is averaged in cells of :data:`N_SECTORS`
directions (over half a turn: the power of a real image is even) by rings of half a pixel, and
within each direction divided by its own moving average over rings, less one (``p``). For each
slip ``v`` (:data:`VARIANTS`) the difference ``d`` of the metadata's ``CTF²`` as written and as
slipped, in the same cells and less its moving average, is what tells the two apart, and

    ``t = Σ p·d / sqrt(Σ p²d²)``

(:func:`~cryosplat.particles.thon_rings.thon_ring_agreement` of ``p`` against ``d``) is about a
standard normal deviate where the power holds no rings, large and positive where the
rings follow the astigmatism as written, large and negative where they follow the slip. A slip
that fits by :data:`CLEAR_T` is named; the astigmatism as written agrees where it fits better than
some slip by as much; otherwise the rings are too faint, or the astigmatism too small, to say.
Images whose defoci spread across micrographs are read across images, as the Thon-ring check
reads them (rings common to every image count for nothing).

A set of several optics groups (data merged from several sources, where one converter may have
slipped and the others not) is also read group by group, the sample shared by the largest four (at
least 100 images each): read together, half the images slipped fit neither reading; apart, the
slipped group is named alone (made sets: t −18.3 for the slipped group's U and V swap, +19.0 for
the other's, +0.4 together).

Measured (round 2, session 91) on the real images of ``../shared/data/particles`` as written, and
with their STAR slipped: EMPIAR-10076 (7 images of box 320, astigmatism 385 Å at 5°): U and V
swapped t = +6.2 as written, −6.2 slipped; beta-galactosidase (17 of box 200, 176 Å) +2.4 and
−2.4; the RELION tutorial (5 of box 256, 262 Å at −160°) +2.1 and −2.1; every slip's ``t`` positive
as written on all four sets (the sign of the convention, read from real images). ``t`` grows as the
square root of the images read: made sets whose rings are as strong as these images' name every
slip from 100 images with up to 200 Å of astigmatism (t +8 to +37 as written from 100–300 images;
``python benchmarks/bench_astigmatism.py --synthetic``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from cryosplat.core.ctf import CTFParams
from cryosplat.core.option_names import option_name
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.thon_rings import (
    ACROSS_IMAGES_DEFOCUS_SD_ANGSTROM,
    ctf2_seen,
    ctf_parameters,
    sector_ring_power,
    shared_sample,
    thon_ring_agreement,
)

__all__ = [
    "AstigmatismCheck",
    "check_astigmatism",
    "with_slip",
    "VARIANTS",
    "CLEAR_T",
    "MIN_ASTIGMATISM_ANGSTROM",
    "N_SECTORS",
]

N_SECTORS = 12  # directions over half a turn (15° each)
CLEAR_T = 6.0  # as the Thon-ring check's CLEAR_Z: a reading named from here
MIN_ASTIGMATISM_ANGSTROM = 10.0  # |U − V| under this: no axis to check
# Optics groups (sources merged) read apart: the MAX_GROUPS largest share the sample, each drawing
# at least MIN_GROUP_SAMPLE images, and a group is judged on its own from MIN_GROUP_IMAGES.
MAX_GROUPS = 4
MIN_GROUP_SAMPLE = 100
MIN_GROUP_IMAGES = 5
# The slips read, each as (angle negated, U and V swapped).
VARIANTS: dict[str, tuple[bool, bool]] = {
    "the astigmatism angle negated": (True, False),
    "defocus U and V swapped": (False, True),
    "the angle negated and U and V swapped": (True, True),
}
_CAUSES = {
    "the astigmatism angle negated": (
        "the angle measured clockwise, or the images mirrored (in x or y) against the "
        "metadata: then the poses too (cryosplat info's pose check names the axis flipped)"
    ),
    "defocus U and V swapped": "the two defoci named the other way round: the axis off by 90°",
    "the angle negated and U and V swapped": (
        "the angle measured from the y axis (90° less the angle as written)"
    ),
}
WRONG_AXIS_COST = (
    "the CTF is then wrong wherever the astigmatism bends its rings, and the map loses the "
    "resolution past where that matters, with no other sign"
)


def with_slip(ctf: CTFParams, slip: str) -> CTFParams:
    """``ctf`` with the slip ``slip`` of :data:`VARIANTS` (its angle negated, its two defoci
    swapped, or both); each slip undoes itself."""
    negate, swap = VARIANTS[slip]
    if swap:
        ctf = replace(
            ctf,
            defocus_u_angstrom=ctf.defocus_v_angstrom,
            defocus_v_angstrom=ctf.defocus_u_angstrom,
        )
    if negate:
        ctf = replace(ctf, defocus_angle_degrees=-ctf.defocus_angle_degrees)
    return ctf


@dataclass(frozen=True)
class AstigmatismCheck:
    """The images' rings between the astigmatism as written and each slip of :data:`VARIANTS`
    (``t`` by slip, in that order), over ``n_images`` images whose ``|U − V|`` reaches
    ``max_astigmatism_angstrom``; ``groups``: the same for each optics group read apart (by
    name), where the set holds several (data merged from several sources, one of which may
    have slipped)."""

    n_images: int
    max_astigmatism_angstrom: float
    t: tuple[float, ...]
    across_images: bool = False
    groups: tuple[tuple[str, AstigmatismCheck], ...] = ()

    @property
    def readings(self) -> dict[str, float]:
        return dict(zip(VARIANTS, self.t, strict=True))

    @property
    def best_slip(self) -> str:
        """The slip the rings follow best against the astigmatism as written (lowest ``t``)."""
        return min(self.readings, key=self.readings.get)

    @property
    def own_verdict(self) -> str:
        """``"mismatch"``: a slip fits the rings better by :data:`CLEAR_T`; ``"agree"``: the
        astigmatism as written fits them better than some slip by as much, and no slip fits
        better at all; ``"weak"``: the rings (or the astigmatism) are too faint to say (these
        images read together, :attr:`verdict` without the groups)."""
        if min(self.t) <= -CLEAR_T:
            return "mismatch"
        return "agree" if min(self.t) > 0 and max(self.t) >= CLEAR_T else "weak"

    @property
    def verdict(self) -> str:
        """:attr:`own_verdict`, or ``"mismatch"`` where one optics group's images read apart
        follow a slip."""
        if any(check.own_verdict == "mismatch" for _, check in self.groups):
            return "mismatch"
        return self.own_verdict

    def _readings_text(self) -> str:
        return ", ".join(f"{name} {t:+.1f}" for name, t in self.readings.items())

    def describe(self) -> str:
        """One line for ``cryosplat info`` and the log."""
        counted = (
            f"t for the astigmatism as written against {self._readings_text()} "
            f"({self.n_images} images, |U - V| up to {self.max_astigmatism_angstrom:.0f} Å)"
        )
        slipped = [(name, c) for name, c in self.groups if c.own_verdict == "mismatch"]
        if slipped:
            parts = "; ".join(
                f"{name}: {c.best_slip} ({_CAUSES[c.best_slip]}), t {c._readings_text()} "
                f"({c.n_images} images)"
                for name, c in slipped
            )
            return (
                f"the images' Thon rings follow the CTF with a slip of its astigmatism in "
                f"{len(slipped)} of {len(self.groups)} optics groups read apart: {parts}; "
                f"together {counted}; {WRONG_AXIS_COST} (cryosplat amend --astigmatism-as "
                f"{option_name(slipped[0][1].best_slip)} --optics-group {slipped[0][0]} writes "
                "them so)"
            )
        if self.verdict == "mismatch":
            slip = self.best_slip
            return (
                f"the images' Thon rings follow the CTF with {slip}, not its astigmatism as "
                f"written ({_CAUSES[slip]}): {counted}; {WRONG_AXIS_COST} (cryosplat amend "
                f"--astigmatism-as {option_name(slip)} writes the metadata so)"
            )
        if self.verdict == "agree":
            return f"the images' Thon rings follow the astigmatism as written: {counted}"
        return (
            f"the images' rings are too faint, or the astigmatism too small, to check its axis: "
            f"{counted} (clear from {CLEAR_T:g})"
        )


def check_astigmatism(particles: ParticleSet, n_images: int = 300) -> AstigmatismCheck | None:
    """Read up to ``n_images`` astigmatic images spread over the set and check the axis of their
    rings against the metadata's and each slip's (module docstring); None without a CTF, with
    images under 24 pixels, or where no particle's ``|U − V|`` reaches
    :data:`MIN_ASTIGMATISM_ANGSTROM`."""
    if particles.ctf is None or particles.box < 24 or len(particles) == 0:
        return None
    ctf = particles.ctf
    astigmatism = np.abs(ctf.defocus_u_angstrom - ctf.defocus_v_angstrom)
    astigmatic = np.flatnonzero(astigmatism >= MIN_ASTIGMATISM_ANGSTROM)
    if astigmatic.size == 0:
        return None
    labels = np.asarray(particles.optics_group)[astigmatic]
    indices, groups = shared_sample(
        particles, astigmatic, labels, n_images, MAX_GROUPS, MIN_GROUP_SAMPLE
    )
    sample = particles.subset(indices)  # the CTF of these images alone, as written and slipped
    every = np.arange(len(sample))
    power, radius_px, direction = sector_ring_power(sample, every, N_SECTORS)
    pixel = sample.pixel_sizes_angstrom()[:, None, None]
    k = torch.as_tensor(radius_px[None] / (sample.box * pixel), dtype=torch.float64)
    theta = torch.as_tensor(direction[None], dtype=torch.float64)

    def ctf2(read: ParticleSet) -> np.ndarray:
        return ctf2_seen(read, every, ctf_parameters(read, every), k, theta).numpy()

    as_written = ctf2(sample)
    # t against each slip: the power against the difference of the two CTF² (the moving average
    # is linear, so the difference of the two less theirs is what the Thon-ring z reads).
    differences = [
        as_written - ctf2(replace(sample, ctf=with_slip(sample.ctf, slip))) for slip in VARIANTS
    ]
    mean_defocus = 0.5 * (sample.ctf.defocus_u_angstrom + sample.ctf.defocus_v_angstrom)
    spread = astigmatism[indices]

    def read(rows: slice) -> AstigmatismCheck:
        across = bool(np.std(mean_defocus[rows]) >= ACROSS_IMAGES_DEFOCUS_SD_ANGSTROM)
        t = tuple(thon_ring_agreement(power[rows], d[rows], across) for d in differences)
        return AstigmatismCheck(len(mean_defocus[rows]), float(spread[rows].max()), t, across)

    starts = np.cumsum([0] + [n for _, n in groups])
    parts = tuple(
        (particles.optics[g].name, read(slice(a, a + n)))
        for (g, n), a in zip(groups, starts, strict=False)
        if n >= MIN_GROUP_IMAGES
    )
    return replace(read(slice(None)), groups=parts if len(parts) > 1 else ())
