"""Benchmark sets of round 2, session 69: four made after every default from maps no earlier set
held (:mod:`bench_extra_maps` writes them beside ``../shared/data``) — a group of
:class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue` names for ``--datasets
unseen69``."""

from __future__ import annotations

from bench_catalogue_padded import centred
from bench_catalogue_unseen import CRYOSPARC_CTF, TRPV1
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# Chosen before any method was run on them (round 2, session 69): the 70S ribosome, a molecule
# that fills its box, in the RELION tutorial's noise; a TRPV1 map at its own small box of 48 with
# the cryoSPARC set's CTF, in white noise; the same map Fourier-padded to a box of 96 at 2.44 Å/px
# with half its views within 25° of one axis and noise levels that differ, in the ribosome
# stack's noise; a potential made from the atoms of 3J9G whose recorded poses are off by 1° and
# 1 Å, in the TRPV1 stack's noise.
UNSEEN_69 = map_table(
    (
        (
            "u69_ribosome70s",
            "../extra_maps/ribosome70s.mrc",
            (64, 5.0, 5_000, 0.003, 6901),
            {"noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "u69_trpv1_48",
            "../extra_maps/trpv1.mrc",
            (48, 4.88, 4_000, 0.003, 6902),
            {**CRYOSPARC_CTF},
        ),
        (
            "u69_trpv1_96",
            "../extra_maps/trpv1.mrc",
            (96, 2.44, 8_000, 0.002, 6903),
            {
                "views": None,
                "preferred_views": (0.5, 25.0),
                "noise": "coloured",
                "noise_source": RIBOSOME,
                "noise_sd_spread": 0.2,
            },
        ),
        (
            "u69_3j9g",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.003, 6904),
            {
                "noise": "coloured",
                "noise_source": TRPV1,
                "pose_error_degrees": 1.0,
                "shift_error_angstrom": 1.0,
            },
        ),
    )
)

# Chosen after the four above were run and before any method was run on these (round 2, session
# 69), nothing changed in between: the 70S ribosome centred in a box of 96 (solvent round it, as
# an extraction box holds) with the cryoSPARC set's CTF, in the ribosome stack's noise; 3J9G from
# 4,000 particles with 60 % of the views within 20° of one axis and noise levels that differ, in
# the RELION tutorial's noise; TRPV1 Fourier-padded to a box of 64 from 8,000 particles whose
# signal decays with an envelope B-factor of 100-300 Å² (in the STAR), in the TRPV1 stack's noise.
UNSEEN_69B = map_table(
    (
        (
            "u69b_ribosome70s_96",
            "../extra_maps/ribosome70s.mrc",
            (96, 5.0, 6_000, 0.003, 6911),
            {
                **CRYOSPARC_CTF,
                "center_angstrom": centred(64, 5.0),
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
        (
            "u69b_3j9g_pref",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 4_000, 0.004, 6912),
            {
                "views": None,
                "preferred_views": (0.6, 20.0),
                "noise_sd_spread": 0.3,
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "u69b_trpv1_env",
            "../extra_maps/trpv1.mrc",
            (64, 3.66, 8_000, 0.002, 6913),
            {
                "ctf_bfactor_angstrom2": (100.0, 300.0),
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
    )
)

# The three maps as the first benchmark sets were made (issue 11: the real views and EMPIAR-10028's
# defocus, white noise or betagal_17's), chosen after unseen69b had run, nothing changed in
# between (round 2, session 69): the closest the catalogue has to the same recipe on other maps.
UNSEEN_69C = map_table(
    (
        ("u69c_ribosome70s", "../extra_maps/ribosome70s.mrc", (64, 5.0, 6_000, 0.003, 6921), {}),
        (
            "u69c_ribosome70s_c",
            "../extra_maps/ribosome70s.mrc",
            (64, 5.0, 6_000, 0.003, 6922),
            {"noise": "coloured"},
        ),
        (
            "u69c_trpv1_c",
            "../extra_maps/trpv1.mrc",
            (48, 4.88, 5_000, 0.003, 6923),
            {"noise": "coloured"},
        ),
        ("u69c_3j9g", "../extra_maps/3j9g.mrc", (64, 4.4, 5_000, 0.003, 6924), {}),
    )
)
