"""Benchmark sets of round 2, session 82: eight sets whose data hold more than three times the
box's default count of Gaussians can carry (high signal, or many particles), made after every
default they test — a group of :class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue`
names for ``--datasets capacity82``."""

from __future__ import annotations

from bench_catalogue_unseen import CRYOSPARC_CTF, TRPV1
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# Chosen before any method was run on them (round 2, session 82), to check a change to the
# largest number of Gaussians the data may ask for (``capacity.MAX_FACTOR``) on sets it was not
# chosen on: the three maps of session 69 and the four of ``../shared/data`` at SNR 0.03-0.1 with
# other seeds, noises and views, and EMD-5625 from 40,000 particles at SNR 0.01.
CAPACITY_82 = map_table(
    (
        (
            "u82_ribosome70s_hi",
            "../extra_maps/ribosome70s.mrc",
            (64, 5.0, 6_000, 0.03, 8201),
            {"noise": "coloured"},
        ),
        ("u82_trpv1_48_hi", "../extra_maps/trpv1.mrc", (48, 4.88, 4_000, 0.1, 8202), {}),
        (
            "u82_3j9g_hi",
            "../extra_maps/3j9g.mrc",
            (64, 4.4, 5_000, 0.05, 8203),
            {"noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "u82_emd5625_hi",
            "maps/emd_5625.map",
            (56, 4.23, 4_000, 0.1, 8204),
            {"noise": "coloured", "noise_source": RIBOSOME},
        ),
        (
            "u82_emd1832_hi",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.1, 8205),
            {"views": None, "preferred_views": (0.5, 25.0)},
        ),
        (
            "u82_betagal_hi",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.1, 8206),
            {"noise": "coloured", **CRYOSPARC_CTF},
        ),
        (
            "u82_emd6824_hi",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.1, 8207),
            {"noise": "coloured", "noise_source": TRPV1},
        ),
        (
            "u82_emd5625_40k",
            "maps/emd_5625.map",
            (56, 4.23, 40_000, 0.01, 8208),
            {"noise": "coloured"},
        ),
    )
)
