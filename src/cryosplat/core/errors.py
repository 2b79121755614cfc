"""Errors that reach the user as one clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

__all__ = ["CryosplatError", "InputError", "Terminated"]


class CryosplatError(Exception):
    """Base class of errors the command line reports as ``error: <message>`` (exit 2)."""


class InputError(CryosplatError, ValueError):
    """A file, column, row or option given by the user is wrong; the message names it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM received (a batch scheduler's time limit or ``scancel``, ``kill``): handled as
    Ctrl-C is, so a run stops at its next step, marks its folder interrupted and can be resumed.
    The command line turns the signal into this exception (:func:`cryosplat.cli.main.main`)."""
