"""A small progress bar with ETA for long work, on stderr; plain lines when not on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """``1h02m03s`` / ``2m03s`` / ``3s``."""
    s = int(round(max(0.0, seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


class Progress:
    """Progress over ``total`` units of work, with an ETA from the rate since the start.

    Parameters
    ----------
    total : float
        Units of work in all.
    label : str
    stream : TextIO, optional
        Default ``sys.stderr``. On a terminal the bar redraws in place; otherwise a line is printed at
        most every ``line_interval_s`` seconds.
    done : float
        Work already done (a resumed run), not counted in the rate.

    Work found done later (a checkpoint read back while the bar runs) is passed to
    :meth:`resumed`, so that the rate and the ETA count only what this run did.
    """

    def __init__(
        self,
        total: float,
        label: str = "",
        stream: TextIO | None = None,
        done: float = 0.0,
        line_interval_s: float = 10.0,
        enabled: bool = True,
    ) -> None:
        self.total = max(float(total), 1e-12)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.start_done = float(done)
        self.done = float(done)
        self.start = time.monotonic()
        self.last_print = 0.0
        self.interval = line_interval_s
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.info = ""

    def resumed(self, units: float) -> None:
        """Count ``units`` of the work as done before this run (read back from a checkpoint):
        the bar shows them once :meth:`update` includes them, the rate and the ETA leave them
        out."""
        self.start_done += float(units)

    def rate_per_second(self) -> float:
        """Units of work done per second since the start (0 before any)."""
        elapsed = time.monotonic() - self.start
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def eta_seconds(self) -> float | None:
        rate = self.rate_per_second()
        if rate <= 0:
            return None
        return (self.total - self.done) / rate

    def line(self) -> str:
        frac = min(1.0, self.done / self.total)
        width = 24
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        eta = self.eta_seconds()
        eta_s = "?" if eta is None else format_seconds(eta)
        elapsed = format_seconds(time.monotonic() - self.start)
        return f"{self.label} [{bar}] {100 * frac:5.1f}% {elapsed} ETA {eta_s} {self.info}".rstrip()

    def update(self, done: float, info: str = "", force: bool = False) -> None:
        self.done = float(done)
        if info:
            self.info = info
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if force or now - self.last_print > 0.2:
                self.stream.write("\r" + self.line()[:200].ljust(100))
                self.stream.flush()
                self.last_print = now
        elif force or now - self.last_print >= self.interval:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self.last_print = now

    def extend(self, units: float) -> None:
        """Count ``units`` more of work, found to be needed as it goes."""
        self.total += float(units)

    def part(self) -> Callable[[float], None]:
        """A callback for the next part of the work, called with how much of that part is done:
        it counts from where the bar stands now."""
        start = self.done
        return lambda done: self.update(start + done)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self.line()[:200].ljust(100) + "\n")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
