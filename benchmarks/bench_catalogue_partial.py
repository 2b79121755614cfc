"""Benchmark sets whose particles are in two states: a part of the molecule held by only some of
them (compositional heterogeneity, ``bench_heterogeneity``; round 2, session 59); and sets that
hold it with every other imperfection of real data at once (``COMBINED``).

Each real map loses a soft ball of its density (a subunit or a bound partner's worth, chosen
where the map's density is high, 60-75 % of the way out along its longest axis) in a share of
the particles; every method is scored against the two states' occupancy-weighted mean, what a
consensus map of such a set converges to. Made after every default.
"""

from __future__ import annotations

from dataclasses import replace

from bench_catalogue_late import with_pose_errors
from bench_heterogeneity import MissingPart
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# The parts: where each map is dense, about 60 % of the way out along its longest axis.
EMD1832_PART = MissingPart((36.8, 42.8, 25.1), 30.0, 0.6)
EMD5625_PART = MissingPart((25.0, 36.1, 21.0), 25.0, 0.5)
BETAGAL_PART = MissingPart((50.0, 50.0, 72.0), 30.0, 0.7)

PARTIAL = map_table(
    (
        (
            "p59_emd1832_part",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.003, 5911),
            {"missing_part": EMD1832_PART, "noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "p59_emd5625_part",
            "maps/emd_5625.map",
            (56, 4.23, 5_000, 0.003, 5912),
            {"missing_part": EMD5625_PART},
        ),
        (
            "p59_betagal_part",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 8_000, 0.002, 5913),
            {"missing_part": BETAGAL_PART, "noise": "coloured", "noise_source": RIBOSOME},
        ),
    )
)


def _all_at_once(
    part: MissingPart, present: float, degrees: float, angstrom: float, defocus: float, **other
) -> dict:
    """A set's settings with ``part`` held by ``present`` of the particles, the poses recorded
    with errors of ``degrees`` (rms) and ``angstrom`` (s.d.), each defocus off by ``defocus``
    (s.d., Å), and the ``other`` imperfections."""
    return {
        "missing_part": replace(part, present_fraction=present),
        **with_pose_errors(degrees, angstrom),
        "defocus_error_angstrom": defocus,
        **other,
    }


# Everything a real set holds at once (round 2, session 59): two states, poses and defocus
# recorded with errors, noise levels that differ by image, an envelope the STAR does not carry,
# neighbours in the box, preferred views; each dimension alone was measured before. Made after
# every default.
COMBINED = map_table(
    (
        (
            "c59_emd1832_all",
            "maps/emd_1832.map",
            (64, 5.7, 8_000, 0.005, 5931),
            _all_at_once(
                EMD1832_PART,
                0.7,
                2.0,
                1.5,
                200.0,
                noise_sd_spread=0.3,
                ctf_bfactor_angstrom2=(50.0, 150.0),
                ctf_bfactor_recorded=False,
                noise="coloured",
                noise_source=RIBOSOME,
            ),
        ),
        (
            "c59_betagal_all",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 8_000, 0.003, 5932),
            _all_at_once(
                BETAGAL_PART,
                0.6,
                1.0,
                1.0,
                150.0,
                neighbours=0.3,
                noise="coloured",
                noise_source=TUTORIAL,
            ),
        ),
        (
            "c59_emd5625_all",
            "maps/emd_5625.map",
            (56, 4.23, 6_000, 0.004, 5933),
            _all_at_once(
                EMD5625_PART,
                0.6,
                2.0,
                1.5,
                200.0,
                views=None,
                preferred_views=(0.5, 30.0),
                noise_sd_spread=0.2,
                noise="coloured",
                noise_source=TUTORIAL,
            ),
        ),
    )
)
