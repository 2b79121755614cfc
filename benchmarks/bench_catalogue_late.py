"""Benchmark sets of round 2, sessions 42-58: a molecule off the box's centre, side views only,
images whose noise level differs, neighbouring particles in the box, the sets made after
every default in sessions 56 and 57, and poses recorded with errors (session 58): groups of :class:`bench_datasets.DatasetSpec` that
:mod:`bench_catalogue` names for ``--datasets``."""

from __future__ import annotations

from bench_catalogue_unseen import CRYOSPARC_CTF, TRPV1
from bench_datasets import DatasetSpec
from bench_map_specs import RIBOSOME, TUTORIAL, map_table

# Four more made after every default (round 2, session 42). A molecule off the box's centre, as a
# refinement centred elsewhere leaves it (the init ball, the masks and the blend are all centred
# on voxel D // 2): EMD-5625 put in a box of 80 with its centre 12 voxels (50 Å) away from the
# box's, and EMD-1832 in a box of 96, 13 voxels (76 Å) away; the SNR scaled by the boxes' areas
# so the noise per molecule is that of the sets at their own box; EMD-5625 16 voxels off the centre
# of a box of 96 with 80 % of the views within 20° of one axis, made after the session's changes.
# And side views only (an elongated particle lying flat on the grid): EMD-1832 seen only within
# 15° of the equator, in twelve cones 30° apart round it.
SIDE_VIEWS = tuple((0.083, 15.0, 90.0, 30.0 * i) for i in range(12))
UNSEEN_42 = map_table(
    (
        (
            "s42_emd5625_off",
            "maps/emd_5625.map",
            (80, 4.23, 4_000, 0.0015, 1081),
            {
                "center_angstrom": (19 * 4.23, 34 * 4.23, 23 * 4.23),
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
        (
            "s42_emd1832_off",
            "maps/emd_1832.map",
            (96, 5.7, 5_000, 0.0013, 1082),
            {"center_angstrom": (42 * 5.7, 24 * 5.7, 36 * 5.7)},
        ),
        (
            "s42_emd5625_offpref",
            "maps/emd_5625.map",
            (96, 4.23, 5_000, 0.001, 1084),
            {
                "center_angstrom": (38 * 4.23, 18 * 4.23, 36 * 4.23),
                "views": None,
                "preferred_views": (0.8, 20.0),
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
        (
            "s42_emd1832_belt",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 1083),
            {
                "views": None,
                "preferred_views": SIDE_VIEWS,
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
    )
)

# The two sets the random start's placement was measured on (round 2, session 42; not unseen:
# ``reconstruct/grid/init_centre.py`` was chosen with them): EMD-1832 24 and 30 voxels off the
# centre of boxes of 112 and 128 along x, 3,000 particles, SNR 0.001, white noise. The molecule
# reaches the report's soft sphere.
OFF_CENTRE = map_table(
    (
        (
            "s42_emd1832_x24",
            "maps/emd_1832.map",
            (112, 5.7, 3_000, 0.001, 2001),
            {"center_angstrom": (45.6, 182.4, 182.4)},
        ),
        (
            "s42_emd1832_x30",
            "maps/emd_1832.map",
            (128, 5.7, 3_000, 0.001, 2002),
            {"center_angstrom": (11.4, 182.4, 182.4)},
        ),
    )
)

# Images whose noise level differs, as ice of differing thickness gives (round 2, session 43):
# each image's noise s.d. times exp(spread·z − spread²) (``DatasetSpec.noise_sd_spread``). The
# first two are the sets the image weights (``reconstruct/grid/noise_levels.py``) were measured
# on; the other three were made after it.
NOISE_LEVELS = map_table(
    (
        (
            "s43_emd5625_spread",
            "maps/emd_5625.map",
            (56, 4.23, 4_000, 0.003, 4301),
            {"noise": "coloured", "noise_sd_spread": 0.3},
        ),
        (
            "s43_emd1832_spread",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.003, 4302),
            {"noise": "coloured", "noise_sd_spread": 0.3},
        ),
        (
            "s43_betagal_spread",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 5_000, 0.0025, 4311),
            {"noise": "coloured", "noise_source": TUTORIAL, "noise_sd_spread": 0.2},
        ),
        (
            "s43_emd6824_spread",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.004, 4312),
            {"noise_sd_spread": 0.4},
        ),
        (
            "s43_emd5625_spread_pref",
            "maps/emd_5625.map",
            (56, 4.23, 4_000, 0.003, 4313),
            {
                "views": None,
                "preferred_views": (0.7, 25.0),
                "noise": "coloured",
                "noise_source": RIBOSOME,
                "noise_sd_spread": 0.15,
            },
        ),
    )
)

# Neighbouring particles in the box (round 2, session 45; ``DatasetSpec.neighbours``, made after
# every default): 60 % of the images hold part of another copy of the molecule, in another view
# of the set's, with the image's CTF, 0.55-0.8 box edges from the centre. The corners where the
# background and each image's noise level are read then hold density; at the SNR of most sets
# (0.003) a neighbour adds 0.4 % to the corners' variance, so these sets have fewer particles
# at a higher SNR, where it weighs more.
NEIGHBOURS = map_table(
    (
        (
            "s45_emd5625_nb",
            "maps/emd_5625.map",
            (56, 4.23, 1_500, 0.02, 4501),
            {"noise": "coloured", "neighbours": 0.6},
        ),
        (
            "s45_emd1832_nb",
            "maps/emd_1832.map",
            (64, 5.7, 3_000, 0.01, 4502),
            {"noise": "coloured", "noise_source": RIBOSOME, "neighbours": 0.6},
        ),
        (
            "s45_betagal_nb",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 3_000, 0.008, 4503),
            {"noise": "coloured", "noise_source": TUTORIAL, "neighbours": 0.6},
        ),
    )
)

# Four made after every default (round 2, session 56), in combinations no set above held:
# EMD-6824 with solvent round it (box 84) and two clusters of views in the TRPV1 stack's noise;
# EMD-1832 with the real cryoSPARC set's CTF, uniform views and noise levels that differ;
# beta-galactosidase from 2,000 particles at twice the usual signal with every view within 60° of
# one axis in ribosome noise; EMD-5625 with up to 600 Å of astigmatism and an envelope B-factor
# of 0-100 Å² in tutorial noise.
UNSEEN_56 = map_table(
    (
        (
            "u56_emd6824_84",
            "maps/emd_6824.mrc",
            (84, 2.64, 5_000, 0.002, 5601),
            {
                "center_angstrom": (35 * 2.64,) * 3,
                "views": None,
                "preferred_views": ((0.4, 15.0), (0.3, 15.0, 90.0, 0.0)),
                "noise": "coloured",
                "noise_source": TRPV1,
            },
        ),
        (
            "u56_emd1832_cs",
            "maps/emd_1832.map",
            (64, 5.7, 7_000, 0.002, 5602),
            {**CRYOSPARC_CTF, "views": None, "noise_sd_spread": 0.3},
        ),
        (
            "u56_betagal_2k",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 2_000, 0.006, 5603),
            {
                "views": None,
                "preferred_views": (1.0, 60.0),
                "noise": "coloured",
                "noise_source": RIBOSOME,
            },
        ),
        (
            "u56_emd5625_astig",
            "maps/emd_5625.map",
            (56, 4.23, 6_000, 0.0025, 5604),
            {
                "astigmatism_max_angstrom": 600.0,
                "ctf_bfactor_angstrom2": (0.0, 100.0),
                "noise": "coloured",
                "noise_source": TUTORIAL,
            },
        ),
    )
)

# Six made after every default (round 2, session 57). Of the map-based sets only EMD-6824's drew
# their defocus from a plain range (0.8-2.5 um); three here draw it from narrower ones:
# EMD-5625 with every defocus within 1.8-2.4 um, so that every image's first CTF zero falls at
# 19-22 A, in the beta-galactosidase stack's noise; EMD-1832 at 200 kV close to focus
# (0.6-1.4 um) with half the views within 25 deg of one axis; EMD-6824 on a Cs-corrected 200 kV
# microscope (Cs 0.01 mm, 7 % amplitude contrast) with an envelope B-factor of 30-120 A^2. And
# beta-galactosidase from 12,000 particles at a third of the usual signal with noise levels that
# differ in the TRPV1 stack's noise.
# And two with many particles at low signal, as large real sets are: EMD-1832 from 30,000 at SNR
# 0.0007 and EMD-5625 from 25,000 at SNR 0.0008 in ribosome noise, both with EMPIAR-10028's defocus.
UNSEEN_57 = map_table(
    (
        (
            "u57_emd5625_df",
            "maps/emd_5625.map",
            (56, 4.23, 5_000, 0.003, 5701),
            {
                "ctf_table": None,
                "defocus_min_um": 1.8,
                "defocus_max_um": 2.4,
                "noise": "coloured",
            },
        ),
        (
            "u57_emd1832_lowdf",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.003, 5702),
            {
                "ctf_table": None,
                "defocus_min_um": 0.6,
                "defocus_max_um": 1.4,
                "voltage_kv": 200.0,
                "views": None,
                "preferred_views": (0.5, 25.0),
            },
        ),
        (
            "u57_betagal_12k",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 12_000, 0.001, 5703),
            {"noise": "coloured", "noise_source": TRPV1, "noise_sd_spread": 0.2},
        ),
        (
            "u57_emd6824_cs",
            "maps/emd_6824.mrc",
            (70, 2.64, 4_000, 0.004, 5704),
            {
                "ctf_table": None,
                "defocus_min_um": 0.8,
                "defocus_max_um": 2.0,
                "voltage_kv": 200.0,
                "cs_mm": 0.01,
                "amplitude_contrast": 0.07,
                "ctf_bfactor_angstrom2": (30.0, 120.0),
            },
        ),
        ("u57_emd1832_30k", "maps/emd_1832.map", (64, 5.7, 30_000, 0.0007, 5705), {}),
        (
            "u57_emd5625_25k",
            "maps/emd_5625.map",
            (56, 4.23, 25_000, 0.0008, 5706),
            {"noise": "coloured", "noise_source": RIBOSOME},
        ),
    )
)


def with_pose_errors(degrees: float, angstrom: float, **other) -> dict:
    """A set's settings with its poses recorded with errors: each view turned by ``degrees``
    (rms), each shift moved by ``angstrom`` (s.d. per axis)."""
    return {"pose_error_degrees": degrees, "shift_error_angstrom": angstrom, **other}


# Eight made after every default (round 2, session 58): poses recorded with errors, as every
# refinement leaves them (``bench_pose_errors``). The images are projected with the true views
# and shifts; every method is given the same ``particles.star``, whose views are each turned by a
# random rotation (root-mean-square angle below) and whose shifts are each moved (s.d. per axis).
# No set before held a pose that was not the one projected. Two of them at ten times the
# benchmark's signal, as binned real data often are, where the errors rather than the noise
# limit the finer shells.
UNSEEN_58 = map_table(
    (
        (
            "u58_emd1832_pose",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.003, 5801),
            with_pose_errors(2.0, 1.5, noise="coloured", noise_source=TUTORIAL),
        ),
        (
            "u58_betagal_pose",
            "maps/ngl_betaGal.mrc",
            (100, 3.54, 8_000, 0.002, 5802),
            with_pose_errors(1.0, 1.0, noise="coloured", noise_source=RIBOSOME),
        ),
        (
            "u58_emd5625_pose",
            "maps/emd_5625.map",
            (56, 4.23, 5_000, 0.003, 5803),
            with_pose_errors(2.5, 2.0),
        ),
        (
            "u58_emd1832_pose5",
            "maps/emd_1832.map",
            (64, 5.7, 6_000, 0.003, 5806),
            with_pose_errors(5.0, 3.0),
        ),
        (
            "u58_emd1832_hisnr_pose",
            "maps/emd_1832.map",
            (64, 5.7, 5_000, 0.03, 5807),
            with_pose_errors(3.0, 2.0, noise="coloured", noise_source=RIBOSOME),
        ),
        (
            "u58_emd5625_hisnr_pose",
            "maps/emd_5625.map",
            (56, 4.23, 4_000, 0.03, 5808),
            with_pose_errors(2.0, 1.5),
        ),
        (
            "u58_emd6824_pose",
            "maps/emd_6824.mrc",
            (70, 2.64, 5_000, 0.004, 5804),
            with_pose_errors(1.5, 1.0, views=None, noise="coloured", noise_source=TRPV1),
        ),
    )
) + [
    DatasetSpec(
        "u58_8zpm_pose",
        "models/8zpm.cif",
        96,
        1.5,
        5_000,
        0.005,
        seed=5805,
        pose_error_degrees=0.7,
        shift_error_angstrom=0.5,
    )
]
