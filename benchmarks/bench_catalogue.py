"""The benchmark sets: one :class:`bench_datasets.DatasetSpec` per set, in named groups.

``DATASETS`` holds the groups ``run_benchmarks.py --datasets`` names (a set's own name also works),
``QUICK`` their smaller versions for ``--quick``. How a set is made: :mod:`bench_datasets`. The
groups made after every default in round 2 (sessions 26-36) are in :mod:`bench_catalogue_unseen`.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from bench_catalogue_envelope import ENVELOPE
from bench_catalogue_late import (
    NEIGHBOURS,
    NOISE_LEVELS,
    OFF_CENTRE,
    UNSEEN_42,
    UNSEEN_56,
    UNSEEN_57,
    UNSEEN_58,
)
from bench_catalogue_membrane import (
    ASTIGMATISM_66,
    CTF_ERRORS,
    DEFOCUS_65,
    DEFOCUS_80,
    MICROGRAPHS_65,
    MICROGRAPHS_65H,
    UNSEEN_59,
)
from bench_catalogue_padded import ELONGATED, ELONGATED_50, PADDED, UNSEEN_46
from bench_catalogue_partial import COMBINED, PARTIAL
from bench_catalogue_s67 import UNSEEN_67
from bench_catalogue_s68 import UNSEEN_68
from bench_catalogue_s69 import UNSEEN_69, UNSEEN_69B, UNSEEN_69C
from bench_catalogue_s70 import UNSEEN_70, UNSEEN_70B, UNSEEN_70C
from bench_catalogue_s71 import UNSEEN_71, UNSEEN_71B, UNSEEN_71C
from bench_catalogue_s72 import UNSEEN_72, UNSEEN_72B, UNSEEN_72C, UNSEEN_72D
from bench_catalogue_s73 import UNSEEN_73, UNSEEN_73B, UNSEEN_73C, UNSEEN_73D, UNSEEN_73E
from bench_catalogue_s74 import UNSEEN_74, UNSEEN_74B, UNSEEN_74C, UNSEEN_74D
from bench_catalogue_s75 import UNSEEN_75, UNSEEN_75B
from bench_catalogue_s82 import CAPACITY_82
from bench_catalogue_unseen import (
    CRYOSPARC_CTF_SETS,
    EXTREMES,
    OVERSAMPLED,
    REGIMES,
    TILT_LIMITS,
    UNSEEN,
    UNSEEN_35,
    UNSEEN_36,
    UNSEEN_37,
    UNSEEN_38,
    UNSEEN_39,
)
from bench_datasets import DatasetSpec
from bench_map_specs import REAL_VIEWS, RIBOSOME, TUTORIAL, map_spec


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


def _real_map(
    name: str, model: str, box: int, pixel: float, n: int, snr: float
) -> list[DatasetSpec]:
    """A real map as the truth (:func:`bench_map_specs.map_spec`), in white and in coloured noise
    (``_c`` suffix)."""
    spec = map_spec(name, model, box, pixel, n, snr)
    return [spec, DatasetSpec(**{**asdict(spec), "name": name + "_c", "noise": "coloured"})]


MAP_SETS = {
    "emd5625": _real_map("emd5625", "maps/emd_5625.map", 56, 4.23, 4_000, 0.003),
    "emd1832": _real_map("emd1832", "maps/emd_1832.map", 64, 5.7, 6_000, 0.003),
    "betagal": _real_map("betagal", "maps/ngl_betaGal.mrc", 100, 3.54, 8_000, 0.002),
}

# The real maps at ten and a hundred times the benchmark's signal (SNR 0.03 and 0.3; the sets
# as above with other seeds), where the data, not the mixture's prior, hold most of a shell
# (round 2, session 54).
HIGH_SNR = [
    replace(spec, name=f"s54_{spec.name}_snr{snr:g}".replace(".", ""), snr=snr, seed=seed)
    for spec, snr, seed in (
        (MAP_SETS["emd5625"][1], 0.03, 21),
        (MAP_SETS["emd5625"][1], 0.3, 21),
        (MAP_SETS["betagal"][1], 0.03, 31),
        (MAP_SETS["emd1832"][1], 0.03, 32),
        (REAL_MAP, 0.03, 33),
        (MAP_SETS["emd1832"][1], 0.3, 34),
    )
]

# The sets at ten times the signal made again with the seed plus 1,000 (three) and plus 2,000
# (two): where EMD-1832's curve lies near 0.5 over several shells, how far the truth's crossing
# and the reported resolution move with the noise alone (round 2, session 81).
HIGH_SNR_SEEDS = [
    replace(spec, name=f"{spec.name}_s{offset}", seed=spec.seed + offset)
    for offset, names in (
        (1000, ("emd1832", "emd5625", "betagal")),
        (2000, ("emd1832", "emd5625")),
    )
    for spec in HIGH_SNR
    if spec.snr == 0.03 and any(spec.name.startswith(f"s54_{n}_") for n in names)
]

# The real maps again with noise coloured by two other real stacks (ribosome particles of
# EMPIAR-10076, flatter past the lowest shells; RELION 3.1's tutorial particles, steeper), other
# seeds, counts and view models: sets no default was chosen on (round 2, session 14).
OTHER_NOISE = [
    map_spec(
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
    map_spec(
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
    map_spec(name, model, box, pixel, n, snr, views=None, preferred_views=cones, seed=seed, **noise)
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
    map_spec(
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
    map_spec(
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
    "unseen36": UNSEEN_36,
    "unseen37": UNSEEN_37,
    "unseen38": UNSEEN_38,
    "unseen39": UNSEEN_39,
    "unseen42": UNSEEN_42,
    "offcentre": OFF_CENTRE,
    "noise_levels": NOISE_LEVELS,
    "neighbours": NEIGHBOURS,
    "padded": PADDED,
    "unseen46": UNSEEN_46,
    "envelope": ENVELOPE,
    "elongated": ELONGATED,
    "elongated50": ELONGATED_50,
    "high_snr": HIGH_SNR,
    "high_snr_seeds": HIGH_SNR_SEEDS,
    "unseen56": UNSEEN_56,
    "unseen57": UNSEEN_57,
    "unseen58": UNSEEN_58,
    "unseen59": UNSEEN_59,
    "unseen67": UNSEEN_67,
    "unseen68": UNSEEN_68,
    "unseen69": UNSEEN_69,
    "unseen69b": UNSEEN_69B,
    "unseen69c": UNSEEN_69C,
    "unseen70": UNSEEN_70,
    "unseen70b": UNSEEN_70B,
    "unseen70c": UNSEEN_70C,
    "unseen71": UNSEEN_71,
    "unseen71b": UNSEEN_71B,
    "unseen71c": UNSEEN_71C,
    "unseen72": UNSEEN_72,
    "unseen72b": UNSEEN_72B,
    "unseen72c": UNSEEN_72C,
    "unseen72d": UNSEEN_72D,
    "unseen73": UNSEEN_73,
    "unseen73b": UNSEEN_73B,
    "unseen73c": UNSEEN_73C,
    "unseen73d": UNSEEN_73D,
    "unseen73e": UNSEEN_73E,
    "unseen74": UNSEEN_74,
    "unseen74b": UNSEEN_74B,
    "unseen74c": UNSEEN_74C,
    "unseen74d": UNSEEN_74D,
    "unseen75": UNSEEN_75,
    "unseen75b": UNSEEN_75B,
    "capacity82": CAPACITY_82,
    "partial": PARTIAL,
    "ctf_errors": CTF_ERRORS,
    "combined": COMBINED,
    "defocus65": DEFOCUS_65,
    "micrographs65": MICROGRAPHS_65,
    "micrographs65h": MICROGRAPHS_65H,
    "astigmatism66": ASTIGMATISM_66,
    "defocus80": DEFOCUS_80,
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
