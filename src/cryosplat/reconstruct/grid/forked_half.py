"""One half's work in a forked child process, and step counts both processes can see.

Used by :func:`cryosplat.reconstruct.grid.side_by_side.fit_halves` where the two halves are
fitted in two processes: the child inherits the parent's memory (statistics, models, settings)
without a copy, does its half's work, whose results it leaves on disk (the stage checkpoints,
written atomically), and exits; an error it meets is sent back through a pipe and raised in the
parent. The child dies with its parent (Linux ``PR_SET_PDEATHSIG``), and the parent kills it
when its own half fails or the run is interrupted, so no orphan fits on.

A forked child must not use more than one OpenMP thread: GNU OpenMP, PyTorch's CPU backend,
hangs in a child whose parent had started a thread team (measured with torch 2.13: a matrix
product in such a child with two threads never returns, with one it does). The caller sets one
thread before the fork.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import pickle
import signal
import threading
import traceback
import warnings
from collections.abc import Callable

import numpy as np

__all__ = ["ForkedHalf", "StepCounts"]

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.2


class StepCounts:
    """Steps done per half, in memory shared with a forked child (an anonymous shared map), so
    the parent's progress bar counts the child's steps too; :meth:`in_owner` says whether this is
    the process that made it (the one that draws)."""

    def __init__(self, n_halves: int = 2) -> None:
        self._map = mmap.mmap(-1, 8 * n_halves)
        self._counts = np.frombuffer(self._map, dtype=np.int64)
        self._owner = os.getpid()

    def __setitem__(self, half: int, steps: int) -> None:
        self._counts[half] = steps

    def __getitem__(self, half: int) -> int:
        return int(self._counts[half])

    def total(self) -> int:
        return int(self._counts.sum())

    def in_owner(self) -> bool:
        return os.getpid() == self._owner


def _die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    except (OSError, AttributeError):  # not Linux's libc: the parent's kill on failure remains
        pass
    if os.getppid() != parent:  # the parent died before the prctl took
        os._exit(1)


def _send(fd: int, exc: BaseException) -> None:
    text = traceback.format_exc()
    try:
        payload = pickle.dumps((exc, text))
        pickle.loads(payload)  # an exception that pickles but cannot be rebuilt
    except Exception:
        payload = pickle.dumps((RuntimeError(f"{type(exc).__name__}: {exc}"), text))
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]


class ForkedHalf:
    """``work(half, stop)`` run in a forked child process (Linux), started on construction.

    Parameters
    ----------
    work : callable(half, stop)
        What the child does; its ``stop`` is a :class:`threading.Event` never set (the parent
        stops the child by killing it). Its results must reach the parent another way (files).
    half : int
        0 or 1, for the work and for messages.
    failed : threading.Event, optional
        Set as soon as the child has failed (the parent's own work can stop at its next step).
    """

    def __init__(
        self,
        work: Callable[[int, threading.Event], object],
        half: int,
        failed: threading.Event | None = None,
    ) -> None:
        self.half = half
        self.failed = threading.Event() if failed is None else failed
        parent = os.getpid()
        read_fd, write_fd = os.pipe()
        with warnings.catch_warnings():
            # Python 3.12+ warns of fork in a process with threads (here OpenMP's idle team and
            # the watchers of earlier stages, done): the child takes no lock they could hold, runs
            # torch on one thread and leaves by os._exit.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: never returns into the parent's code
            code = 1
            try:
                os.close(read_fd)
                _die_with_parent(parent)
                work(half, threading.Event())
                code = 0
            except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent
                _send(write_fd, exc)
            finally:
                os._exit(code)
        os.close(write_fd)
        self.pid = pid
        self._fd = read_fd
        self._payload = b""
        self._status: int | None = None
        self._watcher = threading.Thread(target=self._watch, name="cryosplat-half-watch")
        self._watcher.daemon = True
        self._watcher.start()

    def _watch(self) -> None:
        """Read what the child sends until it exits, reap it, and say whether it failed."""
        chunks = []
        while chunk := os.read(self._fd, 1 << 16):
            chunks.append(chunk)
        self._payload = b"".join(chunks)
        self._status = os.waitpid(self.pid, 0)[1]
        os.close(self._fd)
        if self._payload or self._status:
            self.failed.set()

    def wait(self, waiting: Callable[[], None] | None = None) -> None:
        """Wait for the child to end, calling ``waiting()`` every 0.2 s meanwhile; raise the
        error it met (the child's traceback added as a note), or a ``RuntimeError`` when it was
        killed."""
        while self._watcher.is_alive():
            self._watcher.join(_POLL_S)
            if waiting is not None and self._watcher.is_alive():
                waiting()
        name = "AB"[self.half]
        if self._payload:
            exc, text = pickle.loads(self._payload)
            if hasattr(exc, "add_note"):
                exc.add_note(f"(in the process fitting half {name})\n{text}")
            raise exc
        status = self._status or 0
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            why = " (SIGKILL: most likely the system's out of memory killer)"
            raise RuntimeError(
                f"the process fitting half {name} was killed by signal {sig}"
                + (why if sig == signal.SIGKILL else "")
            )
        if status:
            code = os.waitstatus_to_exitcode(status)
            raise RuntimeError(f"the process fitting half {name} ended with status {code}")

    def end(self) -> None:
        """Kill the child if it still runs, and reap it (idempotent)."""
        if self._watcher.is_alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._watcher.join()
