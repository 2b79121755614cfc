"""Benchmark sets whose molecule has solvent round it (round 2, sessions 46-47): groups of
:class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue` names for ``--datasets``."""

from __future__ import annotations

from bench_map_specs import RIBOSOME, TUTORIAL, map_table


def centred(map_box: int, pixel: float) -> tuple[float, float, float]:
    """The point of a map of ``map_box`` voxels put at the centre of a larger box: its own centre."""
    return (map_box // 2 * pixel,) * 3


# Molecules with solvent round them (round 2, session 46): the real maps put whole, centred, into
# boxes 1.5-1.75 times their own, as extraction boxes are. The random start's ball radius was
# chosen on the first five (``PADDED``; ``reconstruct/grid/init_centre.py``); ``UNSEEN_46`` was
# made after that choice, the last with its molecule 5 voxels off the centre (under the 6 % that
# moves the ball).
PADDED = map_table(
    (
        (
            "p46_emd5625_96",
            "maps/emd_5625.map",
            (96, 4.23, 4_000, 0.001, 4601),
            {"center_angstrom": centred(56, 4.23)},
        ),
        (
            "p46_emd1832_112",
            "maps/emd_1832.map",
            (112, 5.7, 5_000, 0.001, 4602),
            {"center_angstrom": centred(64, 5.7), "noise": "coloured"},
        ),
        (
            "p46_emd6824_112",
            "maps/emd_6824.mrc",
            (112, 2.64, 5_000, 0.002, 4603),
            {"center_angstrom": centred(70, 2.64), "noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "p46_betagal_150",
            "maps/ngl_betaGal.mrc",
            (150, 3.54, 6_000, 0.001, 4604),
            {"center_angstrom": centred(100, 3.54), "noise": "coloured", "noise_source": RIBOSOME},
        ),
        (
            "p46_emd5625_80",
            "maps/emd_5625.map",
            (80, 4.23, 3_000, 0.0015, 4605),
            {"center_angstrom": centred(56, 4.23), "noise": "coloured"},
        ),
    )
)

UNSEEN_46 = map_table(
    (
        (
            "u46_emd6824_96",
            "maps/emd_6824.mrc",
            (96, 2.64, 4_000, 0.002, 4611),
            {"center_angstrom": centred(70, 2.64), "views": None},
        ),
        (
            "u46_betagal_128p",
            "maps/ngl_betaGal.mrc",
            (128, 3.54, 5_000, 0.0015, 4612),
            {
                "center_angstrom": centred(100, 3.54),
                "views": None,
                "preferred_views": (0.7, 25.0),
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "u46_emd1832_96o",
            "maps/emd_1832.map",
            (96, 5.7, 3_000, 0.002, 4613),
            {
                "center_angstrom": (37 * 5.7, 28 * 5.7, 32 * 5.7),
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
    )
)

# An elongated molecule (round 2, session 47): 2.5 times as long as it is wide, three copies of
# EMD-1832 in a row (``bench_truths.tandem_map``) with solvent round them, so the random start's
# ball, sized by the molecule's radius of gyration (0.22 of the box), is shorter than the
# molecule (0.37 of the box from the centre).
ELONGATED = map_table(
    (
        (
            "s47_rod1832",
            "maps/emd_1832.map",
            (112, 5.7, 5_000, 0.002, 4721),
            {"tandem": (3, 26), "noise": "coloured", "noise_source": RIBOSOME},
        ),
        (
            "s47_rod1832_u",
            "maps/emd_1832.map",
            (112, 5.7, 4_000, 0.003, 4722),
            {"tandem": (3, 26), "views": None},
        ),
    )
)

# Two more elongated molecules (round 2, session 50), made after the amplitudes' learning rate was
# chosen (on the thirteen sets of ``elongated,padded,maps``): EMD-5625 three times in a row in a
# box of 96, EMD-6824 twice in a box of 112.
ELONGATED_50 = map_table(
    (
        (
            "s50_rod5625",
            "maps/emd_5625.map",
            (96, 4.23, 5_000, 0.002, 5001),
            {"tandem": (3, 22), "noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "s50_rod6824",
            "maps/emd_6824.mrc",
            (112, 2.64, 5_000, 0.003, 5002),
            {"tandem": (2, 44), "views": None},
        ),
    )
)
