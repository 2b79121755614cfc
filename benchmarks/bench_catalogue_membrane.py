"""Benchmark sets of a membrane protein in a detergent micelle, and sets whose defocus is recorded
with errors (round 2, sessions 59, 65, 66 and 80).

8ZPM (CXCR4 with a nanobody, ``shared/data/models/8zpm.cif``) made to look like a real map
(``bench_truths.real_looking_map``) with a detergent belt round its seven transmembrane helices
(``bench_micelle``): a smooth, featureless density at a fraction of the protein's level, as
every map of a membrane protein in detergent holds. Made after every default; no earlier set held
such a belt.

The belt's frame, in the model's file coordinates (Å): the box is centred on the atoms' mean
position (``CENTRE``); the membrane's normal is the atoms' longest principal axis (``NORMAL``,
0.93 from the mean direction of the receptor's helices); the belt's centre lies 13 Å along it
(the receptor's transmembrane part spans about 0-30 Å there, its extracellular loops beyond,
the nanobody at −64 to −8 Å).
"""

from __future__ import annotations

import numpy as np
from bench_catalogue_unseen import TRPV1
from bench_datasets import DatasetSpec
from bench_map_specs import RIBOSOME, TUTORIAL, map_spec
from bench_micelle import Micelle

CENTRE = (136.51, 137.19, 144.26)
NORMAL = (-0.25, -0.071, -0.966)
BELT_CENTRE = tuple(
    float(round(c + 13.0 * n / np.linalg.norm(NORMAL), 2))
    for c, n in zip(CENTRE, NORMAL, strict=True)
)


def belt(level: float) -> Micelle:
    """8ZPM's belt: 40 Å in the membrane's plane (the helices reach 29 Å from the normal), 17 Å
    each side of its middle, at ``level`` times the protein's mean density."""
    return Micelle(BELT_CENTRE, NORMAL, 40.0, 17.0, level)


def _membrane(name: str, box: int, pixel: float, n: int, snr: float, seed: int, **other):
    """8ZPM in a micelle, made to look like a real map, centred on ``CENTRE``."""
    return map_spec(
        name, "models/8zpm.cif", box, pixel, n, snr, seed=seed, center_angstrom=CENTRE, **other
    )


UNSEEN_59 = [
    _membrane(
        "u59_8zpm_micelle",
        96,
        1.5,
        5_000,
        0.005,
        5901,
        real_looking_bfactor=60.0,
        micelle=belt(0.4),
        noise="coloured",
        noise_source=TRPV1,
    ),
    _membrane(
        "u59_8zpm_micelle_pref",
        96,
        1.5,
        3_000,
        0.003,
        5902,
        real_looking_bfactor=60.0,
        real_looking_mean_zero=True,
        micelle=belt(0.5),
        views=None,
        preferred_views=(0.6, 25.0),
    ),
    _membrane(
        "u59_8zpm_micelle_bin",
        64,
        2.25,
        8_000,
        0.002,
        5903,
        real_looking_bfactor=100.0,
        micelle=belt(0.3),
        noise="coloured",
        noise_source=RIBOSOME,
    ),
]


# Defocus recorded with errors (``bench_ctf_errors``; round 2, session 59), on the sets that reach
# the resolutions where it weighs (a phase error of about a radian at 3 Å for 200 Å): 8ZPM's atoms
# with each defocus off by 300 Å s.d. (a particle's height in the ice), the same by 600 Å with
# 0.7° pose errors, and the membrane protein in its micelle by 200 Å with 1° pose errors. Made
# after every default.
CTF_ERRORS = [
    DatasetSpec(
        "d59_8zpm_df300",
        "models/8zpm.cif",
        96,
        1.5,
        5_000,
        0.005,
        seed=5921,
        defocus_error_angstrom=300.0,
    ),
    DatasetSpec(
        "d59_8zpm_df600_pose",
        "models/8zpm.cif",
        96,
        1.5,
        5_000,
        0.005,
        seed=5922,
        defocus_error_angstrom=600.0,
        pose_error_degrees=0.7,
        shift_error_angstrom=0.5,
    ),
    _membrane(
        "d59_8zpm_micelle_df",
        96,
        1.5,
        5_000,
        0.005,
        5923,
        real_looking_bfactor=60.0,
        micelle=belt(0.4),
        noise="coloured",
        noise_source=TRPV1,
        defocus_error_angstrom=200.0,
        pose_error_degrees=1.0,
        shift_error_angstrom=1.0,
    ),
]


# Defocus recorded with errors, for ``cryosplat refine-defocus`` (``bench_defocus``; round 2,
# session 65), made after its defaults were chosen on ``CTF_ERRORS``: the spike's atoms with the
# real defocus table and 400 Å errors in coloured noise; a real map (EMD-6824, 9 Å) with 300 Å,
# where the phase error at its resolution is small; 8ZPM with small errors (150 Å) at twice the
# signal.
DEFOCUS_65 = [
    DatasetSpec(
        "d65_6vxx_df400",
        "models/6vxx.pdb",
        128,
        2.2,
        8_000,
        0.004,
        seed=6501,
        ctf_table="metadata/empiar10028_ctf.pkl",
        cs_mm=2.0,
        noise="coloured",
        defocus_error_angstrom=400.0,
    ),
    DatasetSpec(
        "d65_emd6824_df300",
        "maps/emd_6824.mrc",
        70,
        2.64,
        5_000,
        0.005,
        seed=6502,
        noise="coloured",
        defocus_error_angstrom=300.0,
    ),
    DatasetSpec(
        "d65_8zpm_df150",
        "models/8zpm.cif",
        96,
        1.5,
        8_000,
        0.01,
        seed=6503,
        ctf_table="metadata/empiar10028_ctf.pkl",
        noise="coloured",
        defocus_error_angstrom=150.0,
    ),
]


# Defocus errors shared by a micrograph's particles, for ``cryosplat refine-defocus`` reading the
# micrographs (``bench_defocus``; round 2, session 65), chosen before it was run on them: each
# STAR names a micrograph per 50, 40 or 10 particles; a micrograph's estimate errs by 250, 200 or
# 150 Å (shared), each particle's height by 80, 120 or 150 Å more (its own).
MICROGRAPHS_65 = [
    DatasetSpec(
        "m65_8zpm_mic50",
        "models/8zpm.cif",
        96,
        1.5,
        5_000,
        0.005,
        seed=6511,
        ctf_table="metadata/empiar10028_ctf.pkl",
        noise="coloured",
        defocus_error_angstrom=80.0,
        particles_per_micrograph=50,
        micrograph_defocus_error_angstrom=250.0,
    ),
    DatasetSpec(
        "m65_6vxx_mic40",
        "models/6vxx.pdb",
        128,
        2.2,
        6_000,
        0.004,
        seed=6512,
        ctf_table="metadata/empiar10028_ctf.pkl",
        cs_mm=2.0,
        noise="coloured",
        defocus_error_angstrom=120.0,
        particles_per_micrograph=40,
        micrograph_defocus_error_angstrom=200.0,
    ),
    DatasetSpec(
        "m65_8zpm_mic10",
        "models/8zpm.cif",
        96,
        1.5,
        4_000,
        0.005,
        seed=6513,
        defocus_error_angstrom=150.0,
        particles_per_micrograph=10,
        micrograph_defocus_error_angstrom=150.0,
    ),
]


# The same, as one estimate per micrograph leaves it (round 2, session 65; chosen before any run
# on them): a micrograph's particles imaged at one defocus plus their heights in the ice (100 or
# 150 Å), the STAR recording the micrograph's defocus with its estimate's error (250 or 150 Å),
# so that ``relion_ctf_refine``'s per-micrograph mode applies too.
MICROGRAPHS_65H = [
    DatasetSpec(
        "h65_8zpm_mic50",
        "models/8zpm.cif",
        96,
        1.5,
        5_000,
        0.005,
        seed=6521,
        ctf_table="metadata/empiar10028_ctf.pkl",
        noise="coloured",
        particles_per_micrograph=50,
        micrograph_defocus_error_angstrom=250.0,
        micrograph_heights_angstrom=100.0,
    ),
    DatasetSpec(
        "h65_8zpm_mic20",
        "models/8zpm.cif",
        96,
        1.5,
        4_000,
        0.005,
        seed=6522,
        particles_per_micrograph=20,
        micrograph_defocus_error_angstrom=150.0,
        micrograph_heights_angstrom=150.0,
    ),
]


# Astigmatism recorded with an error per micrograph, besides its defocus (round 2, session 66;
# chosen before ``refine-defocus`` read astigmatism was run on them): a micrograph's particles
# imaged at one defocus plus their heights, the STAR recording the micrograph's defocus with an
# error and its astigmatism moved by 150, 200 or 80 Å along each component.
ASTIGMATISM_66 = [
    DatasetSpec(
        "a66_8zpm_mic50",
        "models/8zpm.cif",
        96,
        1.5,
        5_000,
        0.005,
        seed=6601,
        ctf_table="metadata/empiar10028_ctf.pkl",
        noise="coloured",
        particles_per_micrograph=50,
        micrograph_defocus_error_angstrom=200.0,
        micrograph_heights_angstrom=100.0,
        micrograph_astigmatism_error_angstrom=150.0,
    ),
    DatasetSpec(
        "a66_6vxx_mic40",
        "models/6vxx.pdb",
        128,
        2.2,
        6_000,
        0.004,
        seed=6602,
        ctf_table="metadata/empiar10028_ctf.pkl",
        cs_mm=2.0,
        noise="coloured",
        particles_per_micrograph=40,
        micrograph_defocus_error_angstrom=150.0,
        micrograph_heights_angstrom=120.0,
        micrograph_astigmatism_error_angstrom=200.0,
    ),
    DatasetSpec(
        "a66_8zpm_mic30",
        "models/8zpm.cif",
        96,
        1.5,
        6_000,
        0.005,
        seed=6603,
        particles_per_micrograph=30,
        micrograph_defocus_error_angstrom=150.0,
        micrograph_heights_angstrom=100.0,
        micrograph_astigmatism_error_angstrom=80.0,
    ),
]


# Per-particle defocus errors on real maps, for ``cryosplat refine-defocus`` read against each
# half's own map (round 2, session 80; made after every default, the last three after the change
# was chosen): errors large enough to turn the CTF's phase at these maps' resolutions (1000 Å at
# 12 Å: 0.4 radian). On the first, reading against the other half's map made the next run report
# 10.65 Å for a map at 12.26 Å.
DEFOCUS_80 = [
    DatasetSpec(
        "u80_betagal_df",
        "maps/ngl_betaGal.mrc",
        100,
        3.54,
        8_000,
        0.006,
        seed=8001,
        noise="coloured",
        noise_source=RIBOSOME,
        ctf_table="metadata/empiar10028_ctf.pkl",
        defocus_error_angstrom=1000.0,
    ),
    DatasetSpec(
        "u80_emd6824_df",
        "maps/emd_6824.mrc",
        70,
        2.64,
        5_000,
        0.01,
        seed=8002,
        noise="coloured",
        noise_source=TRPV1,
        defocus_error_angstrom=800.0,
    ),
    DatasetSpec(
        "u80_emd1832_hisnr_df",
        "maps/emd_1832.map",
        64,
        5.7,
        5_000,
        0.03,
        seed=8003,
        noise="coloured",
        noise_source=TUTORIAL,
        defocus_error_angstrom=2000.0,
    ),
    DatasetSpec(
        "u80_betagal_df_s2",
        "maps/ngl_betaGal.mrc",
        100,
        3.54,
        8_000,
        0.006,
        seed=8101,
        noise="coloured",
        noise_source=RIBOSOME,
        ctf_table="metadata/empiar10028_ctf.pkl",
        defocus_error_angstrom=1000.0,
    ),
    DatasetSpec(
        "u80_betagal_pref_df",
        "maps/ngl_betaGal.mrc",
        100,
        3.54,
        6_000,
        0.01,
        seed=8102,
        views=None,
        preferred_views=(0.8, 20.0),
        noise="coloured",
        noise_source=TUTORIAL,
        defocus_error_angstrom=1500.0,
    ),
    DatasetSpec(
        "u80_emd6824_df_s2",
        "maps/emd_6824.mrc",
        70,
        2.64,
        5_000,
        0.01,
        seed=8103,
        noise="coloured",
        noise_source=TRPV1,
        defocus_error_angstrom=800.0,
    ),
]
