"""Errors that reach the user as one clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

__all__ = ["CryosplatError", "InputError"]


class CryosplatError(Exception):
    """Base class of errors the command line reports as ``error: <message>`` (exit 2)."""


class InputError(CryosplatError, ValueError):
    """A file, column, row or option given by the user is wrong; the message names it."""
