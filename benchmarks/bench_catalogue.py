"""The benchmark sets: one :class:`bench_datasets.DatasetSpec` per set, in named groups.

``DATASETS`` holds the groups ``run_benchmarks.py --datasets`` names (a set's own name also works),
``QUICK`` their smaller versions for ``--quick``. How a set is made: :mod:`bench_datasets`.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from bench_datasets import DatasetSpec


def _8zpm(name: str, n: int) -> DatasetSpec:
    return DatasetSpec(name, "models/8zpm.cif", 96, 1.5, n, 0.005)


# The spike is ~185 Å across at its widest; 128 px of 2.2 Å (282 Å) leave room for the shifts.
SPIKE = DatasetSpec(
    "6vxx",
    "models/6vxx.pdb",
    128,
    2.2,
    10_000,
    0.004,
    ctf_table="metadata/empiar10028_ctf.pkl",
    cs_mm=2.0,
)

# The simulator's acceptance: relion_reconstruct of 3,000 splatted 8ZPM particles, SNR 0.01.
ACCEPTANCE = DatasetSpec(
    "acceptance_8zpm",
    "models/8zpm.cif",
    128,
    1.5,
    3_000,
    0.01,
    astigmatism_max_angstrom=300.0,
    simulator="cryosplat",
)

# Symmetric sets, each truth in RELION's orientation for its group. PDB 5A1A's four chains are exact
# copies whose pairwise superpositions (Kabsch on CA atoms, benchmarks/README.md) are 180° turns
# about x, y and z through (93, 93, 93) Å: already RELION's D2 (2-folds on x, y, z), so the truth is
# the model with that point at the box centre, unrotated. 6VXX's chains are related by 120° turns
# about z through (210, 210) Å: RELION's C3 with that axis through the centre.
BETAGAL = DatasetSpec(
    "5a1a_d2",
    "models/5a1a.cif",
    128,
    1.8,
    1_500,
    0.002,
    ctf_table="metadata/empiar10028_ctf.pkl",
    cs_mm=2.0,
    views="metadata/cryosparc_P12_J24_001_particles.cs",
    center_angstrom=(93.0, 93.0, 93.0),
    symmetry="D2",
)
SPIKE_C3 = DatasetSpec(
    **{
        **asdict(SPIKE),
        "name": "6vxx_c3",
        "n_particles": 1_500,
        "snr": 0.002,
        "views": "metadata/cryosparc_P12_J24_001_particles.cs",
        "center_angstrom": (210.0, 210.0, 207.26),  # the 3-fold; z: the atoms' centroid
        "symmetry": "C3",
    }
)

# A real EMDB map (noise, density below the solvent level) as the truth, not a map made of atoms.
REAL_MAP = DatasetSpec("emd6824", "maps/emd_6824.mrc", 70, 2.64, 5_000, 0.005)

# Real maps as truths, with the real view distribution of a cryoSPARC refinement and the real
# defocus of EMPIAR-10028 (issue 11); each in white and in coloured noise (``_c`` suffix).
REAL_VIEWS = "metadata/cryosparc_P12_J24_001_particles.cs"


def _map_spec(
    name: str, model: str, box: int, pixel: float, n: int, snr: float, **other
) -> DatasetSpec:
    """A real map as the truth, EMPIAR-10028's defocus, real views unless ``other`` says."""
    settings = {"ctf_table": "metadata/empiar10028_ctf.pkl", "cs_mm": 2.0, "views": REAL_VIEWS}
    return DatasetSpec(name, model, box, pixel, n, snr, **{**settings, **other})


def _map_table(rows) -> list[DatasetSpec]:
    """A :func:`_map_spec` for each row ``(name, model, (box, pixel, n, snr, seed), other)``."""
    return [
        _map_spec(name, model, box, pixel, n, snr, seed=seed, **other)
        for name, model, (box, pixel, n, snr, seed), other in rows
    ]


def _real_map(
    name: str, model: str, box: int, pixel: float, n: int, snr: float
) -> list[DatasetSpec]:
    spec = _map_spec(name, model, box, pixel, n, snr)
    return [spec, DatasetSpec(**{**asdict(spec), "name": name + "_c", "noise": "coloured"})]


MAP_SETS = {
    "emd5625": _real_map("emd5625", "maps/emd_5625.map", 56, 4.23, 4_000, 0.003),
    "emd1832": _real_map("emd1832", "maps/emd_1832.map", 64, 5.7, 6_000, 0.003),
    "betagal": _real_map("betagal", "maps/ngl_betaGal.mrc", 100, 3.54, 8_000, 0.002),
}

RIBOSOME = "particles/empiar10076_7/empiar_10076_7.mrc"
TUTORIAL = "particles/relion31_5/relion31.mrcs"
# The real maps again with noise coloured by two other real stacks (ribosome particles of
# EMPIAR-10076, flatter past the lowest shells; RELION 3.1's tutorial particles, steeper), other
# seeds, counts and view models: sets no default was chosen on (round 2, session 14).
OTHER_NOISE = [
    _map_spec(
        name, model, box, pixel, n, snr, views=views, noise="coloured", noise_source=src, seed=seed
    )
    for name, model, box, pixel, n, snr, views, src, seed in (
        ("emd5625_n76", "maps/emd_5625.map", 56, 4.23, 4_000, 0.003, REAL_VIEWS, RIBOSOME, 301),
        ("emd1832_n31", "maps/emd_1832.map", 64, 5.7, 5_000, 0.003, None, TUTORIAL, 302),
        ("betagal_n76", "maps/ngl_betaGal.mrc", 100, 3.54, 6_000, 0.002, None, RIBOSOME, 303),
        ("emd6824_n31", "maps/emd_6824.mrc", 70, 2.64, 4_000, 0.004, REAL_VIEWS, TUTORIAL, 304),
    )
]

# Preferred orientation (a share of the views within a cone about the truth's z axis, the rest
# uniform): the thinly sampled directions are the prior's to fill in, the case of many real data
# sets; seeds, counts and cones no default was chosen on (round 2, session 19).
PREFERRED = [
    _map_spec(
        name, model, box, pixel, n, snr, views=None, preferred_views=pref, noise=noise, seed=seed
    )
    for name, model, box, pixel, n, snr, pref, noise, seed in (
        ("emd5625_pref", "maps/emd_5625.map", 56, 4.23, 4_000, 0.003, (0.9, 20.0), "white", 601),
        ("emd1832_pref", "maps/emd_1832.map", 64, 5.7, 5_000, 0.003, (0.8, 20.0), "coloured", 602),
        (
            "betagal_pref",
            "maps/ngl_betaGal.mrc",
            100,
            3.54,
            6_000,
            0.003,
            (0.7, 25.0),
            "coloured",
            603,
        ),
        ("emd6824_pref", "maps/emd_6824.mrc", 70, 2.64, 5_000, 0.005, (0.85, 15.0), "white", 604),
    )
] + [
    DatasetSpec(
        "8zpm_pref",
        "models/8zpm.cif",
        96,
        1.5,
        3_000,
        0.005,
        seed=605,
        preferred_views=(0.8, 20.0),
        noise="coloured",
    )
]

# Views in several clusters (a top view and one or two side views, each a cone of 10-12°, the
# rest uniform) and a tilt limit (no view more than 60° from z): view models of real data sets
# that no default was chosen on, with other seeds and noise (round 2, session 20).
CLUSTERED = [
    _map_spec(
        name, model, box, pixel, n, snr, views=None, preferred_views=cones, seed=seed, **noise
    )
    for name, model, box, pixel, n, snr, cones, seed, noise in (
        (
            "emd1832_2v",
            "maps/emd_1832.map",
            64,
            5.7,
            5_000,
            0.003,
            ((0.45, 12.0), (0.40, 12.0, 90.0, 0.0)),
            701,
            {"noise": "coloured"},
        ),
        (
            "betagal_t60",
            "maps/ngl_betaGal.mrc",
            100,
            3.54,
            6_000,
            0.002,
            (1.0, 60.0),
            702,
            {},
        ),
        (
            "emd5625_3v",
            "maps/emd_5625.map",
            56,
            4.23,
            4_000,
            0.003,
            ((0.30, 10.0), (0.30, 10.0, 90.0, 90.0), (0.25, 10.0, 45.0, 0.0)),
            703,
            {"noise": "coloured", "noise_source": RIBOSOME},
        ),
        (
            "emd6824_2v",
            "maps/emd_6824.mrc",
            70,
            2.64,
            5_000,
            0.005,
            ((0.45, 12.0), (0.40, 12.0, 90.0, 0.0)),
            704,
            {"noise": "coloured", "noise_source": TUTORIAL},
        ),
    )
]

# Larger molecules than the real maps', made to look like real maps (``bench_truths``: blurred
# atoms, a negative halo, noisy solvent; one normalised to mean zero as EMD-6824 is), with real or
# preferred views and coloured noise: map-like truths of other shapes and boxes, made after every
# default was chosen (round 2, session 25).
REAL_LOOKING = [
    _map_spec(
        "rl_6vxx",
        "models/6vxx.pdb",
        128,
        2.2,
        8_000,
        0.003,
        noise="coloured",
        seed=951,
        real_looking_bfactor=150.0,
        real_looking_mean_zero=True,
    ),
    _map_spec(
        "rl_3izx",
        "models/3izx.cif",
        96,
        3.0,
        5_000,
        0.004,
        views=None,
        preferred_views=(0.5, 25.0),
        noise="coloured",
        noise_source=RIBOSOME,
        seed=952,
        real_looking_bfactor=200.0,
    ),
]

# Twelve sets made after every default they test (round 2, session 26): the real maps with other
# view models (a 70° tilt limit, three clusters), counts (3,000, 20,000), a 200 kV microscope and
# noise, three more molecules made to look like real maps (beta-galactosidase at box 100, the
# HPV capsid protein, 8ZPM), and four beta-galactosidase sets with real views and coloured noise
# (its map's noisy solvent, where the reported resolution within the automatic mask leaned
# optimistic in session 13).
UNSEEN = _map_table(
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
REGIMES = _map_table(
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
EXTREMES = _map_table(
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
CRYOSPARC_CTF_SETS = _map_table(
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
TILT_LIMITS = _map_table(
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
OVERSAMPLED = _map_table(
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
UNSEEN_35 = _map_table(
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

DATASETS: dict[str, list[DatasetSpec]] = {
    **MAP_SETS,
    "maps": [s for sets in MAP_SETS.values() for s in sets],
    "emd6824": [REAL_MAP],
    "8zpm": [_8zpm("8zpm", 5_000)],
    "6vxx": [SPIKE],
    "sweep": [_8zpm("8zpm_1k", 1_000), _8zpm("8zpm", 5_000), _8zpm("8zpm_20k", 20_000)],
    "acceptance": [ACCEPTANCE],
    "5a1a_d2": [BETAGAL],
    "6vxx_c3": [SPIKE_C3],
    "othernoise": OTHER_NOISE,
    "pref": PREFERRED,
    "clustered": CLUSTERED,
    "reallike": REAL_LOOKING,
    "unseen": UNSEEN,
    "regimes": REGIMES,
    "extremes": EXTREMES,
    "cryosparc_ctf": CRYOSPARC_CTF_SETS,
    "tilt_limits": TILT_LIMITS,
    "oversampled": OVERSAMPLED,
    "unseen35": UNSEEN_35,
}


def quick(spec: DatasetSpec, n_particles: int = 1_000) -> DatasetSpec:
    """The smaller version of a set for ``--quick``: ``quick_`` before its name, fewer particles."""
    return replace(spec, name="quick_" + spec.name, n_particles=n_particles)


QUICK: dict[str, list[DatasetSpec]] = {
    **{k: [quick(s) for s in v] for k, v in {**MAP_SETS, "maps": DATASETS["maps"]}.items()},
    "emd6824": [quick(REAL_MAP)],
    "8zpm": [_8zpm("quick_8zpm", 1_000)],
    "6vxx": [quick(SPIKE)],
    "sweep": [
        _8zpm("quick_8zpm_500", 500),
        _8zpm("quick_8zpm", 1_000),
        _8zpm("quick_8zpm_2k", 2_000),
    ],
    "5a1a_d2": [quick(BETAGAL, 500)],
    "6vxx_c3": [quick(SPIKE_C3, 500)],
    "acceptance": [
        DatasetSpec(
            **{
                **asdict(ACCEPTANCE),
                "name": "quick_acceptance",
                "n_particles": 500,
                "box": 64,
                "pixel_size_angstrom": 2.0,
            }
        )
    ],
}
