"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A reader (or a run killed half-way) sees either the old file or the new one, whole. The new file gets
the permissions an ordinary ``open`` would give it (``0666`` less the umask), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask. Reading it means setting it and setting it back: two threads doing so
    at once (the halves' statistics, each saved in its own thread) could leave it 0 for good, so
    the two calls are made under a lock."""
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    Parameters
    ----------
    path : str or Path
        The file to write; its folder is created if needed.
    suffix : str
        Suffix of the temporary file (some writers choose the format from it, e.g. ``.npz``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
