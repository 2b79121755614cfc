"""The two half sets worked on side by side, a CPU thread or process each, where that pays."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from cryosplat.reconstruct.grid.forked_half import ForkedHalf

__all__ = [
    "concurrent_halves",
    "halves_in_processes",
    "map_halves",
    "fit_halves",
    "check_stop",
    "Stopped",
]


def concurrent_halves(device, n_halves: int, allowed: bool = True) -> bool:
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


def halves_in_processes(device, n_halves: int, allowed: bool = True) -> bool:
    """Fit the two halves in two processes (the second forked, :mod:`.forked_half`) rather than
    two threads: where they work side by side (:func:`concurrent_halves`), on Linux, with one
    torch thread each (two or three in all). Two threads of one process contend for the
    interpreter between the many small tensor operations of a fit step: measured (round 2,
    session 31) on the 2,000-particle EMD-5625 set, steps at boxes 14-56 in two threads give
    1.1-1.3 times the throughput of one, in two processes about twice. With more threads a half
    keeps several in its own process: a forked child may use only one (GNU OpenMP hangs in a
    child whose parent had a thread team)."""
    return (
        concurrent_halves(device, n_halves, allowed)
        and torch.get_num_threads() // 2 == 1
        and sys.platform.startswith("linux")
        and hasattr(os, "fork")
    )


class Stopped(Exception):
    """Raised inside a half's thread when the other thread (or the main one) failed."""


def map_halves(work, todo: list[int], device, allowed: bool = True) -> list:
    """``[work(i, stop) for i in todo]``, concurrently (:func:`concurrent_halves`) where it pays.

    ``stop`` is a :class:`threading.Event` that ``work`` checks between steps
    (``check_stop(stop)``): when one half fails, or the run is interrupted (Ctrl-C), the other
    stops at its next step instead of finishing its stage; what each half finished is already
    checkpointed.
    """
    stop = threading.Event()
    if not concurrent_halves(device, len(todo), allowed):
        return [work(i, stop) for i in todo]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cryosplat-half")
    try:
        futures = [pool.submit(work, i, stop) for i in todo]
        return [f.result() for f in futures]
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True)
        torch.set_num_threads(threads)


def check_stop(stop: threading.Event) -> None:
    if stop.is_set():
        raise Stopped("stopped: the other half failed or the run was interrupted")


def fit_halves(
    work,
    todo: list[int],
    device,
    allowed: bool = True,
    waiting: Callable[[], None] | None = None,
) -> None:
    """``work(i, stop)`` for each half ``i`` in ``todo``, for what it leaves on disk: the second
    half in a forked process where that pays (:func:`halves_in_processes`), else as
    :func:`map_halves`. ``waiting()`` is called every 0.2 s while this process waits for the
    other (to draw the other's progress). A failure of either half, or an interrupt, ends both
    and is raised here."""
    if not halves_in_processes(device, len(todo), allowed):
        map_halves(work, todo, device, allowed)
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        failed = threading.Event()  # the child's failure stops this half at its next step
        child = ForkedHalf(work, todo[1], failed)
        try:
            try:
                work(todo[0], failed)
            except Stopped:
                if not failed.is_set():
                    raise
            child.wait(waiting)
        finally:
            child.end()
    finally:
        torch.set_num_threads(threads)
