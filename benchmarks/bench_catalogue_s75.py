"""Benchmark sets of round 2, session 75: particles at a micrograph's edge, their boxes partly
outside it and filled as ``relion_preprocess`` fills them, with the nearest pixels inside
(:attr:`bench_datasets.DatasetSpec.micrograph_edges`, :class:`bench_noise.MicrographEdges`);
groups of :class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue` names for
``--datasets unseen75`` and ``unseen75b``.
"""

from __future__ import annotations

from bench_catalogue_unseen import CRYOSPARC_CTF, TRPV1
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# Chosen before any method was run on them (round 2, session 75), with the defaults of session
# 74: EMD-1832 with 15 % of its particles at an edge, up to 0.35 of the box outside, in white
# noise; beta-galactosidase with 10 % up to 0.45, in betagal_17's noise; EMD-5625 with 20 % up to
# 0.3, in the tutorial's noise; 3J9G's potential with 12 % up to 0.4 and noise levels that
# differ, in the ribosome stack's noise.
UNSEEN_75 = map_table(
    (
        (
            "u75_emd1832_edge",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.003, 7501),
            {"micrograph_edges": (0.15, 0.35)},
        ),
        (
            "u75_betagal_edge",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7502),
            {"micrograph_edges": (0.1, 0.45), "noise": "coloured"},
        ),
        (
            "u75_emd5625_edge",
            "maps/emd_5625.map",
            (56, 4.23, 5_000, 0.003, 7503),
            {"micrograph_edges": (0.2, 0.3), "noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "u75_3j9g_edge",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.003, 7504),
            {
                "micrograph_edges": (0.12, 0.4),
                "noise_sd_spread": 0.2,
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
    )
)

# Chosen with unseen75, before any method was run on them: the 70S ribosome, which fills its box,
# with a quarter of its particles at an edge up to 0.25 of the box, in white noise; EMD-6824 with
# 15 % up to 0.4 and background ramps (the ice thins towards a hole's edge), in the TRPV1 stack's
# noise; TRPV1 at box 48 with the cryoSPARC set's CTF, 10 % up to 0.45; beta-galactosidase with
# half its views within 25° of one axis and 30 % of its particles at an edge up to 0.2, in the
# tutorial's noise.
UNSEEN_75B = map_table(
    (
        (
            "u75b_ribosome70s_edge",
            "../extra_maps/ribosome70s.mrc",
            (64, 5.0, 6_000, 0.003, 7511),
            {"micrograph_edges": (0.25, 0.25)},
        ),
        (
            "u75b_emd6824_edge_ramp",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.003, 7512),
            {
                "micrograph_edges": (0.15, 0.4),
                "background_ramp_sd": 0.5,
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
        (
            "u75b_trpv1_48_edge",
            "../extra_maps/trpv1.mrc",
            (48, 4.88, 4_000, 0.003, 7513),
            {"micrograph_edges": (0.1, 0.45), **CRYOSPARC_CTF},
        ),
        (
            "u75b_betagal_edge_pref",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7514),
            {
                "micrograph_edges": (0.3, 0.2),
                "views": None,
                "preferred_views": (0.5, 25.0),
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
    )
)
