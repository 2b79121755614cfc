"""Benchmark sets of round 2, session 73: a domain that moves from particle to particle
(:attr:`bench_datasets.DatasetSpec.moving_part`, :mod:`bench_flexibility`), groups of
:class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue` names for ``--datasets unseen73``
and ``unseen73b``; and ``unseen73c``, a support film's edge across a share of the images
(:attr:`bench_datasets.DatasetSpec.carbon_edges`).

Each moving part is a ball of the map's density about the centre of its mass within the ball's
radius round the point 60 % of the way out along the map's longest axis (its density above a
fifth of its peak); it turns about an axis through the ball's inner edge (the point one radius
back towards the map's centre of mass), perpendicular to that direction.
"""

from __future__ import annotations

from bench_catalogue_late import with_pose_errors
from bench_catalogue_unseen import TRPV1
from bench_flexibility import MovingPart
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# Chosen before any method was run on them (round 2, session 73). Beta-galactosidase with a
# 30 Å ball turning by 10° (s.d.), in betagal_17's noise; EMD-1832 with a 30 Å ball by 8°, in
# white noise; EMD-5625 with a 25 Å ball by 10°, in the tutorial's noise; 3J9G's potential with a
# 25 Å ball by 6°, in the ribosome stack's noise.
BETAGAL_BALL = ((50.0, 50.0, 64.1), 30.0, (50.0, 50.0, 55.7), (0.0, 1.0, 0.0))
EMD1832_BALL = ((27.7, 21.9, 35.5), 30.0, (29.7, 26.2, 33.3), (0.0, 0.46, 0.89))

UNSEEN_73 = map_table(
    (
        (
            "u73_betagal_flex",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7301),
            {
                "moving_part": MovingPart(*BETAGAL_BALL, 10.0),
                "noise": "coloured",
            },
        ),
        (
            "u73_emd1832_flex",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.003, 7302),
            {"moving_part": MovingPart(*EMD1832_BALL, 8.0)},
        ),
        (
            "u73_emd5625_flex",
            "maps/emd_5625.map",
            (56, 4.23, 5_000, 0.003, 7303),
            {
                "moving_part": MovingPart(
                    (24.9, 36.8, 20.1), 25.0, (26.6, 32.8, 24.3), (0.0, -0.73, -0.69), 10.0
                ),
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "u73_3j9g_flex",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.003, 7304),
            {
                "moving_part": MovingPart(
                    (16.1, 34.8, 31.8), 25.0, (21.7, 33.8, 31.9), (0.18, 0.98, 0.0), 6.0
                ),
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
    )
)

# Chosen after unseen73 had run and before any method was run on these (round 2, session 73),
# nothing changed in between: the 70S ribosome with a 30 Å ball turning by 8°, in white noise;
# EMD-6824 with a 20 Å ball by 6°, in the TRPV1 stack's noise; beta-galactosidase's ball by 15°
# with half the views within 25° of one axis, in the tutorial's noise; EMD-1832's ball by 12°
# with the poses recorded 1.5° and 1 Å off, as a refinement of a flexible molecule leaves them,
# in the ribosome stack's noise.
UNSEEN_73B = map_table(
    (
        (
            "u73b_ribosome70s_flex",
            "../extra_maps/ribosome70s.mrc",
            (64, 5.0, 6_000, 0.003, 7311),
            {
                "moving_part": MovingPart(
                    (25.0, 36.9, 21.8), 30.0, (28.2, 35.2, 26.5), (0.83, 0.0, -0.56), 8.0
                )
            },
        ),
        (
            "u73b_emd6824_flex",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.003, 7312),
            {
                "moving_part": MovingPart(
                    (35.0, 35.0, 20.5), 20.0, (35.0, 35.0, 28.0), (0.0, -1.0, 0.0), 6.0
                ),
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
        (
            "u73b_betagal_flex_pref",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7313),
            {
                "moving_part": MovingPart(*BETAGAL_BALL, 15.0),
                "views": None,
                "preferred_views": (0.5, 25.0),
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "u73b_emd1832_flex_pose",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.003, 7314),
            {
                "moving_part": MovingPart(*EMD1832_BALL, 12.0),
                **with_pose_errors(1.5, 1.0),
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
    )
)

# Chosen after unseen73b had run and before any method was run on these (round 2, session 73),
# nothing changed in the package in between: a support film's edge across a share of the images
# (:class:`bench_noise.CarbonEdges`). EMD-1832 with 10 % of its images holding one, a step of 3
# noise s.d.s, in white noise; beta-galactosidase with 20 % at 2, in betagal_17's noise; EMD-5625
# with 15 % at 4, in the tutorial's noise; 3J9G's potential with 30 % at 1.5 and noise levels that
# differ, in the ribosome stack's noise.
UNSEEN_73C = map_table(
    (
        (
            "u73c_emd1832_carbon",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 7321),
            {"carbon_edges": (0.1, 3.0)},
        ),
        (
            "u73c_betagal_carbon",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7322),
            {"carbon_edges": (0.2, 2.0), "noise": "coloured"},
        ),
        (
            "u73c_emd5625_carbon",
            "maps/emd_5625.map",
            (56, 4.23, 4_000, 0.003, 7323),
            {"carbon_edges": (0.15, 4.0), "noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "u73c_3j9g_carbon",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.003, 7324),
            {
                "carbon_edges": (0.3, 1.5),
                "noise_sd_spread": 0.2,
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
    )
)

# Chosen after images with background structure were left out by default
# (cryosplat.reconstruct.grid.background_structure) and before any method was run on these (round
# 2, session 73): milder edges than those the change was measured on. EMD-5625 with 25 % of its
# images holding one, a step of 1 noise s.d., in betagal_17's noise; beta-galactosidase with 8 %
# at 0.7, in white noise.
UNSEEN_73D = map_table(
    (
        (
            "u73d_emd5625_carbon_mild",
            "maps/emd_5625.map",
            (56, 4.23, 5_000, 0.003, 7331),
            {"carbon_edges": (0.25, 1.0), "noise": "coloured"},
        ),
        (
            "u73d_betagal_carbon_mild",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7332),
            {"carbon_edges": (0.08, 0.7)},
        ),
    )
)

# Chosen after the limit was lowered where many sampled images lie far in the ratios' tail
# (background_structure.TAIL_SHARE, round 2, session 73) and before any method was run on these:
# EMD-1832 with 20 % of its images holding an edge whose film adds 1.2 noise s.d.s, in the
# tutorial's noise; the 70S ribosome with 12 % at 2, in white noise; EMD-6824 with 15 % at 1.5, in
# betagal_17's noise.
UNSEEN_73E = map_table(
    (
        (
            "u73e_emd1832_carbon",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.003, 7341),
            {"carbon_edges": (0.2, 1.2), "noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "u73e_ribosome70s_carbon",
            "../extra_maps/ribosome70s.mrc",
            (64, 5.0, 6_000, 0.003, 7342),
            {"carbon_edges": (0.12, 2.0)},
        ),
        (
            "u73e_emd6824_carbon",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.003, 7343),
            {"carbon_edges": (0.15, 1.5), "noise": "coloured"},
        ),
    )
)
