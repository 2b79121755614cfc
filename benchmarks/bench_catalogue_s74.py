"""Benchmark sets of round 2, session 74: contamination beside the particles — part of a round,
dense blob of ice (or ethane, or an aggregate) in a share of the images
(:attr:`bench_datasets.DatasetSpec.ice_blobs`, :class:`bench_noise.IceBlobs`), groups of
:class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue` names for ``--datasets unseen74``
and ``unseen74b``; and ``unseen74c``, other microscopes' CTFs (a Cs corrector, high defocus,
near focus, more amplitude contrast); ``unseen74d``, the artefacts of real data together.
"""

from __future__ import annotations

from bench_catalogue_late import with_pose_errors
from bench_catalogue_unseen import CRYOSPARC_CTF, TRPV1
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# Chosen before any method was run on them (round 2, session 74), with the defaults of session
# 73: EMD-1832 with 20 % of its images holding part of a blob 3 noise s.d.s at its thickest, in
# white noise; beta-galactosidase with 15 % at 2, in betagal_17's noise; EMD-5625 with 25 % at
# 1.5, in the tutorial's noise; 3J9G's potential with 10 % at 6 and noise levels that differ, in
# the ribosome stack's noise.
UNSEEN_74 = map_table(
    (
        (
            "u74_emd1832_ice",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.003, 7401),
            {"ice_blobs": (0.2, 3.0)},
        ),
        (
            "u74_betagal_ice",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7402),
            {"ice_blobs": (0.15, 2.0), "noise": "coloured"},
        ),
        (
            "u74_emd5625_ice",
            "maps/emd_5625.map",
            (56, 4.23, 5_000, 0.003, 7403),
            {"ice_blobs": (0.25, 1.5), "noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "u74_3j9g_ice",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.003, 7404),
            {
                "ice_blobs": (0.1, 6.0),
                "noise_sd_spread": 0.2,
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
    )
)

# Chosen after unseen74 had run and before any method was run on these (round 2, session 74),
# nothing changed in the package in between: the 70S ribosome, which fills its box, with 30 % of
# its images holding part of a blob at 2.5 noise s.d.s, in white noise; EMD-6824 with blobs in 10
# % at 4 and a support film's edge in another 10 % at 2, in the TRPV1 stack's noise; TRPV1 at box
# 48 with the cryoSPARC set's CTF and a few strong blobs (5 % at 8); beta-galactosidase with half
# its views within 25° of one axis and mild blobs (20 % at 1), in the tutorial's noise.
UNSEEN_74B = map_table(
    (
        (
            "u74b_ribosome70s_ice",
            "../extra_maps/ribosome70s.mrc",
            (64, 5.0, 6_000, 0.003, 7411),
            {"ice_blobs": (0.3, 2.5)},
        ),
        (
            "u74b_emd6824_ice_carbon",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.003, 7412),
            {
                "ice_blobs": (0.1, 4.0),
                "carbon_edges": (0.1, 2.0),
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
        (
            "u74b_trpv1_48_ice",
            "../extra_maps/trpv1.mrc",
            (48, 4.88, 4_000, 0.003, 7413),
            {"ice_blobs": (0.05, 8.0), **CRYOSPARC_CTF},
        ),
        (
            "u74b_betagal_ice_pref",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7414),
            {
                "ice_blobs": (0.2, 1.0),
                "views": None,
                "preferred_views": (0.5, 25.0),
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
    )
)

# Chosen after unseen74b had run and before any method was run on these (round 2, session 74),
# nothing changed in the package's maps in between: CTFs of other microscopes and habits, each
# defocus drawn uniformly in its range rather than from EMPIAR-10028's table. EMD-1832 through a
# Cs corrector (0.01 mm) at high defocus (2.5-4.5 µm, astigmatism up to 300 Å) with amplitude
# contrast 0.07, in white noise; beta-galactosidase at 3-5 µm (Cs 2.7 mm), in betagal_17's noise;
# EMD-5625 near focus (0.4-1.2 µm) through a Cs corrector with amplitude contrast 0.07, in the
# tutorial's noise; 3J9G's potential at 1-2.5 µm through a Cs corrector with amplitude contrast
# 0.15 (a thin carbon support's), in the ribosome stack's noise.
UNSEEN_74C = map_table(
    (
        (
            "u74c_emd1832_hidf",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.003, 7421),
            {
                "ctf_table": None,
                "defocus_min_um": 2.5,
                "defocus_max_um": 4.5,
                "astigmatism_max_angstrom": 300.0,
                "cs_mm": 0.01,
                "amplitude_contrast": 0.07,
            },
        ),
        (
            "u74c_betagal_hidf",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7422),
            {
                "ctf_table": None,
                "defocus_min_um": 3.0,
                "defocus_max_um": 5.0,
                "cs_mm": 2.7,
                "noise": "coloured",
            },
        ),
        (
            "u74c_emd5625_nearfocus",
            "maps/emd_5625.map",
            (56, 4.23, 5_000, 0.003, 7423),
            {
                "ctf_table": None,
                "defocus_min_um": 0.4,
                "defocus_max_um": 1.2,
                "cs_mm": 0.01,
                "amplitude_contrast": 0.07,
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "u74c_3j9g_q15",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.003, 7424),
            {
                "ctf_table": None,
                "defocus_min_um": 1.0,
                "defocus_max_um": 2.5,
                "cs_mm": 0.01,
                "amplitude_contrast": 0.15,
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
    )
)

# Chosen after unseen74c had run and before any method was run on these (round 2, session 74),
# nothing changed in the package's maps in between: the artefacts of real data together — noise
# levels that differ, background ramps, hot pixels, a support film's edge in some images and a
# blob of contamination in others, on four maps. EMD-1832 with noise stronger along one image
# axis too, in the tutorial's noise; beta-galactosidase in betagal_17's; 3J9G's potential with its
# poses recorded 1° and 1 Å off, in the ribosome stack's; EMD-6824 in white noise.
UNSEEN_74D = map_table(
    (
        (
            "u74d_emd1832_mix",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.003, 7431),
            {
                "noise": "coloured",
                "noise_source": TUTORIAL,
                "noise_sd_spread": 0.2,
                "background_ramp_sd": 0.5,
                "hot_pixels": (0.001, 15.0),
                "carbon_edges": (0.08, 2.0),
                "ice_blobs": (0.08, 3.0),
                "noise_anisotropy": 0.3,
            },
        ),
        (
            "u74d_betagal_mix",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7432),
            {
                "noise": "coloured",
                "noise_sd_spread": 0.3,
                "background_ramp_sd": 0.3,
                "hot_pixels": (0.0005, 20.0),
                "carbon_edges": (0.05, 1.5),
                "ice_blobs": (0.1, 2.0),
            },
        ),
        (
            "u74d_3j9g_mix",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.003, 7433),
            {
                "noise": "coloured",
                "noise_source": RIBOSOME,
                "noise_sd_spread": 0.25,
                "background_ramp_sd": 0.7,
                "hot_pixels": (0.002, 10.0),
                "carbon_edges": (0.1, 3.0),
                "ice_blobs": (0.05, 5.0),
                **with_pose_errors(1.0, 1.0),
            },
        ),
        (
            "u74d_emd6824_mix",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.003, 7434),
            {
                "noise_sd_spread": 0.2,
                "background_ramp_sd": 0.4,
                "hot_pixels": (0.001, 12.0),
                "carbon_edges": (0.05, 4.0),
                "ice_blobs": (0.15, 2.0),
            },
        ),
    )
)
