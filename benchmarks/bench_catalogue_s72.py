"""Benchmark sets of round 2, session 72: noise whose power depends on its direction in the image
(:attr:`bench_datasets.DatasetSpec.noise_anisotropy`) and hot pixels
(:attr:`bench_datasets.DatasetSpec.hot_pixels`), four groups of
:class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue` names for ``--datasets unseen72``,
``unseen72b``, ``unseen72c`` and ``unseen72d``."""

from __future__ import annotations

from bench_catalogue_unseen import TRPV1
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# Chosen before any method was run on them (round 2, session 72): noise stronger along the images'
# x axis than along y. Beta-galactosidase in betagal_17's noise; EMD-1832 in white noise; 3J9G's
# potential with noise levels that differ, in the tutorial's noise; EMD-6824 in the TRPV1 stack's
# noise.
UNSEEN_72 = map_table(
    (
        (
            "u72_betagal_aniso",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7201),
            {"noise": "coloured", "noise_anisotropy": 0.5},
        ),
        (
            "u72_emd1832_aniso",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 7202),
            {"noise_anisotropy": 0.7},
        ),
        (
            "u72_3j9g_aniso",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.003, 7203),
            {
                "noise_anisotropy": 0.4,
                "noise_sd_spread": 0.2,
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "u72_emd6824_aniso",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.003, 7204),
            {"noise_anisotropy": 0.5, "noise": "coloured", "noise_source": TRPV1},
        ),
    )
)

# Chosen after unseen72 had run and before any method was run on these (round 2, session 72),
# nothing changed in between: hot pixels. EMD-5625 with 0.1 % of its pixels 15 noise s.d.s out,
# in the tutorial's noise; the 70S ribosome with 0.3 % at 8, in white noise; beta-galactosidase
# with 0.05 % at 30 and noise levels that differ, in the TRPV1 stack's noise; EMD-1832 with 0.2 %
# at 10 and noise stronger along x, in the ribosome stack's noise.
UNSEEN_72B = map_table(
    (
        (
            "u72b_emd5625_hot",
            "maps/emd_5625.map",
            (56, 4.23, 4_000, 0.003, 7211),
            {"hot_pixels": (0.001, 15.0), "noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "u72b_ribosome70s_hot",
            "../extra_maps/ribosome70s.mrc",
            (64, 5.0, 6_000, 0.003, 7212),
            {"hot_pixels": (0.003, 8.0)},
        ),
        (
            "u72b_betagal_hot",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 5_000, 0.003, 7213),
            {
                "hot_pixels": (0.0005, 30.0),
                "noise_sd_spread": 0.2,
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
        (
            "u72b_emd1832_hot_aniso",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 7214),
            {
                "hot_pixels": (0.002, 10.0),
                "noise_anisotropy": 0.3,
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
    )
)

# Chosen after unseen72b had run and before any method was run on these (round 2, session 72),
# nothing changed in between: the two noises with earlier weak spots. EMD-5625 with half its
# views within 20° and noise stronger along x, in betagal_17's noise; 3J9G's potential with poses
# off by 1° and 1 Å and hot pixels, in white noise; EMD-6824 sharpened by -150 Å² with both, in
# the tutorial's noise; the 70S ribosome with 30 % of its images holding part of a neighbour and
# noise stronger along x, in the TRPV1 stack's noise.
UNSEEN_72C = map_table(
    (
        (
            "u72c_emd5625_pref_aniso",
            "maps/emd_5625.map",
            (56, 4.23, 4_000, 0.003, 7221),
            {
                "views": None,
                "preferred_views": (0.5, 20.0),
                "noise_anisotropy": 0.5,
                "noise": "coloured",
            },
        ),
        (
            "u72c_3j9g_pose_hot",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.003, 7222),
            {"pose_error_degrees": 1.0, "shift_error_angstrom": 1.0, "hot_pixels": (0.001, 20.0)},
        ),
        (
            "u72c_emd6824_sharp_both",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.003, 7223),
            {
                "truth_bfactor_angstrom2": -150.0,
                "noise_anisotropy": 0.4,
                "hot_pixels": (0.001, 12.0),
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "u72c_ribosome70s_neigh_aniso",
            "../extra_maps/ribosome70s.mrc",
            (64, 5.0, 6_000, 0.003, 7224),
            {
                "neighbours": 0.3,
                "noise_anisotropy": 0.5,
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
    )
)

# Chosen after hot pixels were replaced by default (cryosplat.particles.dust) and before any method
# was run on these (round 2, session 72): other shares and levels of hot pixels than those the
# change was measured on. EMD-1832 with 0.01 % at 100 noise s.d.s (a few extreme ones, as X-ray
# hits), in white noise; beta-galactosidase with 0.5 % at 6 (many mild ones, mostly under the
# threshold), in betagal_17's noise; EMD-6824 with 0.1 % at 20 and noise levels that differ, in
# the TRPV1 stack's noise; 3J9G's potential with 0.2 % at 12 and half its views within 20°, in
# the tutorial's noise.
UNSEEN_72D = map_table(
    (
        (
            "u72d_emd1832_xray",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 7231),
            {"hot_pixels": (0.0001, 100.0)},
        ),
        (
            "u72d_betagal_mild",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 5_000, 0.003, 7232),
            {"hot_pixels": (0.005, 6.0), "noise": "coloured"},
        ),
        (
            "u72d_emd6824_hot",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.003, 7233),
            {
                "hot_pixels": (0.001, 20.0),
                "noise_sd_spread": 0.2,
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
        (
            "u72d_3j9g_pref_hot",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.003, 7234),
            {
                "hot_pixels": (0.002, 12.0),
                "views": None,
                "preferred_views": (0.5, 20.0),
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
    )
)
