"""Benchmark sets made after every default they test (round 2, sessions 26-38): groups of
:class:`bench_datasets.DatasetSpec` that :mod:`bench_catalogue` names for ``--datasets``."""

from __future__ import annotations

from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# The noise of a stack no set took its spectrum from before round 2, session 38: ten TRPV1
# particles of 48² (shared/data/particles/README.md).
TRPV1 = "particles/trpv1_10/trpv1_small_stack.mrcs"

# Twelve sets made after every default they test (round 2, session 26): the real maps with other
# view models (a 70° tilt limit, three clusters), counts (3,000, 20,000), a 200 kV microscope and
# noise, three more molecules made to look like real maps (beta-galactosidase at box 100, the
# HPV capsid protein, 8ZPM), and four beta-galactosidase sets with real views and coloured noise
# (its map's noisy solvent, where the reported resolution within the automatic mask leaned
# optimistic in session 13).
UNSEEN = map_table(
    (
        (
            "s26_emd5625_t70",
            "maps/emd_5625.map",
            (56, 4.23, 5_000, 0.002, 961),
            {
                "views": None,
                "preferred_views": (1.0, 70.0),
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "s26_emd1832_u3k",
            "maps/emd_1832.map",
            (64, 5.7, 3_000, 0.005, 962),
            {"views": None, "noise": "coloured", "noise_source": RIBOSOME},
        ),
        (
            "s26_emd6824_3v",
            "maps/emd_6824.mrc",
            (70, 2.64, 6_000, 0.003, 963),
            {
                "views": None,
                "preferred_views": ((0.3, 10.0), (0.3, 10.0, 90.0, 45.0), (0.2, 15.0, 60.0, 120.0)),
            },
        ),
        (
            "s26_betagal_200kv",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 5_000, 0.003, 964),
            {"noise": "coloured", "voltage_kv": 200.0, "cs_mm": 2.7},
        ),
        (
            "s26_rl_5a1a",
            "models/5a1a.cif",
            (100, 2.5, 6_000, 0.003, 965),
            {
                "views": None,
                "noise": "coloured",
                "noise_source": RIBOSOME,
                "real_looking_bfactor": 120.0,
                "real_looking_mean_zero": True,
            },
        ),
        (
            "s26_rl_3j6r",
            "models/3J6R.pdb",
            (96, 3.2, 4_000, 0.004, 966),
            {"views": None, "preferred_views": (0.6, 30.0), "real_looking_bfactor": 250.0},
        ),
        (
            "s26_emd5625_20k",
            "maps/emd_5625.map",
            (56, 4.23, 20_000, 0.003, 967),
            {"noise": "coloured"},
        ),
        (
            "s26_rl_8zpm",
            "models/8zpm.cif",
            (80, 2.0, 3_000, 0.005, 968),
            {"noise": "coloured", "noise_source": TUTORIAL, "real_looking_bfactor": 100.0},
        ),
        *(
            (
                f"s26_bg_{tag}",
                "maps/ngl_betaGal.mrc",
                (100, 3.54, n, snr, seed),
                {"noise": "coloured"},
            )
            for tag, n, snr, seed in (
                ("a", 4_000, 0.004, 971),
                ("b", 6_000, 0.0025, 972),
                ("c", 5_000, 0.003, 973),
                ("d", 5_000, 0.0035, 974),
            )
        ),
    )
)

# Made in round 2, session 27 after every default, for regimes no set above holds: ten times the
# signal (SNR 0.02-0.05) and three to five times (0.01-0.015), 1,000 particles, the smallest real map at its own box (EMD-3197, 20³,
# 11.4 Å/px), and two real maps that are symmetric in RELION's orientation (EMD-6824 C4,
# beta-galactosidase D2), run with their group and in C1.
REGIMES = map_table(
    (
        (
            "s27_emd5625_hi",
            "maps/emd_5625.map",
            (56, 4.23, 4_000, 0.05, 981),
            {"noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "s27_emd1832_hi",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.02, 982),
            {"views": None, "noise": "coloured", "noise_source": RIBOSOME},
        ),
        ("s27_betagal_hi", "maps/ngl_betaGal.mrc", (100, 3.54, 5_000, 0.02, 983), {}),
        (
            "s27_emd6824_hi",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.03, 984),
            {"views": None, "preferred_views": (0.5, 25.0)},
        ),
        ("s27_emd5625_mid", "maps/emd_5625.map", (56, 4.23, 4_000, 0.015, 989), {}),
        (
            "s27_emd1832_mid",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.01, 990),
            {"noise": "coloured"},
        ),
        (
            "s27_emd5625_1k",
            "maps/emd_5625.map",
            (56, 4.23, 1_000, 0.03, 985),
            {"views": None, "noise": "coloured"},
        ),
        (
            "s27_emd3197",
            "maps/EMD-3197.map",
            (20, 11.4, 2_000, 0.01, 986),
            {"noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "s27_emd6824_c4",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.003, 987),
            {"noise": "coloured", "noise_source": RIBOSOME, "symmetry": "C4"},
        ),
        (
            "s27_betagal_d2",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 5_000, 0.003, 988),
            {"noise": "coloured", "symmetry": "D2"},
        ),
    )
)

# Made in round 2, session 28 after every default, for regimes no set above holds: views all but
# missing round one axis (every view within 10° of it; 95 % within 15°, the rest uniform), 2,000
# particles of the box-filling EMD-5625, and 12,000 particles at SNR 0.0012.
EXTREMES = map_table(
    (
        (
            "s28_emd1832_top",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 991),
            {
                "views": None,
                "preferred_views": (1.0, 10.0),
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
        (
            "s28_betagal_top",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.003, 992),
            {"views": None, "preferred_views": (0.95, 15.0), "noise": "coloured"},
        ),
        (
            "s28_emd5625_2k",
            "maps/emd_5625.map",
            (56, 4.23, 2_000, 0.004, 993),
            {"noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "s28_emd6824_lo",
            "maps/emd_6824.mrc",
            (70, 2.64, 12_000, 0.0012, 994),
            {"noise": "coloured"},
        ),
    )
)

# Made in round 2, session 32 after every default: the CTF of the real cryoSPARC set (its own
# defocus rows, 0.7-4.6 µm with up to ~1,000 Å of astigmatism, as cryoDRGN parsed them; 200 kV,
# amplitude contrast 0.07), which no set above used, with other seeds, counts and noise.
CRYOSPARC_CTF = {
    "ctf_table": "metadata/ctf2.pkl",
    "voltage_kv": 200.0,
    "cs_mm": 2.0,
    "amplitude_contrast": 0.07,
}
CRYOSPARC_CTF_SETS = map_table(
    (
        (
            "s32_emd1832_cs",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 1001),
            {**CRYOSPARC_CTF, "noise": "coloured"},
        ),
        (
            "s32_emd5625_cs",
            "maps/emd_5625.map",
            (56, 4.23, 6_000, 0.0025, 1002),
            {
                **CRYOSPARC_CTF,
                "views": None,
                "preferred_views": (0.6, 30.0),
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
        (
            "s32_betagal_cs",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 10_000, 0.0015, 1003),
            {**CRYOSPARC_CTF, "noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "s32_emd6824_cs",
            "maps/emd_6824.mrc",
            (70, 2.64, 3_000, 0.006, 1004),
            {**CRYOSPARC_CTF, "views": None},
        ),
    )
)

# Made in round 2, session 33 after every default, with the views all within an angle of one axis
# (a tilt limit: a missing cone of 90° minus it about that axis, which no set above held but at
# 60° and 70°), at other angles, maps, noise and seeds.
TILT_LIMITS = map_table(
    (
        (
            "s33_emd6824_t45",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.003, 1011),
            {"views": None, "preferred_views": (1.0, 45.0), "noise": "coloured"},
        ),
        (
            "s33_emd1832_t30",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.004, 1012),
            {
                "views": None,
                "preferred_views": (1.0, 30.0),
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
        (
            "s33_betagal_t50",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 6_000, 0.002, 1013),
            {
                "views": None,
                "preferred_views": (1.0, 50.0),
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
    )
)

# Made in round 2, session 34 after every default: data recorded at a finer pixel than their
# signal needs (oversampled), the truth the real map Fourier-padded to 1.5 or 2 times its box
# (``bench_truths.finer_sampling``: nothing past the map's own Nyquist limit), the noise to the
# new one. The boxes' default capacity and stages meet a signal that ends at half the box.
OVERSAMPLED = map_table(
    (
        (
            "s34_emd6824_x2",
            "maps/emd_6824.mrc",
            (140, 1.32, 5_000, 0.0015, 1021),
            {"noise": "coloured"},
        ),
        (
            "s34_emd5625_x2",
            "maps/emd_5625.map",
            (112, 2.115, 4_000, 0.0008, 1022),
            {"views": None},
        ),
        (
            "s34_emd1832_x15",
            "maps/emd_1832.map",
            (96, 3.8, 5_000, 0.0015, 1023),
            {"noise": "coloured", "noise_source": RIBOSOME},
        ),
        (
            "s34_betagal_x2",
            "maps/ngl_betaGal.mrc",
            (200, 1.77, 6_000, 0.0006, 1024),
            {"noise": "coloured", "noise_source": TUTORIAL},
        ),
    )
)

# Two more made after every default (round 2, session 35): EMD-3197 Fourier-padded three times
# (box 60), and EMD-1832 twice (box 128) with preferred views.
UNSEEN_35 = map_table(
    (
        (
            "s35_emd3197_x3",
            "maps/EMD-3197.map",
            (60, 3.8, 3_000, 0.002, 1031),
            {"noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "s35_emd1832_x2p",
            "maps/emd_1832.map",
            (128, 2.85, 6_000, 0.0008, 1032),
            {"views": None, "preferred_views": (0.8, 20.0)},
        ),
    )
)

# Two more made after every default (round 2, session 36): beta-galactosidase Fourier-padded to
# box 120 with views thinned about one axis, and EMD-1832 at its own box with the real cryoSPARC
# set's CTF in ribosome noise.
UNSEEN_36 = map_table(
    (
        (
            "s36_betagal_x12",
            "maps/ngl_betaGal.mrc",
            (120, 2.95, 5_000, 0.002, 1041),
            {"views": None, "preferred_views": (0.6, 30.0)},
        ),
        (
            "s36_emd1832_cs",
            "maps/emd_1832.map",
            (64, 5.7, 8_000, 0.0015, 1042),
            {**CRYOSPARC_CTF, "noise": "coloured", "noise_source": RIBOSOME},
        ),
    )
)

# Two more made after every default (round 2, session 37): EMD-5625 from 3,000 particles with the
# real views in tutorial noise (a small, box-filling set, where time and lead are closest to the
# issue's limits), and beta-galactosidase from 3,000 particles with uniform views in ribosome
# noise.
UNSEEN_37 = map_table(
    (
        (
            "s37_emd5625_3k",
            "maps/emd_5625.map",
            (56, 4.23, 3_000, 0.003, 1051),
            {"noise": "coloured", "noise_source": TUTORIAL},
        ),
        (
            "s37_betagal_3k",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 3_000, 0.003, 1052),
            {"views": None, "noise": "coloured", "noise_source": RIBOSOME},
        ),
    )
)

# Two more made after every default (round 2, session 38): EMD-6824 from 5,000 particles with the
# real views, 400 Å of astigmatism and the noise spectrum of the TRPV1 stack (a detector no set
# had), and EMD-1832 from 4,000 particles at 200 kV (Cs 2.7 mm) with half the views within 25° of
# one axis, in beta-galactosidase noise.
UNSEEN_38 = map_table(
    (
        (
            "s38_emd6824_tr",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.002, 1061),
            {"noise": "coloured", "noise_source": TRPV1, "astigmatism_max_angstrom": 400.0},
        ),
        (
            "s38_emd1832_pv",
            "maps/emd_1832.map",
            (64, 5.7, 4_000, 0.002, 1062),
            {
                "views": None,
                "preferred_views": (0.5, 25.0),
                "noise": "coloured",
                "voltage_kv": 200.0,
                "cs_mm": 2.7,
            },
        ),
    )
)

# Two more made after every default (round 2, session 39), where the first shell stood nearest
# the 0.02 (views within 30° of one axis: 0.948 against relion's 0.965): EMD-1832 from
# 5,000 particles with every view within 20° of one axis, in the TRPV1 stack's noise, and EMD-5625
# from 5,000 particles with every view within 40°, in the ribosome stack's noise.
UNSEEN_39 = map_table(
    (
        (
            "s39_emd1832_t20",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 1071),
            {
                "views": None,
                "preferred_views": (1.0, 20.0),
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
        (
            "s39_emd5625_t40",
            "maps/emd_5625.map",
            (56, 4.23, 5_000, 0.003, 1072),
            {
                "views": None,
                "preferred_views": (1.0, 40.0),
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
    )
)
