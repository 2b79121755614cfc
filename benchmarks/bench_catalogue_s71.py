"""Benchmark sets of round 2, session 71: particles imaged through a phase plate
(:attr:`bench_datasets.DatasetSpec.phase_shift_degrees`) or at 100 kV, three groups of
:class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue` names for ``--datasets unseen71``,
``unseen71b`` and ``unseen71c``."""

from __future__ import annotations

from bench_catalogue_unseen import TRPV1
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# A Volta phase plate's data: near focus, the CTF's phase shifted by 20-120° (the shift grows as
# the plate is used, recorded per image as CTFFIND or Gctf estimate it), so the lowest shells
# carry a strong signal and the first zero lies far out.
NEAR_FOCUS = {"ctf_table": None, "defocus_min_um": 0.3, "defocus_max_um": 0.9}

# Chosen before any method was run on them (round 2, session 71): beta-galactosidase in
# betagal_17's noise; EMD-5625 with noise levels that differ in the RELION tutorial's noise;
# EMD-1832 in white noise; the 70S ribosome (beside ../shared/data, bench_extra_maps) in the
# TRPV1 stack's noise.
UNSEEN_71 = map_table(
    (
        (
            "u71_betagal_vpp",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 7101),
            {**NEAR_FOCUS, "phase_shift_degrees": (20.0, 120.0), "noise": "coloured"},
        ),
        (
            "u71_emd5625_vpp",
            "maps/emd_5625.map",
            (56, 4.23, 4_000, 0.003, 7102),
            {
                **NEAR_FOCUS,
                "phase_shift_degrees": (40.0, 100.0),
                "noise_sd_spread": 0.2,
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "u71_emd1832_vpp",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 7103),
            {**NEAR_FOCUS, "defocus_max_um": 1.2, "phase_shift_degrees": (30.0, 120.0)},
        ),
        (
            "u71_ribosome70s_vpp",
            "../extra_maps/ribosome70s.mrc",
            (64, 5.0, 6_000, 0.003, 7104),
            {
                **NEAR_FOCUS,
                "phase_shift_degrees": (20.0, 110.0),
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
    )
)

# A 100 kV microscope's data (as a Tundra's), Cs 2.7 mm: a longer wavelength, so the CTF's rings
# lie closer together and its envelope of partial coherence is not modelled by either side.
KV_100 = {"ctf_table": None, "voltage_kv": 100.0, "cs_mm": 2.7, "defocus_max_um": 2.2}

# Chosen after unseen71 had run and before any method was run on these (round 2, session 71),
# nothing changed in between: 3J9G's potential at 100 kV in the tutorial's noise;
# beta-galactosidase at 100 kV with 40 % of its views within 20°, in white noise; EMD-6824 through
# a phase plate with shifts of 8 Å s.d., in the ribosome stack's noise; EMD-1832 through a phase
# plate with ramps of 0.5 and noise levels that differ, in betagal_17's noise.
UNSEEN_71B = map_table(
    (
        (
            "u71b_3j9g_100kv",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.003, 7111),
            {**KV_100, "noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "u71b_betagal_100kv_pref",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 5_000, 0.003, 7112),
            {**KV_100, "views": None, "preferred_views": (0.4, 20.0)},
        ),
        (
            "u71b_emd6824_vpp",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.003, 7113),
            {
                **NEAR_FOCUS,
                "phase_shift_degrees": (20.0, 120.0),
                "shift_sd_angstrom": 8.0,
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
        (
            "u71b_emd1832_vpp_ramp",
            "maps/emd_1832.map",
            (64, 5.7, 4_000, 0.003, 7114),
            {
                **NEAR_FOCUS,
                "phase_shift_degrees": (30.0, 100.0),
                "background_ramp_sd": 0.5,
                "noise_sd_spread": 0.2,
                "noise": "coloured",
            },
        ),
    )
)

# Chosen after unseen71b had run and before any method was run on these (round 2, session 71),
# nothing changed in between: the two new settings with the weak spots of earlier sets. EMD-5625
# through a phase plate with 60 % of its views within 25°, in the ribosome stack's noise;
# EMD-1832 sharpened by -200 Å² at 100 kV, in the TRPV1 stack's noise; 3J9G's potential through a
# phase plate with poses off by 1° and 1 Å, in betagal_17's noise; beta-galactosidase at 100 kV
# from 3,000 particles with ramps of 0.5, in the tutorial's noise.
UNSEEN_71C = map_table(
    (
        (
            "u71c_emd5625_vpp_pref",
            "maps/emd_5625.map",
            (56, 4.23, 4_000, 0.003, 7121),
            {
                **NEAR_FOCUS,
                "phase_shift_degrees": (30.0, 110.0),
                "views": None,
                "preferred_views": (0.6, 25.0),
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
        (
            "u71c_emd1832_100kv_sharp",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 7122),
            {
                **KV_100,
                "truth_bfactor_angstrom2": -200.0,
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
        (
            "u71c_3j9g_vpp_pose",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.003, 7123),
            {
                **NEAR_FOCUS,
                "phase_shift_degrees": (20.0, 120.0),
                "pose_error_degrees": 1.0,
                "shift_error_angstrom": 1.0,
                "noise": "coloured",
            },
        ),
        (
            "u71c_betagal_100kv_3k_ramp",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 3_000, 0.003, 7124),
            {
                **KV_100,
                "background_ramp_sd": 0.5,
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
    )
)
