"""map_halves: the two halves in a forked child and the parent, and what comes back from a child."""

from __future__ import annotations

import io
import os
import pickle
import time

import pytest
import torch

from cryosplat.core.errors import CryosplatError
from cryosplat.core.progress import Progress
from cryosplat.reconstruct.grid import side_by_side
from cryosplat.reconstruct.grid.side_by_side import (
    Stopped,
    check_stop,
    map_halves,
    shared_counts,
)

pytestmark = pytest.mark.skipif(
    not side_by_side.fork_available(), reason="no safe fork on this platform"
)


@pytest.fixture(autouse=True)
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_the_second_half_runs_in_a_child_and_its_result_comes_back():
    seen = []
    polls = shared_counts(1)

    def work(i, stop):
        seen.append(i)  # the child's append stays in the child
        if i == 1:
            time.sleep(0.3)  # the parent waits, polling
        return {"half": i, "pid": os.getpid(), "threads": torch.get_num_threads()}

    def poll():
        polls[0] += 1

    first, second = map_halves(work, [0, 1], "cpu", processes=True, poll=poll)
    assert (first["half"], second["half"]) == (0, 1)
    assert first["pid"] == os.getpid() != second["pid"]
    assert first["threads"] == second["threads"] == 1  # one torch thread each
    assert seen == [0]
    assert polls[0] >= 1
    assert torch.get_num_threads() == 2  # restored


def _counting_work(fails: int, counts, error: BaseException):
    def work(i, stop):
        if i == fails:
            time.sleep(0.2)  # the other half is under way
            raise error
        for step in range(1, 100_000):
            check_stop(stop)
            counts[i] = step
            time.sleep(0.001)
        return i

    return work


@pytest.mark.parametrize("fails", [0, 1])
def test_either_halfs_failure_stops_the_other_and_reaches_the_caller(fails):
    counts = shared_counts(2)
    work = _counting_work(fails, counts, ValueError(f"half {fails} failed"))
    with pytest.raises(ValueError, match=f"half {fails} failed"):
        map_halves(work, [0, 1], "cpu", processes=True)
    other = 1 - fails
    assert 0 < counts[other] < 99_999  # under way, then stopped at its next step
    assert torch.get_num_threads() == 2


def test_an_interrupted_parent_stops_its_child():
    counts = shared_counts(2)
    work = _counting_work(0, counts, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        map_halves(work, [0, 1], "cpu", processes=True)
    settled = counts[1]
    time.sleep(0.1)
    assert 0 < settled == counts[1]  # the child was joined: it counts no more


def test_a_child_that_dies_without_a_word_is_an_error():
    def work(i, stop):
        if i == 1:
            os._exit(3)
        return i

    with pytest.raises(CryosplatError, match="half B ended without a word.*exit code 3"):
        map_halves(work, [0, 1], "cpu", processes=True)


class _Unpicklable(Exception):
    def __reduce__(self):
        raise pickle.PicklingError("not this one")


def test_an_error_that_does_not_pickle_still_reaches_the_caller():
    def work(i, stop):
        if i == 1:
            raise _Unpicklable("a lock inside")
        return i

    with pytest.raises(CryosplatError, match="half B failed: _Unpicklable"):
        map_halves(work, [0, 1], "cpu", processes=True)


def test_threads_and_one_after_the_other_where_no_fork_pays(monkeypatch):
    def work(i, stop):
        return os.getpid(), stop.is_set()

    monkeypatch.setattr(side_by_side, "fork_available", lambda: False)
    assert map_halves(work, [0, 1], "cpu", processes=True) == [(os.getpid(), False)] * 2
    monkeypatch.undo()
    torch.set_num_threads(1)  # one thread: no side by side at all
    assert map_halves(work, [0, 1], "cpu", processes=True) == [(os.getpid(), False)] * 2
    with pytest.raises(Stopped):
        check_stop(type("Set", (), {"is_set": staticmethod(lambda: True)})())


def test_a_progress_bar_draws_in_its_own_process_only(monkeypatch):
    stream = io.StringIO()
    bar = Progress(10, "fit", stream=stream, line_interval_s=0.0)
    monkeypatch.setattr(os, "getpid", lambda: bar.pid + 1)  # as a forked child sees it
    bar.update(5, force=True)
    bar.close()
    assert stream.getvalue() == ""
    monkeypatch.undo()
    bar.update(6, force=True)
    assert "fit" in stream.getvalue() and "60.0%" in stream.getvalue()
