"""The two half sets worked on side by side, a CPU thread or a forked process each, where that pays.

Threads share the interpreter's lock: the small tensor operations of a fit step at a small box
spend most of their time in Python, so two threads there run little faster than one (box 56, one
thread each: a fit stage's 80 steps at box 14 took 0.52 s side by side against 0.33 s for one half
alone). A forked child runs the second half with its own interpreter (0.35 s for each half at
once). Where a fork is safe (:func:`fork_available`) and the work's result is small,
:func:`map_halves` forks (``processes=True``); the statistics pass, which returns grids, uses
threads.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

import torch

from cryosplat.core.errors import CryosplatError

__all__ = [
    "concurrent_halves",
    "fork_available",
    "map_halves",
    "shared_counts",
    "check_stop",
    "Stopped",
]

# Seconds between the parent's looks at its child (and calls of ``poll``) once its own half is done.
POLL_SECONDS = 0.1
# Seconds a child is given to stop at its next step after the parent failed, before it is killed.
STOP_GRACE_SECONDS = 30.0


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


def fork_available() -> bool:
    """A forked child is safe here: Linux (macOS's system libraries are not safe after a fork,
    and Windows has none)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


class Stopped(Exception):
    """Raised inside a half's work when the other half (or the main thread) failed."""


def shared_counts(n: int) -> Sequence[float]:
    """``n`` zeros that a forked child's writes reach the parent through (its progress)."""
    return multiprocessing.get_context("fork" if fork_available() else None).RawArray("d", n)


def map_halves(
    work: Callable[[int, Any], Any],
    todo: list[int],
    device: torch.device | str,
    allowed: bool = True,
    processes: bool = False,
    poll: Callable[[], None] | None = None,
) -> list:
    """``[work(i, stop) for i in todo]``, concurrently (:func:`concurrent_halves`) where it pays.

    ``stop`` is an event (``is_set()``) that ``work`` checks between steps (``check_stop(stop)``):
    when one half fails, or the run is interrupted (Ctrl-C), the other stops at its next step
    instead of finishing its stage; what each half finished is already checkpointed.

    ``processes``: the second half in a forked child where :func:`fork_available` (else a
    thread). Its result comes back pickled, so it should be small; what it changes in memory
    stays in the child (write to files, or to :func:`shared_counts`). ``poll`` is called every
    :data:`POLL_SECONDS` while the parent waits for the child.
    """
    if not concurrent_halves(device, len(todo), allowed):
        stop = threading.Event()
        return [work(i, stop) for i in todo]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))
    try:
        if processes and fork_available():
            return _forked(work, todo, poll)
        return _threaded(work, todo)
    finally:
        torch.set_num_threads(threads)


def _threaded(work: Callable[[int, Any], Any], todo: list[int]) -> list:
    stop = threading.Event()
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


def _forked(work: Callable[[int, Any], Any], todo: list[int], poll) -> list:
    """``todo[0]`` here, ``todo[1]`` in a forked child; the first failure stops both."""
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_child, args=(work, todo[1], stop, send), name="cryosplat-half", daemon=True
    )
    child.start()
    send.close()
    try:
        first = work(todo[0], stop)
        outcome = _wait_for(child, receive, poll)
    except BaseException as exc:
        stop.set()
        outcome = _wait_for(child, receive, None, STOP_GRACE_SECONDS)
        if isinstance(exc, Stopped) and outcome is not None and outcome[0] == "error":
            raise outcome[1] from None  # the child failed first: its error, not ours
        raise
    finally:
        receive.close()
    if outcome is None:
        raise CryosplatError(
            f"the process of half {'AB'[todo[1]]} ended without a word (exit code "
            f"{child.exitcode}: killed, or out of memory?)"
        )
    kind, value = outcome
    if kind == "error":
        raise value
    if kind == "stopped":
        raise Stopped(f"half {'AB'[todo[1]]} was stopped")
    return [first, value]


def _wait_for(child, receive, poll, timeout: float | None = None):
    """The child's ``(kind, value)`` once it has sent it (None if it died without a word), the
    child joined; after ``timeout`` seconds it is killed."""
    waited, outcome = 0.0, None
    while outcome is None:
        if receive.poll(POLL_SECONDS):
            try:
                outcome = receive.recv()
            except EOFError:  # it closed the pipe without sending: it died
                break
        elif not child.is_alive():
            if receive.poll(0):
                continue
            break
        if poll is not None:
            poll()
        waited += POLL_SECONDS
        if timeout is not None and waited > timeout:
            child.kill()
            break
    child.join()
    return outcome


def _child(work, item: int, stop, send) -> None:
    """A forked child's whole life: ``work(item, stop)``, its outcome sent to the parent."""
    try:
        result = ("ok", work(item, stop))
    except (Stopped, KeyboardInterrupt):
        result = ("stopped", None)
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent
        stop.set()
        result = ("error", exc)
    try:
        send.send(result)
    except Exception as exc:  # noqa: BLE001 - an error that does not pickle
        send.send(("error", CryosplatError(f"half {'AB'[item]} failed: {result[1]!r} ({exc})")))
    finally:
        send.close()


def check_stop(stop) -> None:
    if stop.is_set():
        raise Stopped("stopped: the other half failed or the run was interrupted")
