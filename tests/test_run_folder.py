"""The output folder guard, the status file and atomic checkpoints; halves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.core.errors import InputError
from cryosplat.io.mrc import MRCStack
from cryosplat.particles.halves import split_halves, unequal_halves_warning
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.checkpoint import load_checkpoint, save_checkpoint
from cryosplat.reconstruct.run_folder import RunFolder


def test_new_folder_then_resume_same_run(tmp_path):
    out = tmp_path / "run"
    assert RunFolder(out, {"seed": 1}).prepare() is False
    assert (out / "run.json").is_file()
    assert RunFolder(out, {"seed": 1}, resume=True).prepare() is True


def test_refuses_a_different_run_and_names_the_setting(tmp_path):
    out = tmp_path / "run"
    RunFolder(out, {"seed": 1, "engine": "grid"}).prepare()
    with pytest.raises(InputError, match="different run.*seed 1 → 2;"):
        RunFolder(out, {"seed": 2, "engine": "grid"}, resume=True).prepare()


def test_a_nested_setting_is_named_with_both_values(tmp_path):
    out = tmp_path / "run"
    RunFolder(out, {"grid": {"heldout_fraction": 0.1, "pad": 2}}).prepare()
    with pytest.raises(InputError) as info:
        RunFolder(out, {"grid": {"heldout_fraction": 0.0, "pad": 2}}, resume=True).prepare()
    message = str(info.value)
    assert "grid.heldout_fraction 0.1 → 0.0;" in message and "pad" not in message


def test_refuses_same_run_without_resume(tmp_path):
    out = tmp_path / "run"
    RunFolder(out, {"seed": 1}).prepare()
    with pytest.raises(InputError, match="--resume"):
        RunFolder(out, {"seed": 1}).prepare()


def test_refuses_foreign_nonempty_folder_and_resume_of_nothing(tmp_path):
    (tmp_path / "x.txt").write_text("user data")
    with pytest.raises(InputError, match="not empty"):
        RunFolder(tmp_path, {"seed": 1}).prepare()
    with pytest.raises(InputError, match="no run to resume"):
        RunFolder(tmp_path / "new", {"seed": 1}, resume=True).prepare()
    assert (tmp_path / "x.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]  # no lock file left behind


def test_complete_status(tmp_path):
    f = RunFolder(tmp_path / "run", {"a": 1})
    f.prepare()
    assert f.status()["status"] == "running"
    f.complete({"resolution": 3.0})
    assert f.status()["status"] == "complete"


def test_a_complete_run_drops_its_checkpoints_unless_kept(tmp_path):
    for keep in (False, True):
        f = RunFolder(tmp_path / f"run{keep}", {"a": 1})
        f.prepare()
        f.checkpoint_dir.mkdir(exist_ok=True)
        save_checkpoint(f.checkpoint_dir / "stats_A_fit.npz", {"x": torch.zeros(1000)})
        size = (f.checkpoint_dir / "stats_A_fit.npz").stat().st_size
        removed = f.complete({"resolution": 3.0}, keep_checkpoints=keep)
        assert f.status()["status"] == "complete"
        assert f.checkpoint_dir.is_dir() == keep
        assert removed == (0 if keep else size)
        f.release()
        # Resumed, a complete run makes its outputs again from kept checkpoints; without them
        # there is nothing to resume from.
        again = RunFolder(tmp_path / f"run{keep}", {"a": 1}, resume=True)
        if keep:
            assert again.prepare() is True and again.remaking
            assert again.status()["status"] == "running"
            # the fitting pass's cost is kept through the remakes, not the remake's own
            assert again.first_pass == {}
            again.complete({"timings_s": {"fit": 0.1}}, keep_checkpoints=True)
            again.release()
        else:
            with pytest.raises(InputError, match="checkpoints are gone.*--keep-checkpoints"):
                again.prepare()


def test_a_remake_keeps_what_the_fitting_pass_cost(tmp_path):
    f = RunFolder(tmp_path / "run", {"a": 1})
    f.prepare()
    f.checkpoint_dir.mkdir(exist_ok=True)
    save_checkpoint(f.checkpoint_dir / "stats_A_fit.npz", {"x": torch.zeros(10)})
    first = {"timings_s": {"fit": 30.0}, "peak_resident_memory_gb": 2.0, "device": "cpu"}
    f.complete({"resolution": 3.0, **first}, keep_checkpoints=True)
    f.release()
    for _ in range(2):  # twice: the first pass's, not the first remake's
        again = RunFolder(tmp_path / "run", {"a": 1}, resume=True)
        assert again.prepare() and again.first_pass == first
        again.complete({"resolution": 3.1, "timings_s": {"fit": 0.1}}, keep_checkpoints=True)
        again.release()
        summary = again.status()["summary"]
        assert summary["first_pass"] == first and summary["timings_s"] == {"fit": 0.1}


def test_checkpoint_roundtrip_and_atomic_replace(tmp_path):
    path = tmp_path / "state.pt"
    save_checkpoint(path, {"x": torch.arange(3), "epoch": 1})
    save_checkpoint(path, {"x": torch.arange(4), "epoch": 2})
    state = load_checkpoint(path)
    assert state["epoch"] == 2 and state["x"].tolist() == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def _particles(small_stack, subset=None):
    path, images = small_stack
    n = len(images)
    return ParticleSet(
        16, 2.0, [MRCStack(path)], np.zeros(n, int), np.arange(n), random_subset=subset, source=path
    )


def test_halves_random_split_is_seeded_and_disjoint(small_stack):
    p = _particles(small_stack)
    a, b, how = split_halves(p, seed=3)
    a2, b2, _ = split_halves(p, seed=3)
    assert np.array_equal(a, a2) and np.array_equal(b, b2)
    assert len(a) == 3 and len(b) == 3 and not set(a) & set(b)
    assert "seed 3" in how


def test_halves_follow_random_subset(small_stack):
    p = _particles(small_stack, subset=np.array([1, 2, 2, 1, 1, 2]))
    a, b, how = split_halves(p)
    assert a.tolist() == [0, 3, 4] and b.tolist() == [1, 2, 5] and how == "rlnRandomSubset"
    a, b, how = split_halves(p, use_random_subset=False)
    assert how.startswith("random")
    with pytest.raises(InputError, match="rlnRandomSubset"):
        split_halves(_particles(small_stack, subset=np.array([1, 2, 3, 1, 1, 2])))


def test_unequal_half_sets_are_warned_of():
    assert unequal_halves_warning(1000, 1000, "rlnRandomSubset") is None
    assert unequal_halves_warning(3, 2, "random (seed 0)") is None  # an odd count, split at random
    assert unequal_halves_warning(1200, 800, "rlnRandomSubset") is None  # 1.5 times: not yet
    warning = unequal_halves_warning(1900, 100, "rlnRandomSubset")
    assert warning is not None and "unequal (1900 + 100 particles, rlnRandomSubset)" in warning
    assert unequal_halves_warning(100, 1900, "rlnRandomSubset") is not None


def test_info_warns_of_unequal_random_subsets(small_stack):
    from cryosplat.particles.summary import summarize

    unequal = summarize(_particles(small_stack, subset=np.array([1, 1, 1, 1, 1, 2])))
    assert any("unequal (5 + 1 particles" in w for w in unequal.warnings)
    equal = summarize(_particles(small_stack, subset=np.array([1, 2, 1, 2, 1, 2])))
    assert not any("unequal" in w for w in equal.warnings)


def test_atomic_writes_get_ordinary_permissions_and_leave_no_temporary(tmp_path):
    import os

    from cryosplat.io.atomic import atomic_path
    from cryosplat.io.mrc import write_map

    old = os.umask(0o022)
    try:
        write_map(tmp_path / "m.mrc", np.zeros((4, 4, 4)), 1.0)
    finally:
        os.umask(old)
    assert (tmp_path / "m.mrc").stat().st_mode & 0o777 == 0o644
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mrc"]


def test_atomic_writes_from_many_threads_leave_the_umask_as_it_was(tmp_path):
    """Reading the umask sets it for an instant: two threads at once must not leave it 0."""
    import os
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from cryosplat.io.atomic import atomic_path

    def write(i: int) -> None:
        for k in range(150):
            with atomic_path(tmp_path / f"{i}_{k}.txt") as tmp:
                tmp.write_text("x")

    old, interval = os.umask(0o022), sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between any two bytecodes: the race shows
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(8)))
        assert os.umask(0o022) == 0o022
    finally:
        sys.setswitchinterval(interval)
        os.umask(old)
    modes = {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {0o644}
