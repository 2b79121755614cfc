"""Python's cyclic garbage collector paused while metadata of many rows is parsed.

A 500,000-row STAR file becomes some ten million short strings and a few hundred thousand small
tuples and lists, none of them in a reference cycle. Each of the collector's passes visits every
tracked object, and the passes come more often the more objects are made: they were a third of
reading such a file. Reference counting still frees everything as usual while it is paused.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable ``gc`` inside the block; enable it after only if it was enabled before (so
    nested blocks, and a caller's own ``gc.disable()``, are left as they were)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
