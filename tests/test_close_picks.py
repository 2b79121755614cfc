"""Particles picked twice (``cryosplat.particles.close_picks``): pairs found as a brute-force
search finds them, a RELION STAR's duplicates named with how many straddle the half sets, and the
duplicates the real RELION tutorial set holds."""

from __future__ import annotations

import numpy as np
import pytest

from cryosplat.io.mrc import write_stack
from cryosplat.io.star import write_star
from cryosplat.particles.close_picks import close_pairs
from cryosplat.particles.read import read_particles


def test_close_pairs_are_the_brute_force_ones():
    rng = np.random.default_rng(4)
    n = 600
    micrographs = rng.integers(0, 5, n)
    centres = rng.uniform(0, 2000, (n, 2))
    centres[10] = centres[11] + [3.0, -4.0]  # a pair 5 Å apart (a duplicate, same micrograph?)
    micrographs[10] = micrographs[11]
    i, j = close_pairs(micrographs, centres, 30.0)
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    d = np.hypot(*(centres[:, None] - centres[None]).transpose(2, 0, 1))
    same = micrographs[:, None] == micrographs[None]
    a, b = np.nonzero(np.triu(same & (d < 30.0), k=1))
    assert found == set(zip(a.tolist(), b.tolist(), strict=True))
    assert (11, 10) not in found and ((10, 11) in found)
    assert len(found) == len(i)  # each pair once


def _star(tmp_path, coords, micrographs, subsets):
    n = len(coords)
    write_stack(tmp_path / "p.mrcs", np.zeros((n, 16, 16), np.float32), 2.0)
    write_star(
        tmp_path / "p.star",
        {
            "optics": {
                "rlnOpticsGroup": [1],
                "rlnImagePixelSize": [2.0],
                "rlnImageSize": [16],
                "rlnMicrographPixelSize": [1.0],
            },
            "particles": {
                "rlnImageName": [f"{k + 1}@p.mrcs" for k in range(n)],
                "rlnMicrographName": micrographs,
                "rlnCoordinateX": [c[0] for c in coords],
                "rlnCoordinateY": [c[1] for c in coords],
                "rlnOpticsGroup": [1] * n,
                "rlnRandomSubset": subsets,
            },
        },
    )
    return tmp_path / "p.star"


def test_a_star_with_particles_picked_twice_says_so(tmp_path):
    # in micrograph pixels of 1 Å: rows 1 and 3 lie 10 Å apart on one micrograph, in different
    # halves; row 2 lies as close to row 1 but on another micrograph; row 4 is 40 Å from row 1
    coords = [(500.0, 500.0), (500.0, 510.0), (506.0, 508.0), (540.0, 500.0)]
    star = _star(tmp_path, coords, ["a.mrc", "b.mrc", "a.mrc", "a.mrc"], [1, 2, 2, 1])
    picked = [n for n in read_particles(star).notes if n.startswith("picked twice?")]
    assert len(picked) == 1, picked
    assert "1 pairs" in picked[0] and "rows 1 and 3" in picked[0]
    assert "1 of the pairs straddle rlnRandomSubset 1 and 2" in picked[0]
    # the coordinates are in the micrograph's pixels (1 Å here), not the images' (2 Å): picks
    # 20 pixels apart lie 20 Å apart, one particle (40 Å at the images' pixel)
    sub = tmp_path / "sub"
    sub.mkdir()
    star2 = _star(sub, [(500.0, 500.0), (520.0, 500.0)], ["a.mrc", "a.mrc"], [1, 1])
    assert any(n.startswith("picked twice?") for n in read_particles(star2).notes)


def test_the_relion_tutorial_sets_particle_picked_twice(shared_data):
    star = shared_data / "particles/relion31_5/relion31.star"
    if not star.is_file():
        pytest.skip("../shared/data/particles/relion31_5 absent")
    picked = [n for n in read_particles(star).notes if n.startswith("picked twice?")]
    # rows 1 and 2 name one micrograph at the same coordinates (3277, 983)
    assert len(picked) == 1 and "rows 1 and 2" in picked[0] and "none straddles" in picked[0]


def test_a_cryosparc_table_with_particles_picked_twice_says_so(tmp_path, small_stack):
    from test_cryosparc import _write_cs

    from cryosplat.particles.cryosparc import read_cryosparc

    cs = tmp_path / "x.cs"
    table = _write_cs(cs, ["stack.mrcs"] * 4, [0, 1, 2, 3])
    extra = [
        ("location/micrograph_uid", "<u8"),
        ("location/center_x_frac", "<f4"),
        ("location/center_y_frac", "<f4"),
        ("location/micrograph_shape", "<u4", (2,)),
        ("location/micrograph_psize_A", "<f4"),
        ("alignments3D/split", "<u4"),
    ]
    located = np.zeros(4, dtype=[*table.dtype.descr, *extra])
    for name in table.dtype.names:
        located[name] = table[name]
    located["location/micrograph_uid"] = [7, 7, 7, 9]
    located["location/micrograph_shape"] = [4000, 3000]  # rows, columns
    located["location/micrograph_psize_A"] = 1.0
    # x: fractions of 3000 columns: rows 1 and 2 lie 24 Å apart (32 Å if x were of the 4000
    # rows), row 3 300 Å away, row 4 on another micrograph
    located["location/center_x_frac"] = [0.5, 0.508, 0.6, 0.5]
    located["location/center_y_frac"] = [0.5, 0.5, 0.5, 0.5]
    located["alignments3D/split"] = [0, 1, 0, 1]
    with open(cs, "wb") as fh:
        np.save(fh, located)
    picked = [n for n in read_cryosparc(cs).notes if n.startswith("picked twice?")]
    assert len(picked) == 1 and "1 pairs" in picked[0] and "rows 1 and 2" in picked[0]
    assert "1 of the pairs straddle" in picked[0]
