"""Passes over the images saved part way, so that an interrupted command continues where it stopped.

``cryosplat refine-defocus`` and ``cryosplat score`` read every image against a half map, pass
after pass (the scores, the defocus, the astigmatism's grids), and each pass gives each image a row
of numbers that depends on that image alone. At the paper's scale these passes are the command's
whole time (``refine-defocus`` on two CPU threads: 3,000 particles of box 256 in 37 s, so some
eight minutes for 40,000). A :class:`RowStore` holds one pass's rows as they come, with which are
done; where it is given a file it writes them there every :data:`PARTIAL_EVERY_S` seconds, on
Ctrl-C or any other failure, and when the pass is done (atomically: a file is whole or absent). A
pass started again with the same key reads the file and reads only the images not yet done; each
row is the same as an uninterrupted pass gives it, to rounding (an image's numbers do not depend on
the batch it was read in). :class:`PassCheckpoints` names the files of a command's passes in one
folder and keys each by what shapes its numbers: the particles, the maps, the reading settings and
the pass's own candidates. A file whose key differs, or that cannot be read, is not read: the pass
starts afresh and writes over it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from cryosplat.core.progress import Progress
from cryosplat.io.atomic import atomic_path
from cryosplat.reconstruct.grid.gather_checkpoint import PARTIAL_EVERY_S

__all__ = [
    "RowStore",
    "PassCheckpoints",
    "digest",
    "pass_progress",
    "saved_passes",
    "PARTIAL_EVERY_S",
]

log = logging.getLogger("cryosplat")

_FORMAT = "cryosplat-row-pass"


def digest(*parts) -> str:
    """A SHA-256 of ``parts``: arrays by dtype, shape and bytes, dataclasses (e.g. a
    :class:`~cryosplat.core.ctf.CTFParams`) field by field, anything else by ``repr``."""
    h = hashlib.sha256()
    _update(h, parts)
    return h.hexdigest()


def _update(h, part) -> None:
    if isinstance(part, np.ndarray):
        a = np.ascontiguousarray(part)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    elif dataclasses.is_dataclass(part) and not isinstance(part, type):
        h.update(type(part).__name__.encode())
        _update(h, tuple(getattr(part, f.name) for f in dataclasses.fields(part)))
    elif isinstance(part, (tuple, list)):
        h.update(f"{type(part).__name__}{len(part)}".encode())
        for item in part:
            _update(h, item)
    else:
        h.update(repr(part).encode())
    h.update(b"|")


def pass_progress(bar: Progress | None, store: RowStore) -> Callable[[int], None] | None:
    """``bar``'s callback for the next pass (:meth:`~cryosplat.core.progress.Progress.part`),
    the rows ``store`` holds done counted as done before this run: out of the rate and the ETA."""
    if bar is None:
        return None
    bar.resumed(store.n_done)
    return bar.part()


class RowStore:
    """One pass's numbers per image (row), filled as the images are read.

    Parameters
    ----------
    n_rows : int
        Images in the pass.
    path : Path, optional
        Where the pass is saved part way (None: kept in memory only).
    key : str
        What shapes the numbers (:func:`digest`); a saved pass of another key is not read.
    every_s : float
        Seconds between saves while rows come in.
    """

    def __init__(
        self,
        n_rows: int,
        path: Path | None = None,
        key: str = "",
        every_s: float = PARTIAL_EVERY_S,
    ) -> None:
        if n_rows < 0:
            raise ValueError(f"n_rows must be non-negative, got {n_rows}")
        self.n_rows, self.path, self.key, self.every_s = int(n_rows), path, key, float(every_s)
        self.arrays: dict[str, np.ndarray] = {}
        self.done = np.zeros(self.n_rows, dtype=bool)
        self._saved_at = time.monotonic()
        self._unsaved = False
        if path is not None and path.is_file():
            self._load(path)

    @property
    def n_done(self) -> int:
        """Rows done (read back from a saved pass, or since)."""
        return int(self.done.sum())

    def todo(self) -> np.ndarray:
        """Positions (in the pass's row order) of the rows not yet done, ascending."""
        return np.flatnonzero(~self.done)

    def pending(
        self, rows: np.ndarray, progress: Callable[[int], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray, Callable[[int], None] | None]:
        """``(positions, rows[positions], progress)`` for the rows not yet done: their positions
        in the pass, their row numbers, and ``progress`` counting on from the rows done (and
        told of them at once)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) != self.n_rows:
            raise ValueError(f"{len(rows)} rows for a pass of {self.n_rows}")
        todo, before = self.todo(), self.n_done
        if progress is None:
            return todo, rows[todo], None
        if before:
            progress(before)
        return todo, rows[todo], lambda done: progress(before + done)

    def column(self, name: str, tail: tuple[int, ...] = (), fill: float = np.nan) -> np.ndarray:
        """The array ``name`` of shape ``(n_rows, *tail)``, made filled with ``fill`` if new."""
        shape = (self.n_rows, *tail)
        if name in self.arrays and self.arrays[name].shape != shape:
            raise ValueError(f"column {name!r} is {self.arrays[name].shape}, asked for {shape}")
        if name not in self.arrays:
            self.arrays[name] = np.full(shape, fill, dtype=np.float64)
        return self.arrays[name]

    def put(self, positions: np.ndarray, **values: np.ndarray) -> None:
        """Rows ``positions`` done, with their ``values`` by column (made by :meth:`column`
        first); saved when :data:`every_s` has passed since the last save."""
        positions = np.asarray(positions, dtype=np.int64)
        for name, value in values.items():
            self.column(name, tuple(np.shape(value)[1:]))[positions] = value
        self.done[positions] = True
        self._unsaved = True
        if self.path is not None and time.monotonic() - self._saved_at >= self.every_s:
            self.save()

    @contextlib.contextmanager
    def saved_on_exit(self) -> Iterator[RowStore]:
        """Save what is done when the block fails or is interrupted (Ctrl-C), then re-raise."""
        try:
            yield self
        except BaseException:
            if self.path is not None and self._unsaved:
                self.save()
            if self.path is not None and self.n_done:
                log.info(
                    "%d of %d images of this pass saved in %s: run the command again to go on",
                    self.n_done,
                    self.n_rows,
                    self.path.parent,
                )
            raise

    def save(self) -> None:
        """Write the pass (done rows and columns) to :attr:`path`, whole or not at all. Where it
        cannot be written (a full disk, a folder not writable) the pass goes on unsaved, with a
        warning: the checkpoint is for an interruption, and the command's own outputs are small."""
        if self.path is None:
            return
        try:
            with atomic_path(self.path, suffix=".npz") as tmp:
                np.savez(
                    tmp,
                    format=np.array(_FORMAT),
                    key=np.array(self.key),
                    done=self.done,
                    names=np.array(sorted(self.arrays), dtype=str),
                    **{f"column_{name}": a for name, a in self.arrays.items()},
                )
        except OSError as err:
            log.warning(
                "%s: the pass could not be saved (%s); it goes on unsaved, and an interruption "
                "would lose it",
                self.path,
                err,
            )
            self.path = None
            return
        self._saved_at, self._unsaved = time.monotonic(), False

    def finish(self) -> dict[str, np.ndarray]:
        """The columns, once every row is done (saved, where there is a file)."""
        if not self.done.all():
            raise RuntimeError(f"{self.n_rows - self.n_done} of {self.n_rows} rows not done")
        if self._unsaved:
            self.save()
        return self.arrays

    def _load(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["format"]) != _FORMAT or str(z["key"]) != self.key:
                    log.info("%s: saved by another pass or settings; this pass starts afresh", path)
                    return
                done = z["done"]
                arrays = {str(n): z[f"column_{n}"] for n in z["names"]}
        except (OSError, ValueError, KeyError, EOFError) as err:
            log.warning("%s: unreadable (%s); this pass starts afresh", path, err)
            return
        if done.shape != (self.n_rows,) or any(a.shape[0] != self.n_rows for a in arrays.values()):
            log.warning("%s: rows do not match this pass; it starts afresh", path)
            return
        self.done, self.arrays = (
            done.astype(bool),
            {n: a.astype(np.float64) for n, a in arrays.items()},
        )
        if self.n_done:
            log.info(
                "%s: %d of %d images read before; going on from there",
                path.name,
                self.n_done,
                self.n_rows,
            )


def saved_passes(folder: Path) -> list[tuple[str, int, int]]:
    """``(name, images done, images in the pass)`` of each readable pass saved in ``folder``
    (:class:`PassCheckpoints`), by name; ``[]`` where there is none."""
    found = []
    for path in sorted(Path(folder).glob("*.npz")) if Path(folder).is_dir() else []:
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["format"]) == _FORMAT:
                    found.append((path.stem, int(z["done"].sum()), int(z["done"].shape[0])))
        except (OSError, ValueError, KeyError, EOFError):
            continue
    return found


class PassCheckpoints:
    """The :class:`RowStore` files of one command's passes, in ``folder`` (None: its stores are
    kept in memory only, nothing saved).

    ``identity`` (:func:`digest`) says what every pass shares: the particles, the maps and the
    reading settings. Each pass adds its own name and parts to it.
    """

    def __init__(
        self, folder: Path | None, identity: str = "", every_s: float = PARTIAL_EVERY_S
    ) -> None:
        self.folder = None if folder is None else Path(folder)
        self.identity, self.every_s = identity, every_s

    def store(self, name: str, rows: np.ndarray, *parts) -> RowStore:
        """The store of pass ``name`` over ``rows`` (the particle set's row numbers, in the
        pass's order); ``parts`` (arrays or values) are what else shapes its numbers."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if self.folder is None:
            return RowStore(len(rows))
        key = digest(self.identity, name, rows, *parts)
        path = self.folder / f"{name}.npz"
        return RowStore(len(rows), path, key, self.every_s)
