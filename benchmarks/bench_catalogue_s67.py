"""Benchmark sets of round 2, session 67: four made after every default, in combinations no
earlier set held — a group of :class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue`
names for ``--datasets unseen67``."""

from __future__ import annotations

from bench_catalogue_padded import centred
from bench_catalogue_unseen import CRYOSPARC_CTF, TRPV1
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# Chosen before any method was run on them (round 2, session 67): EMD-1832 with solvent round it
# (a box of 80) in the ribosome stack's noise, each image's noise level spread; EMD-5625 with the
# cryoSPARC set's CTF (200 kV), 40 % of its views within 30° of one axis, in the TRPV1 stack's
# noise; beta-galactosidase from uniform views whose images decay with an envelope the STAR does
# not record, in the RELION tutorial's noise; EMD-6824 with solvent round it (a box of 96), low
# signal and astigmatic images.
UNSEEN_67 = map_table(
    (
        (
            "u67_emd1832_80",
            "maps/emd_1832.map",
            (80, 5.7, 6_000, 0.002, 6701),
            {
                "center_angstrom": centred(64, 5.7),
                "noise": "coloured",
                "noise_source": RIBOSOME,
                "noise_sd_spread": 0.2,
            },
        ),
        (
            "u67_emd5625_ctf2",
            "maps/emd_5625.map",
            (56, 4.23, 4_500, 0.0035, 6702),
            {
                **CRYOSPARC_CTF,
                "views": None,
                "preferred_views": (0.4, 30.0),
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
        (
            "u67_betagal_env",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 7_000, 0.0025, 6703),
            {
                "views": None,
                "noise": "coloured",
                "noise_source": TUTORIAL,
                "ctf_bfactor_angstrom2": (20.0, 100.0),
            },
        ),
        (
            "u67_emd6824_96",
            "maps/emd_6824.mrc",
            (96, 2.64, 6_000, 0.0015, 6704),
            {
                "center_angstrom": centred(70, 2.64),
                "noise": "coloured",
                "astigmatism_max_angstrom": 300.0,
            },
        ),
    )
)
