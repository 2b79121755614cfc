"""Choosing particles: 3D classes (``--class``, as ``relion_reconstruct --class``) and rows
(``--ind``, cryoDRGN's index files); a set of several classes nobody chose is named."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import reconstruct_quickly, simulate_tiny

from cryosplat.cli.main import main
from cryosplat.core.errors import InputError
from cryosplat.io.mrc import read_map
from cryosplat.io.star import read_star, write_star
from cryosplat.particles.read import read_particles
from cryosplat.particles.selection import read_row_indices, select_particles
from cryosplat.particles.validate import check_particles


def _mixed_star(folder: Path, classes_of_b: int = 2) -> Path:
    """Two tiny sets of different molecules (A: class 1, B: class ``classes_of_b``, another blob
    12 Å along x) interleaved in one RELION 3.1 STAR beside their folders; the truths as
    ``a/truth.mrc``, ``b/truth.mrc``."""
    import torch

    from cryosplat.model.gaussians import GaussianModel

    tables, optics = [], None
    for name, seed in (("a", 5), ("b", 9)):
        truth = GaussianModel.random(
            40, 24, 4.0, seed=seed, radius_fraction=0.2, scale_angstrom=5.0
        )
        if name == "b":
            with torch.no_grad():
                truth.means[:, 0] += 12.0
        (folder / name).mkdir()
        star = simulate_tiny(folder / name, truth)
        shutil.copy(star.parent / "truth.mrc", folder / name / "truth.mrc")
        blocks = read_star(star)
        optics = blocks["optics"].columns
        cols = dict(blocks["particles"].columns)
        cols["rlnImageName"] = [n.replace("@", f"@{name}/sim/", 1) for n in cols["rlnImageName"]]
        tables.append(cols)
    n = len(tables[0]["rlnImageName"])
    order = np.ravel(np.column_stack([np.arange(n), n + np.arange(n)]))  # a, b, a, b, ...
    merged = {k: [(tables[0][k] + tables[1][k])[i] for i in order] for k in tables[0]}
    merged["rlnClassNumber"] = [1 if i < n else classes_of_b for i in order]
    path = folder / "mixed.star"
    write_star(path, {"optics": optics, "particles": merged})
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    return _mixed_star(tmp_path_factory.mktemp("mixed"))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_classes_are_read_counted_and_named_until_chosen(mixed, capsys):
    ps = read_particles(mixed)
    assert ps.classes is not None and ps.classes.column == "rlnClassNumber"
    assert ps.classes.counts() == {1: 120, 2: 120}
    warned = [f for f in check_particles(ps) if "2 classes" in f.message]
    assert len(warned) == 1 and not warned[0].refuse
    assert "rlnClassNumber 1: 120, 2: 120" in warned[0].message
    two = select_particles(ps, classes=(2,))
    assert len(two) == 120 and set(two.classes.numbers) == {2}
    assert two.image_index.tolist() == ps.image_index[1::2].tolist()
    assert two.selection == "rlnClassNumber 2" and "particles: 120 of 240" in two.notes[-1]
    both = select_particles(ps, classes=(1, 2))
    assert len(both) == 240 and not any("classes" in f.message for f in check_particles(both))
    assert main(["info", str(mixed)]) == 0
    out = capsys.readouterr().out
    assert "classes:      rlnClassNumber 1: 120, 2: 120" in out and "warning: the particles" in out
    assert main(["info", str(mixed), "--class", "1"]) == 0
    out = capsys.readouterr().out
    assert "count:        120" in out and "warning: the particles" not in out


def test_class_errors_name_what_the_set_holds(mixed, tiny_set):
    ps = read_particles(mixed)
    with pytest.raises(InputError, match=r"no particle is in class 3; the set holds rlnClass"):
        select_particles(ps, classes=(2, 3))
    with pytest.raises(InputError, match="no class column"):
        select_particles(read_particles(tiny_set), classes=(1,))
    with pytest.raises(SystemExit):
        main(["info", str(mixed), "--class", "one"])


@pytest.mark.parametrize("kind", ["pkl", "pkl-list", "npy", "txt", "mask"])
def test_index_files_of_each_kind(tmp_path, kind):
    rows = np.array([7, 2, 5])
    if kind == "pkl":
        (path := tmp_path / "ind.pkl").write_bytes(pickle.dumps(rows))
    elif kind == "pkl-list":
        (path := tmp_path / "ind.pkl").write_bytes(pickle.dumps(rows.tolist()))
    elif kind == "npy":
        np.save(path := tmp_path / "ind.npy", rows)
    elif kind == "txt":
        (path := tmp_path / "ind.txt").write_text("7, 2\n5\n")
    else:
        mask = np.zeros(10, dtype=bool)
        mask[rows] = True
        np.save(path := tmp_path / "mask.npy", mask)
    assert read_row_indices(path, 10).tolist() == [2, 5, 7]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.array([1, 10]), r"index 10 \(entry 2\) is outside the set's rows 0 to 9"),
        (np.array([-1, 3]), "index -1"),
        (np.array([3, 4, 3]), "index 3 is listed 2 times"),
        (np.array([1.0, 2.5]), "entry 2 is 2.5, not a whole number"),
        (np.array([], dtype=int), "holds no particle indices"),
        (np.zeros((2, 2), dtype=int), "one-dimensional"),
        (np.ones(4, dtype=bool), "mask of 4 values, but there are 10"),
    ],
)
def test_bad_index_files_are_refused(tmp_path, values, message):
    np.save(path := tmp_path / "ind.npy", values)
    with pytest.raises(InputError, match=message):
        read_row_indices(path, 10)
    (bad := tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="not a readable index pickle"):
        read_row_indices(bad, 10)


def test_rows_then_classes(mixed, tmp_path):
    ps = read_particles(mixed)
    (ind := tmp_path / "ind.pkl").write_bytes(pickle.dumps(np.arange(0, 240, 3)))
    chosen = select_particles(ps, classes=(1,), index_file=ind)
    expected = [r for r in range(0, 240, 3) if r % 2 == 0]  # class 1 sits at the even rows
    assert chosen.image_index.tolist() == ps.image_index[expected].tolist()
    assert chosen.selection == "the rows ind.pkl lists; rlnClassNumber 1"


def _run(args: list[str]) -> None:
    assert reconstruct_quickly(*args) == 0


def test_a_reconstruction_of_one_class_is_that_molecule(mixed, tmp_path, capsys):
    """``--class 2`` makes molecule B's map (its truth correlates, A's no more than B's own
    truth does), where both classes make one between them; the choice is recorded in the run,
    and a resume without it is another run."""
    truth_a = read_map(mixed.parent / "a" / "truth.mrc")[0]
    truth_b = read_map(mixed.parent / "b" / "truth.mrc")[0]
    _run([str(mixed), "-o", str(out := tmp_path / "b"), "--class", "2"])
    made = read_map(out / "map.mrc")[0]
    alike = _correlation(truth_a, truth_b)  # 0.53: the blobs overlap
    assert _correlation(made, truth_b) > 0.95 and _correlation(made, truth_a) < alike + 0.05
    _run([str(mixed), "-o", str(both := tmp_path / "both")])  # both classes: between the two
    mean = read_map(both / "map.mrc")[0]
    assert min(_correlation(mean, truth_a), _correlation(mean, truth_b)) > alike + 0.15
    summary = json.loads((out / "run.json").read_text())["summary"]
    assert summary["selection"] == "rlnClassNumber 2" and sum(summary["n_particles"]) == 120
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "particles chosen: rlnClassNumber 2" in capsys.readouterr().out
    assert main(["reconstruct", str(mixed), "-o", str(out), "--resume", "--no-progress"]) == 2
    assert "holds a different run" in capsys.readouterr().err


def test_relion_reconstruct_numbers_the_classes_alike(mixed, tmp_path, relion_available):
    """``relion_reconstruct --class 2`` on the same STAR makes molecule B's map too: the numbers
    mean what RELION means by them."""
    out = tmp_path / "relion_b.mrc"
    cmd = ["relion_reconstruct", "--i", str(mixed), "--o", str(out), "--ctf", "--class", "2"]
    subprocess.run(cmd, check=True, capture_output=True, cwd=mixed.parent)
    made = read_map(out)[0]
    truth_a = read_map(mixed.parent / "a" / "truth.mrc")[0]
    truth_b = read_map(mixed.parent / "b" / "truth.mrc")[0]
    alike = _correlation(truth_a, truth_b)
    assert _correlation(made, truth_b) > 0.8 and _correlation(made, truth_a) < alike + 0.05


def test_cryosparc_classes_count_from_zero(tmp_path, small_stack):
    """cryoSPARC's ``alignments3D/class`` is read as written (from 0) and chosen by it."""
    from numpy.lib import recfunctions
    from test_cryosparc import _write_cs

    table = _write_cs(tmp_path / "x.cs", ["stack.mrcs"] * 6, np.arange(6))
    table = recfunctions.append_fields(
        table, "alignments3D/class", np.array([0, 1, 0, 2, 1, 0], dtype="<u4"), usemask=False
    )
    with open(path := tmp_path / "x.cs", "wb") as fh:
        np.save(fh, table)
    ps = read_particles(path)
    assert ps.classes.column == "alignments3D/class" and ps.classes.counts() == {0: 3, 1: 2, 2: 1}
    assert select_particles(ps, classes=(0,)).image_index.tolist() == [0, 2, 5]
    assert select_particles(ps, classes=(1, 2)).image_index.tolist() == [1, 3, 4]


def test_optics_groups_are_chosen_by_name_and_recorded(tiny_set, tmp_path, capsys):
    """``--optics-group``: the particles of the groups named (one source of a merged set, or the
    others, as the pose check's warning asks), recorded as the run's choice."""
    blocks = read_star(tiny_set)
    optics = {k: list(v) * 2 for k, v in blocks["optics"].columns.items()}
    optics["rlnOpticsGroup"], optics["rlnOpticsGroupName"] = ["1", "2"], ["first", "second"]
    table = dict(blocks["particles"].columns)
    table["rlnOpticsGroup"] = [str(1 + i % 2) for i in range(blocks["particles"].n_rows)]
    write_star(merged := tmp_path / "merged.star", {"optics": optics, "particles": table})
    ps = read_particles(merged, datadir=tiny_set.parent)
    second = select_particles(ps, optics_groups=("second",))
    assert second.rows_in_file().tolist() == list(range(1, 120, 2))
    assert second.selection == "optics groups second"
    with pytest.raises(InputError, match="optics group 'third': the set's are first, second"):
        select_particles(ps, optics_groups=("third",))
    args = [str(merged), "--datadir", str(tiny_set.parent), "--optics-group", "first"]
    _run([*args, "-o", str(out := tmp_path / "first")])
    summary = json.loads((out / "run.json").read_text())["summary"]
    assert summary["selection"] == "optics groups first" and sum(summary["n_particles"]) == 60
    capsys.readouterr()
    assert main(["info", *args]) == 0
    assert "count:        60" in capsys.readouterr().out
