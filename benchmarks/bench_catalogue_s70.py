"""Benchmark sets of round 2, session 70: truths sharpened as post-processed maps are deposited
(:attr:`bench_datasets.DatasetSpec.truth_bfactor_angstrom2`), a group of
:class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue` names for ``--datasets unseen70``."""

from __future__ import annotations

from bench_catalogue_unseen import CRYOSPARC_CTF, TRPV1
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# Chosen before any method was run on them (round 2, session 70): four maps sharpened to Nyquist
# by a negative B-factor, so that their fine shells (and the maps' own noise there) carry more of
# the signal than any earlier truth's: beta-galactosidase by -150 Å² in the betagal_17 stack's
# noise; EMD-1832 by -300 Å² with uniform views in the ribosome stack's noise; TRPV1 at its own
# box of 48 by -200 Å² with the cryoSPARC set's CTF and noise levels that differ, in the RELION
# tutorial's noise; the 70S ribosome (beside ../shared/data, bench_extra_maps) by -300 Å² in the
# TRPV1 stack's noise.
UNSEEN_70 = map_table(
    (
        (
            "u70_betagal_sharp",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7001),
            {"truth_bfactor_angstrom2": -150.0, "noise": "coloured"},
        ),
        (
            "u70_emd1832_sharp",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 7002),
            {
                "truth_bfactor_angstrom2": -300.0,
                "views": None,
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
        (
            "u70_trpv1_sharp",
            "../extra_maps/trpv1.mrc",
            (48, 4.88, 4_000, 0.003, 7003),
            {
                **CRYOSPARC_CTF,
                "truth_bfactor_angstrom2": -200.0,
                "noise_sd_spread": 0.2,
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "u70_ribosome70s_sharp",
            "../extra_maps/ribosome70s.mrc",
            (64, 5.0, 6_000, 0.003, 7004),
            {"truth_bfactor_angstrom2": -300.0, "noise": "coloured", "noise_source": TRPV1},
        ),
    )
)

# Chosen after unseen70 had run and before any method was run on these (round 2, session 70),
# nothing changed in between: each image plus a linear background ramp (its value at the box's
# edge 0.3-1 noise s.d., rms), as extracted particles keep of a background that varies over the
# micrograph. EMD-1832 in the betagal_17 stack's noise; beta-galactosidase in white noise;
# EMD-5625 with noise levels that differ in the RELION tutorial's noise; EMD-6824 with the
# cryoSPARC set's CTF in the ribosome stack's noise.
UNSEEN_70B = map_table(
    (
        (
            "u70b_emd1832_ramp",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 7011),
            {"background_ramp_sd": 0.3, "noise": "coloured"},
        ),
        (
            "u70b_betagal_ramp",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7012),
            {"background_ramp_sd": 0.5},
        ),
        (
            "u70b_emd5625_ramp",
            "maps/emd_5625.map",
            (56, 4.23, 4_000, 0.003, 7013),
            {
                "background_ramp_sd": 1.0,
                "noise_sd_spread": 0.2,
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "u70b_emd6824_ramp",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.003, 7014),
            {
                **CRYOSPARC_CTF,
                "background_ramp_sd": 0.3,
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
    )
)

# Chosen after unseen70b had run and before any method was run on these (round 2, session 70),
# nothing changed in the fit in between (the odd-box maps' writing only): the two new recipes
# with other view and noise models. EMD-1832 with its views in three clusters, ramps of 0.3 and
# noise levels that differ, in the TRPV1 stack's noise; beta-galactosidase from 4,000 particles,
# half the views within 15°, ramps of 0.5, in the tutorial's noise; TRPV1 Fourier-padded to a box
# of 64 and sharpened by -150 Å², in betagal_17's noise; the 70S ribosome with poses off by 1° and
# 1 Å and ramps of 0.5, in the ribosome stack's noise.
UNSEEN_70C = map_table(
    (
        (
            "u70c_emd1832_clusters",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 7021),
            {
                "views": None,
                "preferred_views": (
                    (0.35, 15.0),
                    (0.35, 15.0, 90.0, 0.0),
                    (0.3, 15.0, 90.0, 90.0),
                ),
                "background_ramp_sd": 0.3,
                "noise_sd_spread": 0.2,
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
        (
            "u70c_betagal_pref",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 4_000, 0.003, 7022),
            {
                "views": None,
                "preferred_views": (0.5, 15.0),
                "background_ramp_sd": 0.5,
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "u70c_trpv1_64_sharp",
            "../extra_maps/trpv1.mrc",
            (64, 3.66, 6_000, 0.003, 7023),
            {"truth_bfactor_angstrom2": -150.0, "noise": "coloured"},
        ),
        (
            "u70c_ribosome70s_pose",
            "../extra_maps/ribosome70s.mrc",
            (64, 5.0, 6_000, 0.003, 7024),
            {
                "pose_error_degrees": 1.0,
                "shift_error_angstrom": 1.0,
                "background_ramp_sd": 0.5,
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
    )
)
