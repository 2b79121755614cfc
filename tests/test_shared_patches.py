"""Rows that hold one patch of a micrograph (``cryosplat.particles.shared_patches``): components
as a brute-force union-find finds them, helical tubes keyed per micrograph, half sets drawn here
that keep each tube and each pair of close picks whole, and the file's half sets that split a
tube warned of, from a RELION STAR and a cryoSPARC table."""

from __future__ import annotations

import numpy as np
import pytest

from cryosplat.io.mrc import write_stack
from cryosplat.io.star import write_star
from cryosplat.particles.halves import split_halves, split_keeps_patches
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.read import read_particles
from cryosplat.particles.shared_patches import (
    helical_findings,
    linked_rows,
    patch_findings,
    patch_groups,
    straddling_picks_warning,
    tube_keys,
)


def _brute_components(n, first, second):
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in zip(first, second, strict=True):
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    return [root(i) for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linked_rows_are_the_union_find_components(seed):
    rng = np.random.default_rng(seed)
    n = 400
    first, second = rng.integers(0, n, 300), rng.integers(0, n, 300)
    first = np.concatenate([first, np.arange(100, 160)])  # and a chain 100-101-...-160
    second = np.concatenate([second, np.arange(101, 161)])
    got = linked_rows(n, first, second)
    want = _brute_components(n, first.tolist(), second.tolist())
    # the same partition, numbered in the order of each component's first row
    _, index = np.unique(want, return_index=True)
    renumber = {want[i]: k for k, i in enumerate(sorted(index))}
    assert got.tolist() == [renumber[w] for w in want]
    assert len(set(got[100:161].tolist())) == 1


def test_no_pairs_leave_every_row_alone():
    assert linked_rows(5, np.array([], int), np.array([], int)).tolist() == [0, 1, 2, 3, 4]


def test_relion_tubes_are_numbered_per_micrograph_and_cryosparc_uids_read_exactly():
    micrographs = np.array([0, 0, 1, 1, 1])
    keys = tube_keys(micrographs, np.array([1, 1, 1, 2, 0]))
    assert keys[0] == keys[1] and len({keys[0], keys[2], keys[3]}) == 3 and keys[4] == -1
    assert tube_keys(micrographs, np.array([1.5, 1, 1, 1, 1])) is None
    big = np.array([2**63 + 1, 2**63 + 2, 2**63 + 1], dtype=np.uint64)  # float64 would merge them
    assert tube_keys(None, big).tolist() == [0, 1, 0]
    assert tube_keys(None, np.array([0, 7, 0, 7], dtype=np.uint64)).tolist() == [-1, 1, -1, 1]


def test_patch_groups_join_close_picks_and_tubes():
    micrographs = np.array([0, 0, 0, 1, 1])
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [500.0, 0.0], [0.0, 0.0], [900.0, 0.0]])
    assert patch_groups(micrographs, centres, None).tolist() == [0, 0, 1, 2, 3]
    tubes = np.array([-1, -1, 5, -1, 5])  # rows 2 and 4: one tube (keys from tube_keys)
    assert patch_groups(micrographs, centres, tubes).tolist() == [0, 0, 1, 2, 1]
    far = centres * 100
    assert patch_groups(micrographs, far, None) is None  # nothing shared: no groups
    assert patch_groups(None, None, None) is None


def _segments(n_tubes, per_tube, random_subset=None):
    n = n_tubes * per_tube
    tubes = np.repeat(np.arange(n_tubes), per_tube)
    return ParticleSet(
        box=16,
        pixel_size_angstrom=2.0,
        stacks=[],
        stack_index=np.zeros(n, dtype=np.int64),
        image_index=np.arange(n),
        random_subset=random_subset,
        micrographs=tubes // 3,
        patch_groups=patch_groups(tubes // 3, None, tubes),
    ), tubes


def test_halves_drawn_here_keep_each_tube_whole():
    particles, tubes = _segments(40, 25)
    a, b, how = split_halves(particles, seed=3)
    assert how.startswith("random by patch of a micrograph") and "helical tube" in how
    assert not set(tubes[a].tolist()) & set(tubes[b].tolist())
    assert abs(len(a) - len(b)) <= 25 and len(a) + len(b) == 1000
    assert split_keeps_patches(particles)
    # without (the split of runs made before): tubes straddle, as the rows are drawn alone
    a0, b0, how0 = split_halves(particles, seed=3, keep_patches=False)
    assert how0 == "random (seed 3)"
    assert set(tubes[a0].tolist()) & set(tubes[b0].tolist())


def test_the_files_own_half_sets_are_kept_and_no_patches_split_as_before():
    subset = np.where(np.arange(1000) % 2 == 0, 1, 2)
    particles, _ = _segments(40, 25, random_subset=subset)
    a, _, how = split_halves(particles)
    assert how == "rlnRandomSubset" and np.array_equal(a, np.flatnonzero(subset == 1))
    assert not split_keeps_patches(particles)
    assert split_keeps_patches(particles, use_random_subset=False)
    plain, _ = _segments(40, 1)  # one segment per tube: nothing joins two images
    assert plain.patch_groups is None and not split_keeps_patches(plain)
    assert split_halves(plain, seed=5)[2] == "random (seed 5)"


def test_a_subset_of_rows_keeps_its_groups():
    particles, tubes = _segments(4, 3)
    sub = particles.subset([0, 1, 3, 6])  # tube 0 twice, tubes 1 and 2 once each
    assert sub.patch_groups.tolist() == [0, 0, 1, 2]
    assert particles.subset([0, 3, 6]).patch_groups is None


def test_too_few_groups_for_two_halves_is_an_error():
    particles, _ = _segments(1, 10)
    with pytest.raises(Exception, match="1 group"):
        split_halves(particles)


def test_helical_findings_warn_where_the_files_halves_split_a_tube():
    tubes = np.array([0, 0, 1, 1, -1])
    notes, warnings = helical_findings(tubes, np.array([1, 1, 1, 2, 2]), "col", "rlnRandomSubset")
    assert len(notes) == 1 and "4 particles in 2 tubes (col)" in notes[0]
    assert "--helical-twist, --helical-rise and --helical-asu" in notes[0]
    assert len(warnings) == 1 and warnings[0].startswith("1 of 2 helical tubes")
    notes, warnings = helical_findings(tubes, np.array([1, 1, 2, 2, 1]), "col", "rlnRandomSubset")
    assert not warnings and "no tube is split" in notes[0]
    notes, warnings = helical_findings(tubes, None, "col", "rlnRandomSubset")
    assert not warnings and "kept in one half set" in notes[0]
    assert helical_findings(None, None, "col", "x") == ([], [])


def _helical_star(tmp_path, tube_ids, subsets):
    n = len(tube_ids)
    write_stack(tmp_path / "p.mrcs", np.zeros((n, 16, 16), np.float32), 2.0)
    columns = {
        "rlnImageName": [f"{k + 1}@p.mrcs" for k in range(n)],
        "rlnMicrographName": ["a.mrc"] * (n // 2) + ["b.mrc"] * (n - n // 2),
        "rlnCoordinateX": [100.0 * k for k in range(n)],  # 200 Å apart: no close picks
        "rlnCoordinateY": [500.0] * n,
        "rlnHelicalTubeID": tube_ids,
        "rlnOpticsGroup": [1] * n,
    }
    if subsets is not None:
        columns["rlnRandomSubset"] = subsets
    optics = {"rlnOpticsGroup": [1], "rlnImagePixelSize": [2.0], "rlnImageSize": [16]}
    write_star(tmp_path / "p.star", {"optics": optics, "particles": columns})
    return tmp_path / "p.star"


def test_a_helical_star_keeps_its_tubes_and_warns_of_split_ones(tmp_path):
    # micrograph a: rows 0-3 (tubes 1, 1, 2, 2); b: rows 4-7 (tube 1 there is another tube)
    tube_ids = [1, 1, 2, 2, 1, 1, 1, 1]
    particles = read_particles(_helical_star(tmp_path, tube_ids, None))
    assert particles.patch_groups.tolist() == [0, 0, 1, 1, 2, 2, 2, 2]
    assert any("8 particles in 3 tubes (rlnHelicalTubeID)" in n for n in particles.notes)
    a, b, _ = split_halves(particles, seed=1)
    groups = particles.patch_groups
    assert not set(groups[a].tolist()) & set(groups[b].tolist())
    split = tmp_path / "split"
    split.mkdir()
    subsets = [1, 2, 1, 1, 2, 2, 2, 2]  # tube 1 of micrograph a is in both halves
    particles = read_particles(_helical_star(split, tube_ids, subsets))
    assert len(particles.warnings) == 1
    assert particles.warnings[0].startswith("1 of 3 helical tubes have segments in both")


def test_a_run_records_its_tube_split_and_is_read_back_with_it(tiny_set, tmp_path):
    import json
    import shutil

    from cryosplat.io.star import read_star
    from cryosplat.reconstruct.run_halves import read_run_halves
    from tests.conftest import reconstruct_quickly

    folder = tmp_path / "set"
    shutil.copytree(tiny_set.parent, folder)
    blocks = {
        name: dict(block.columns) for name, block in read_star(folder / tiny_set.name).items()
    }
    particles = blocks["particles"]
    n = len(particles["rlnImageName"])
    particles.pop("rlnRandomSubset", None)
    particles["rlnMicrographName"] = [f"m{k // 30}.mrc" for k in range(n)]
    particles["rlnCoordinateX"] = [400.0 * k for k in range(n)]  # far apart: tubes only
    particles["rlnCoordinateY"] = [0.0] * n
    particles["rlnHelicalTubeID"] = [1 + (k % 30) // 10 for k in range(n)]  # 3 tubes a micrograph
    star = folder / "helical.star"
    write_star(star, blocks)
    run = tmp_path / "run"
    assert reconstruct_quickly(str(star), "-o", str(run), "--accept-warnings") == 0
    status = json.loads((run / "run.json").read_text())
    assert status["identity"]["halves_keep_patches"] is True
    halves = read_run_halves(read_particles(star), run, "test")
    tubes = halves.particles.patch_groups
    assert not set(tubes[halves.half_a].tolist()) & set(tubes[halves.half_b].tolist())
    log = (run / "log.txt").read_text()
    assert "random by patch of a micrograph" in log
    # a run made before the split kept patches whole records no key and is read as it split
    del status["identity"]["halves_keep_patches"]
    (run / "run.json").write_text(json.dumps(status))
    old = read_run_halves(read_particles(star), run, "test")
    a, _, _ = split_halves(old.particles, 0, True, keep_patches=False)
    assert np.array_equal(old.half_a, a) and not np.array_equal(old.half_a, halves.half_a)


def test_close_picks_across_the_files_halves_are_warned_of_from_one_percent():
    n = 200
    micrographs = np.zeros(n, dtype=np.int64)
    centres = np.stack([np.arange(n) * 100.0, np.zeros(n)], axis=1)  # 100 Å apart: no pairs
    subset = np.where(np.arange(n) % 2 == 0, 1, 2)
    centres[1] = centres[0] + [5.0, 0.0]  # rows 0 and 1: a pair across the halves (0.5 %)
    centres[4] = centres[2] + [5.0, 0.0]  # rows 2 and 4: a pair within half 1
    assert straddling_picks_warning(micrographs, centres, subset, "rlnRandomSubset") == []
    centres[3] = centres[6] + [0.0, 5.0]  # rows 3 and 6: a second pair across (1 %)
    warning = straddling_picks_warning(micrographs, centres, subset, "rlnRandomSubset")
    assert len(warning) == 1 and warning[0].startswith("2 pairs of particles picked twice (1.0 %")
    assert straddling_picks_warning(micrographs, centres, None, "rlnRandomSubset") == []
    groups, notes, warnings = patch_findings(
        micrographs, centres, None, subset, ("rlnHelicalTubeID", "rlnRandomSubset")
    )
    assert warnings == warning and notes[0].startswith("picked twice?: 3 pairs")
    assert groups[0] == groups[1] and groups[2] == groups[4] and groups[3] == groups[6]
    assert groups.max() + 1 == n - 3


def test_a_symmetry_expanded_set_counts_picks_between_images_not_copies(tmp_path):
    # three particles, each listed three times (one image, one place on the micrograph), as
    # relion_particle_symmetry_expand writes them; particles 1 and 2 lie 10 Å apart
    n = 3
    write_stack(tmp_path / "p.mrcs", np.zeros((n, 16, 16), np.float32), 2.0)
    coords = [500.0, 510.0, 900.0]
    columns = {
        "rlnImageName": [f"{k + 1}@p.mrcs" for k in range(n) for _ in range(3)],
        "rlnMicrographName": ["a.mrc"] * (3 * n),
        "rlnCoordinateX": [coords[k] for k in range(n) for _ in range(3)],
        "rlnCoordinateY": [500.0] * (3 * n),
        "rlnOpticsGroup": [1] * (3 * n),
    }
    optics = {
        "rlnOpticsGroup": [1],
        "rlnImagePixelSize": [2.0],
        "rlnImageSize": [16],
        "rlnMicrographPixelSize": [1.0],
    }
    write_star(tmp_path / "x.star", {"optics": optics, "particles": columns})
    particles = read_particles(tmp_path / "x.star")
    picked = [note for note in particles.notes if note.startswith("picked twice?")]
    assert len(picked) == 1 and "1 pairs" in picked[0] and "rows 1 and 4" in picked[0]
    a, b, how = split_halves(particles, seed=2)
    assert "patch" in how
    together = {0, 1, 2, 3, 4, 5}  # the two images of one particle, all their copies
    assert together <= set(a.tolist()) or together <= set(b.tolist())
