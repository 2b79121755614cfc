"""Benchmark sets whose images decay with an envelope B-factor (round 2, session 47): a group
of :class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue` names for ``--datasets``.

Real images lose signal with frequency faster than the CTF alone says (drift, charging, the
detector): RELION writes that envelope as ``rlnCtfBfactor`` when it is estimated, and most STAR
files hold none. Every set before these had none in its images. Made after every default: no
setting was chosen on them.
"""

from __future__ import annotations

from bench_datasets import DatasetSpec
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

ENVELOPE = [
    *map_table(
        (
            (
                "u47_emd5625_b",
                "maps/emd_5625.map",
                (56, 4.23, 4_000, 0.002, 4701),
                {
                    "ctf_bfactor_angstrom2": (100.0, 300.0),
                    "noise": "coloured",
                    "noise_source": RIBOSOME,
                },
            ),
            (
                "u47_betagal_bu",
                "maps/ngl_betaGal.mrc",
                (100, 3.54, 6_000, 0.002, 4702),
                {
                    "ctf_bfactor_angstrom2": (100.0, 300.0),
                    "ctf_bfactor_recorded": False,
                    "noise": "coloured",
                    "noise_source": TUTORIAL,
                },
            ),
            (
                "u47_emd1832_bp",
                "maps/emd_1832.map",
                (64, 5.7, 5_000, 0.003, 4703),
                {
                    "ctf_bfactor_angstrom2": (150.0, 400.0),
                    "views": None,
                    "preferred_views": (0.6, 30.0),
                },
            ),
        )
    ),
    DatasetSpec(
        "u47_8zpm_b",
        "models/8zpm.cif",
        96,
        1.5,
        5_000,
        0.005,
        seed=4704,
        ctf_bfactor_angstrom2=(50.0, 150.0),
        noise="coloured",
    ),
]
