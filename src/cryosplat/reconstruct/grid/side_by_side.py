"""The two half sets worked on side by side, where that pays: a CPU thread each, or, for the
fit, the second half in a forked process.

Threads share one interpreter: a fit step at a small box is many small tensor operations, each
holding Python's lock between them, so two halves in threads finish only 1.3–1.5 times sooner
than one after the other. A forked process has its own (:func:`map_halves` with ``apart``,
where :func:`fork_pays`): EMD-5625's 2,000-particle set (box 56) fitted its halves in
2.45–2.56 s forked against 3.14–3.27 s in threads and 4.6–4.7 s one after the other (the fit
alone, from its saved statistics), the same models to the bit (``benchmarks/RESULTS.md``, round
2, session 41).
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from multiprocessing.sharedctypes import RawArray
from typing import Any

import torch

from cryosplat.core.errors import Terminated

__all__ = [
    "concurrent_halves",
    "halves_apart",
    "map_halves",
    "check_stop",
    "in_forked_half",
    "HalfCounts",
    "Stopped",
    "FORK_HALVES",
    "FORK_MAX_BOX",
    "fork_pays",
    "forked_half_peak_gb",
]

# Fit the second half in a forked process where the platform forks safely (Linux); False: a
# thread (tests compare the two).
FORK_HALVES = True
_in_forked_half = False
_forked_peak_kb = 0  # the largest peak resident memory of a forked half so far (ru_maxrss)


def concurrent_halves(device: torch.device | str, n_halves: int, allowed: bool = True) -> bool:
    """Work on the two halves at once, one CPU thread each: on a CPU with at least two threads
    the small tensor operations of a fit step use one core well and two poorly, so two halves side
    by side finish sooner than one after the other (box 64: fit 12.7 s against 31.8 s, the same
    models). A GPU runs them one after the other; ``allowed`` is the memory plan's word."""
    return (
        allowed
        and torch.device(device).type == "cpu"
        and n_halves == 2
        and torch.get_num_threads() >= 2
    )


def halves_apart(device: torch.device | str, n_halves: int, allowed: bool = True) -> bool:
    """The second of two concurrent halves (:func:`concurrent_halves`) in a forked process: on
    Linux (macOS's system libraries are not safe to fork once used, Windows has no fork), and
    not from inside a forked half."""
    return (
        FORK_HALVES
        and sys.platform.startswith("linux")
        and not _in_forked_half
        and concurrent_halves(device, n_halves, allowed)
    )


# The largest box whose fit forks its second half (:func:`fork_pays`).
FORK_MAX_BOX = 64


def fork_pays(box: int) -> bool:
    """Whether a fit at this box gains from its second half in a forked process (box ≤
    :data:`FORK_MAX_BOX`). Measured (round 2, session 41), the fit forked against in threads,
    alternated on one machine: box 56 2.85 against 3.35 s and 3.45 against 4.1 s (medians of
    four), box 64 4.0–4.35 against 4.6–4.8 s, the processes' summed memory 0.58–0.68 against
    0.62–0.73 GB; box 70 level (3.85 against 3.8 s, medians of seven); box 100 0–4 % sooner for
    0.82 against 0.79 GB; box 200 66.0 against 67.6 s for 3.15 against 2.72 GB (each process's
    allocator keeps its own free memory), over the memory plan's 3.03 GB."""
    return box <= FORK_MAX_BOX


def in_forked_half() -> bool:
    """True in the process :func:`map_halves` forked for a half (it draws no progress)."""
    return _in_forked_half


def forked_half_peak_gb() -> float | None:
    """The largest peak resident memory of a half fitted in a forked process so far, in GB
    (10⁹ bytes; ``ru_maxrss``, what ``/usr/bin/time -f %M`` reports for it), or None if none
    was."""
    return _forked_peak_kb * 1024 / 1e9 if _forked_peak_kb else None


class Stopped(Exception):
    """Raised inside a half's thread when the other thread (or the main one) failed."""


class HalfCounts:
    """Per-half counts of work done (e.g. fit steps), shared with a forked half: made before
    :func:`map_halves` forks, written by each half, read by the process that draws progress."""

    def __init__(self, n: int = 2) -> None:
        self._counts = RawArray("q", n)

    def __setitem__(self, half: int, value: int) -> None:
        self._counts[half] = int(value)

    def __getitem__(self, half: int) -> int:
        return self._counts[half]

    def total(self) -> int:
        return int(sum(self._counts))


class _ParentWatch:
    """``stop`` in a forked half: set once the process that forked it is gone."""

    def __init__(self) -> None:
        self._parent = os.getppid()

    def is_set(self) -> bool:
        return os.getppid() != self._parent


def map_halves(
    work: Callable[[int, threading.Event], Any],
    todo: list[int],
    device: torch.device | str,
    allowed: bool = True,
    apart: bool = False,
    waiting: Callable[[], None] | None = None,
) -> list:
    """``[work(i, stop) for i in todo]``, concurrently (:func:`concurrent_halves`) where it pays.

    ``stop`` is a :class:`threading.Event` that ``work`` checks between steps
    (``check_stop(stop)``): when one half fails, or the run is interrupted (Ctrl-C), the other
    stops at its next step instead of finishing its stage; what each half finished is already
    checkpointed.

    ``apart``: the second half runs in a forked process (:func:`halves_apart`), the first here;
    its result and any error it raises come back pickled (its error is raised here, with its
    type), so ``work`` must leave what else it makes where this process can read it (files, a
    :class:`HalfCounts`). ``waiting`` is called about every 0.2 s while this process waits for
    the forked half (e.g. to draw progress).
    """
    stop = threading.Event()
    if not concurrent_halves(device, len(todo), allowed):
        return [work(i, stop) for i in todo]
    fork = apart and halves_apart(device, len(todo), allowed)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))
    try:
        if fork:
            return _forked(work, todo, stop, waiting)
        return _threaded(work, todo, stop)
    finally:
        torch.set_num_threads(threads)


def _threaded(work, todo: list[int], stop: threading.Event) -> list:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cryosplat-half")
    try:
        futures = [pool.submit(work, i, stop) for i in todo]
        wait(futures, return_when=FIRST_EXCEPTION)  # either half's failure stops the other
        failed = [f for f in futures if f.done() and f.exception() is not None]
        if failed:
            stop.set()
            raise failed[0].exception()
        return [f.result() for f in futures]
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True)


def _forked(work, todo: list[int], stop: threading.Event, waiting) -> list:
    """``todo[1]`` in a forked process, ``todo[0]`` here (:func:`map_halves`)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the forked half: never returns
        os.close(read_end)
        _run_forked_half(work, todo[1], write_end)
    os.close(write_end)
    child = _ForkedHalf(pid, read_end, stop)
    try:
        mine = work(todo[0], stop)
    except Stopped:
        child.finish(waiting)  # the forked half failed first: raise its error, not ours
        raise
    except BaseException:
        child.kill()
        raise
    return [mine, child.finish(waiting)]


def _run_forked_half(work, half: int, write_end: int) -> None:
    """In the forked process: run one half, send back its result or its error, exit without
    running the parent's exit handlers (its run folder, lock and log are the parent's)."""
    global _in_forked_half
    _in_forked_half = True
    for number, handler in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.SIG_IGN)):
        try:  # SIGTERM ends it at once; Ctrl-C reaches the parent, which stops it
            signal.signal(number, handler)
        except ValueError:  # not the main thread: nothing to undo
            pass
    code = 0
    try:
        payload = ("ok", work(half, _ParentWatch()))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the parent
        code = 1
        payload = ("error", error)
    try:
        data = pickle.dumps(payload)
    except Exception as error:  # noqa: BLE001 - an unpicklable result or error
        code = 1
        data = pickle.dumps(("error", RuntimeError(f"half {'AB'[half]}: {error!r}")))
    try:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(data)
    finally:
        os._exit(code)


class _ForkedHalf:
    """The parent's side of a forked half: its reply read as it comes (a failure stops this
    process's half at its next step), its exit waited for."""

    def __init__(self, pid: int, read_end: int, stop: threading.Event) -> None:
        self.pid, self.stop = pid, stop
        self.reply: tuple | None = None
        self._reader = threading.Thread(
            target=self._read, args=(read_end,), name="cryosplat-forked-half", daemon=True
        )
        self._reader.start()

    def _read(self, read_end: int) -> None:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        try:
            self.reply = pickle.loads(data) if data else None
        except Exception as error:  # noqa: BLE001 - an error that does not unpickle here
            self.reply = ("error", RuntimeError(f"the forked half failed: {error!r}"))
        if self.reply is None or self.reply[0] != "ok":
            self.stop.set()

    def finish(self, waiting: Callable[[], None] | None) -> Any:
        """Wait for the forked half; its result, or its error raised here."""
        while self._reader.is_alive():
            self._reader.join(0.2)
            if waiting is not None and self._reader.is_alive():
                waiting()
        status = self._wait()
        if self.reply is None:
            code = os.waitstatus_to_exitcode(status)
            if code == -signal.SIGTERM:  # a scheduler's SIGTERM reached every process of the run
                raise Terminated()
            if code < 0:  # killed: the kernel's out-of-memory killer, most often
                raise MemoryError(
                    f"the half fitted in a forked process was killed by signal {-code}"
                )
            raise RuntimeError(f"the half fitted in a forked process exited with status {code}")
        kind, value = self.reply
        if kind == "error":
            raise value
        return value

    def kill(self) -> None:
        """Stop the forked half now (this process failed or was interrupted)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._wait()
        self._reader.join()

    def _wait(self) -> int:
        """Wait for the forked half's exit; its status (its peak memory kept)."""
        global _forked_peak_kb
        _, status, usage = os.wait4(self.pid, 0)
        _forked_peak_kb = max(_forked_peak_kb, usage.ru_maxrss)
        return status


def check_stop(stop: threading.Event) -> None:
    if stop.is_set():
        raise Stopped("stopped: the other half failed or the run was interrupted")
