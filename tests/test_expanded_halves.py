"""Sets that list one image on several rows (symmetry expansion): the half sets keep each image
whole, and labels that put one image in both halves are refused, so the FSC stays independent."""

from __future__ import annotations

import numpy as np
from test_robust_cases import write_set

from cryosplat.core.rotations import random_rotations
from cryosplat.particles.halves import split_halves
from cryosplat.particles.read import read_particles
from cryosplat.particles.validate import check_particles
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.validation.fsc import fsc

N_IMAGES, COPIES = 60, 3


def expanded_set(folder, subset_by_row: bool = False, copies: int = COPIES, same_pose=False):
    """``N_IMAGES`` noise images each listed ``copies`` times with its own pose (as
    ``relion_particle_symmetry_expand`` writes them; ``same_pose``: one pose, rows repeated); the
    subsets per image, or per row."""
    n = N_IMAGES * copies
    names = [f"{i // copies + 1}@stack.mrcs" for i in range(n)]
    image = np.arange(n) // copies
    subset = (np.arange(n) if subset_by_row else image) % 2 + 1
    edits = {}
    if same_pose:
        edits = {
            "rotations": random_rotations(N_IMAGES, seed=3)[image],
            "shifts": np.zeros((n, 2)),
            "defocus": np.linspace(1e4, 2e4, N_IMAGES)[image],
        }
    star = write_set(folder, n=n, names=names, subset=subset, **edits)
    return read_particles(star)


def test_image_ids_group_the_rows_of_one_image(tmp_path):
    particles = expanded_set(tmp_path)
    ids = particles.image_ids()
    assert ids.tolist() == (np.arange(N_IMAGES * COPIES) // COPIES).tolist()
    plain = read_particles(write_set(tmp_path / "plain", n=12))
    assert plain.image_ids().tolist() == list(range(12))


def test_a_random_split_keeps_each_image_in_one_half(tmp_path):
    particles = expanded_set(tmp_path)
    a, b, how = split_halves(particles, seed=5, use_random_subset=False)
    ids = particles.image_ids()
    assert not set(ids[a]) & set(ids[b])
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(len(particles)))
    assert abs(len(a) - len(b)) <= COPIES
    assert "by image" in how and f"{N_IMAGES} images" in how
    a2, b2, _ = split_halves(particles, seed=5, use_random_subset=False)
    assert np.array_equal(a, a2) and np.array_equal(b, b2)


def test_a_set_of_distinct_images_splits_as_before(tmp_path):
    """One row per image: the same permutation as the split always drew (maps unchanged)."""
    particles = read_particles(write_set(tmp_path, n=41))
    a, b, how = split_halves(particles, seed=9, use_random_subset=False)
    perm = np.random.default_rng(9).permutation(41)
    assert a.tolist() == sorted(perm[:21].tolist()) and b.tolist() == sorted(perm[21:].tolist())
    assert how == "random (seed 9)"


def test_split_rows_of_one_image_would_correlate_pure_noise(tmp_path):
    """Why: an image's rows in both halves put the same noise in both; with each image whole the
    halves' direct inversions of pure noise are independent (rows repeated with one pose, the
    strongest case)."""
    particles = expanded_set(tmp_path, copies=2, same_pose=True)
    rows = np.arange(len(particles))

    def low_shells_fsc(a, b) -> float:
        config = AccumulateConfig(pad=1)
        maps = [accumulate(particles, half, config).reconstruct_wiener(1.0) for half in (a, b)]
        return float(np.mean(np.asarray(fsc(*maps))[1:7]))

    assert low_shells_fsc(rows[rows % 2 == 0], rows[rows % 2 == 1]) > 0.9
    a, b, _ = split_halves(particles, seed=1, use_random_subset=False)
    assert abs(low_shells_fsc(a, b)) < 0.15


def test_one_image_in_both_half_sets_is_refused_unless_the_labels_are_ignored(tmp_path):
    whole = check_particles(expanded_set(tmp_path / "whole"))
    assert [f.refuse for f in whole] == [True]
    assert "counted twice" in whole[0].message
    straddled = expanded_set(tmp_path / "split", subset_by_row=True)
    findings = check_particles(straddled)
    both = [f for f in findings if "both half sets" in f.message]
    assert len(both) == 1 and both[0].refuse
    assert f"{N_IMAGES} images" in both[0].message and "--ignore-random-subset" in both[0].message
    assert not any("both half sets" in f.message for f in check_particles(straddled, False))
