"""Per-particle weights (``--weights``, ``cryosplat.particles.weights``): read by file row,
refused where they cannot be weights, and a weight of 1 for every particle the same as none."""

from __future__ import annotations

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.core.errors import InputError
from cryosplat.io.mrc import read_map
from cryosplat.particles.read import read_particles
from cryosplat.particles.weights import read_weights, with_weights, write_weights


def test_weights_are_read_by_file_row_through_a_selection(tiny_set, tmp_path):
    table = np.linspace(0.0, 1.0, 120)
    np.save(tmp_path / "w.npy", table)
    particles = read_particles(tiny_set).subset(np.arange(10, 120, 7))
    weighted = with_weights(particles, tmp_path / "w.npy")
    np.testing.assert_array_equal(weighted.weights, table[particles.rows_in_file()])
    assert "weighted by w.npy" in weighted.selection
    chosen = weighted.subset(np.array([2, 0]))  # a later choice keeps each particle's weight
    np.testing.assert_array_equal(chosen.weights, table[particles.rows_in_file()[[2, 0]]])
    assert with_weights(particles, None) is particles


def test_weights_written_for_some_rows_read_back_for_those(tmp_path):
    rows = np.array([5, 0, 9])
    write_weights(tmp_path / "w.npy", rows, np.array([0.5, 1.0, 0.0]))
    table = np.load(tmp_path / "w.npy")
    assert len(table) == 10 and np.isnan(table[[1, 2, 3, 4, 6, 7, 8]]).all()
    np.testing.assert_array_equal(read_weights(tmp_path / "w.npy", rows), [0.5, 1.0, 0.0])
    with pytest.raises(InputError, match="no weight .NaN. for 1 chosen particles, first row 3"):
        read_weights(tmp_path / "w.npy", np.array([0, 3]))


@pytest.mark.parametrize(
    "table, rows, message",
    [
        (np.ones((3, 2)), [0], "expected a 1D array of numbers"),
        (np.ones(3), [0, 5], "3 weights, no weight for row 5"),
        (np.array([1.0, -0.5]), [0, 1], "weight -0.5 for row 1"),
        (np.array([1.0, np.inf]), [0, 1], "weight inf for row 1"),
        (np.zeros(4), [0, 1], "every chosen particle's weight is 0"),
    ],
)
def test_what_cannot_be_weights_is_refused(tmp_path, table, rows, message):
    np.save(tmp_path / "w.npy", table)
    with pytest.raises(InputError, match=message):
        read_weights(tmp_path / "w.npy", np.array(rows))


def test_a_missing_or_unreadable_weights_file_is_named(tmp_path):
    with pytest.raises(InputError, match="weights file not found"):
        read_weights(tmp_path / "none.npy", np.arange(2))
    (tmp_path / "bad.npy").write_text("not an array")
    with pytest.raises(InputError, match="not a .npy array of weights"):
        read_weights(tmp_path / "bad.npy", np.arange(2))


def test_weights_of_one_make_the_same_map_and_the_splat_engine_refuses_them(
    tiny_set, tmp_path, capsys
):
    np.save(tmp_path / "ones.npy", np.ones(120))
    np.save(tmp_path / "some.npy", np.where(np.arange(120) % 4 == 0, 0.0, 1.0))
    steps = ["--stage-fractions", "0.5,1.0", "--stage-steps", "30,30", "--no-progress"]
    runs = {}
    for name, extra in (("plain", []), ("ones", ["--weights", str(tmp_path / "ones.npy")])):
        runs[name] = tmp_path / name
        assert main(["reconstruct", str(tiny_set), "-o", str(runs[name]), *steps, *extra]) == 0
    for f in ("half_map_A.mrc", "half_map_B.mrc", "map.mrc"):
        assert np.array_equal(read_map(runs["plain"] / f)[0], read_map(runs["ones"] / f)[0]), f
    capsys.readouterr()
    assert main(["info", str(runs["ones"])]) == 0
    printed = capsys.readouterr().out
    assert "particles chosen: weighted by ones.npy (mean 1.000; 0 under 0.5)" in printed
    assert (
        "with the run's own --ind, --class, --optics-group or --weights" in printed
    )  # score needs them too
    some = ["--weights", str(tmp_path / "some.npy")]
    assert main(["reconstruct", str(tiny_set), "-o", str(tmp_path / "some"), *steps, *some]) == 0
    a, b = (
        read_map(runs["plain"] / "half_map_A.mrc")[0],
        read_map(tmp_path / "some/half_map_A.mrc")[0],
    )
    assert not np.array_equal(a, b)  # a quarter of the images weighed 0: another map
    splat = ["--engine", "splat", "--epochs", "1", *some]
    assert (
        main(["reconstruct", str(tiny_set), "-o", str(tmp_path / "splat"), "--no-progress", *splat])
        == 2
    )


def test_a_run_is_resumed_with_its_own_weights_only(tiny_set, tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.ones(120))
    np.save(tmp_path / "b.npy", np.r_[np.ones(119), 0.5])
    run = tmp_path / "run"
    steps = ["--stage-fractions", "1.0", "--stage-steps", "10", "--no-progress"]
    base = ["reconstruct", str(tiny_set), "-o", str(run), *steps, "--keep-checkpoints"]
    assert main([*base, "--weights", str(tmp_path / "a.npy")]) == 0
    capsys.readouterr()
    assert main([*base, "--weights", str(tmp_path / "b.npy"), "--resume"]) == 2
    assert "weighted by b.npy" in capsys.readouterr().err  # the difference is named
    assert main([*base, "--weights", str(tmp_path / "a.npy"), "--resume"]) == 0
