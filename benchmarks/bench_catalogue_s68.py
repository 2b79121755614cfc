"""Benchmark sets of round 2, session 68: four made after every default, in combinations no
earlier set held — a group of :class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue`
names for ``--datasets unseen68``."""

from __future__ import annotations

from bench_catalogue_padded import centred
from bench_catalogue_unseen import CRYOSPARC_CTF, TRPV1
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# Chosen before any method was run on them (round 2, session 68): EMD-5625 with solvent round it
# (a box of 72) and shifts twice the other sets', in white noise; EMD-1832 from micrographs of 40
# particles whose recorded defocus is off by a shared 200 Å, in the RELION tutorial's noise, with
# uniform views; beta-galactosidase from 3,500 particles with the cryoSPARC set's CTF, half its
# views within 20° of one axis, neighbours in the box and noise levels that differ; EMD-6824 from
# 8,000 particles at low signal whose recorded poses are off by 1° and 1 Å, a plain defocus range,
# in the ribosome stack's noise.
UNSEEN_68 = map_table(
    (
        (
            "u68_emd5625_72",
            "maps/emd_5625.map",
            (72, 4.23, 5_000, 0.003, 6801),
            {"center_angstrom": centred(56, 4.23), "shift_sd_angstrom": 6.0},
        ),
        (
            "u68_emd1832_mic",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 6802),
            {
                "views": None,
                "noise": "coloured",
                "noise_source": TUTORIAL,
                "particles_per_micrograph": 40,
                "micrograph_defocus_error_angstrom": 200.0,
            },
        ),
        (
            "u68_betagal_3k5",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 3_500, 0.004, 6803),
            {
                **CRYOSPARC_CTF,
                "views": None,
                "preferred_views": (0.5, 20.0),
                "noise": "coloured",
                "noise_source": TRPV1,
                "neighbours": 0.5,
                "noise_sd_spread": 0.25,
            },
        ),
        (
            "u68_emd6824_pose",
            "maps/emd_6824.mrc",
            (70, 2.64, 8_000, 0.002, 6804),
            {
                "ctf_table": None,
                "defocus_min_um": 1.0,
                "defocus_max_um": 3.0,
                "views": None,
                "noise": "coloured",
                "noise_source": RIBOSOME,
                "pose_error_degrees": 1.0,
                "shift_error_angstrom": 1.0,
            },
        ),
    )
)
