"""The benchmark's detergent micelle round a membrane protein (``benchmarks/bench_micelle.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_micelle import Micelle, belt_shape, with_micelle  # noqa: E402
from bench_truths import write_truth  # noqa: E402

from cryosplat.io.mrc import read_map  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _voxel(point_angstrom, origin_angstrom, box: int, pixel: float) -> tuple[int, int, int]:
    """``[z, y, x]`` index of a file point on the grid whose voxel ``box // 2`` is the origin."""
    x, y, z = (np.asarray(point_angstrom) - np.asarray(origin_angstrom)) / pixel + box // 2
    return int(round(z)), int(round(y)), int(round(x))


def test_the_belt_lies_about_its_normal_through_its_centre():
    box, pixel, origin = 48, 2.0, (10.0, 20.0, 30.0)
    normal = np.array([1.0, 0.0, 1.0]) / np.sqrt(2.0)
    centre = np.array(origin) + (4.0, 0.0, 4.0)
    micelle = Micelle(tuple(centre), tuple(normal), 30.0, 10.0, 0.5, edge_angstrom=2.0)
    shape = belt_shape(box, pixel, micelle, origin)
    in_plane = np.cross(normal, [0.0, 1.0, 0.0])
    assert shape[_voxel(centre, origin, box, pixel)] == pytest.approx(1.0, abs=1e-6)
    # 24 Å from the centre in the membrane's plane: inside; along the normal: outside
    assert shape[_voxel(centre + 24.0 * in_plane, origin, box, pixel)] > 0.99
    assert shape[_voxel(centre + 24.0 * normal, origin, box, pixel)] < 1e-6
    # falling through its surface along the normal; symmetric through the centre
    values = [shape[_voxel(centre + d * normal, origin, box, pixel)] for d in (5.0, 10.0, 15.0)]
    assert values[0] > 0.9 and values[2] < 1e-3 and values[0] > values[1] > values[2]
    np.testing.assert_allclose(
        shape[_voxel(centre + 8.0 * normal, origin, box, pixel)],
        shape[_voxel(centre - 8.0 * normal, origin, box, pixel)],
        atol=1e-6,
    )


def test_the_detergent_fills_round_the_protein_not_into_it():
    box, pixel = 32, 2.0
    atoms = np.zeros((box, box, box), dtype=np.float32)
    atoms[14:18, 14:18, 14:18] = 5.0  # the protein: a cube of density 5 at the centre
    micelle = Micelle((0.0, 0.0, 0.0), (0.0, 0.0, 1.0), 20.0, 8.0, 0.4, edge_angstrom=2.0)
    out = with_micelle(atoms, pixel, micelle, (0.0, 0.0, 0.0))
    # the protein unchanged, the belt at 0.4 of the protein's mean density beside it
    np.testing.assert_allclose(out[14:18, 14:18, 14:18], 5.0)
    assert out[16, 16, 16 + 6] == pytest.approx(2.0, rel=0.01)
    # nothing far along the normal
    assert out[16 + 10, 16, 16] == pytest.approx(0.0, abs=1e-6)
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"normal": (0.0, 0.0, 0.0)}, "normal"),
        ({"radius_angstrom": 0.0}, "radius_angstrom"),
        ({"half_thickness_angstrom": -1.0}, "half_thickness_angstrom"),
        ({"level": 0.0}, "level"),
        ({"level": 1.5}, "level"),
    ],
)
def test_a_bad_micelle_is_refused_naming_the_value(kwargs, match):
    settings = {
        "centre_angstrom": (0.0, 0.0, 0.0),
        "normal": (0.0, 0.0, 1.0),
        "radius_angstrom": 20.0,
        "half_thickness_angstrom": 8.0,
        "level": 0.4,
        **kwargs,
    }
    with pytest.raises(ValueError, match=match):
        Micelle(**settings)


def test_atoms_that_hold_nothing_are_refused():
    micelle = Micelle((0.0, 0.0, 0.0), (0.0, 0.0, 1.0), 20.0, 8.0, 0.4)
    with pytest.raises(ValueError, match="positive density"):
        with_micelle(np.zeros((8, 8, 8)), 1.0, micelle, (0.0, 0.0, 0.0))


@pytest.mark.skipif(not (SHARED / "models" / "8zpm.cif").is_file(), reason="needs ../shared")
def test_the_membrane_sets_truth_holds_the_belt_round_the_receptor(tmp_path):
    from bench_catalogue_membrane import BELT_CENTRE, CENTRE, NORMAL, belt

    model = SHARED / "models" / "8zpm.cif"
    box, pixel = 64, 2.25
    write_truth(model, tmp_path / "bare.mrc", box, pixel, CENTRE)
    write_truth(model, tmp_path / "belt.mrc", box, pixel, CENTRE, micelle=belt(0.4))
    bare, voxel = read_map(tmp_path / "bare.mrc")
    with_belt, _ = read_map(tmp_path / "belt.mrc")
    assert voxel == pytest.approx(pixel)
    added = with_belt - bare
    assert added.min() >= -1e-6
    # the belt's middle, 30 Å from the normal in the membrane's plane: detergent at 0.4 of the
    # protein's mean; 30 Å along the normal from it: none
    normal = np.asarray(NORMAL) / np.linalg.norm(NORMAL)
    in_plane = np.cross(normal, [1.0, 0.0, 0.0])
    in_plane /= np.linalg.norm(in_plane)
    rim = np.asarray(BELT_CENTRE) + 33.0 * in_plane
    protein_mean = bare[bare > 0.1 * bare.max()].mean()
    assert added[_voxel(rim, CENTRE, box, pixel)] == pytest.approx(0.4 * protein_mean, rel=0.2)
    far = np.asarray(BELT_CENTRE) + 30.0 * normal
    assert added[_voxel(far, CENTRE, box, pixel)] < 0.01 * protein_mean
    with pytest.raises(ValueError, match="center_angstrom"):
        write_truth(model, tmp_path / "x.mrc", box, pixel, None, micelle=belt(0.4))
