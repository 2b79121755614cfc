"""The statistics pass saved part way, so an interrupted pass continues where it stopped.

At paper scale the pass is the longest single piece of a run (box 256, 40,000 particles: 146 s
of 264 s on two CPU threads), and its result is checkpointed only once a half set is done. Every
:data:`PARTIAL_EVERY_S` seconds, at a moment when the running sums hold every insertion so far
(:meth:`~cryosplat.core.slice_insertion.SliceAccumulator.at_flush`), the pass writes its totals,
the count of batches and insertions done, the data power and the images left out, atomically; a
resumed pass started on the same rows with the same settings reads them and goes on from the next
batch, and its sums are those of an uninterrupted pass to the bit (the same partial sums, added in
the same order). Anything else (other rows, batch size, grid) starts the pass afresh.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryosplat.io.atomic import atomic_path

__all__ = [
    "PARTIAL_EVERY_S",
    "GatherState",
    "GatherCheckpoint",
    "gather_key",
    "partial_path",
    "partial_paths",
    "saved_progress",
]

log = logging.getLogger("cryosplat")

PARTIAL_EVERY_S = 120.0
_FORMAT = "cryosplat-gather-partial"


def partial_path(path: Path, rank: int = 0) -> Path:
    """Where the pass whose result is checkpointed at ``path`` is saved part way (one file per
    rank under ``torchrun``)."""
    return path.with_name(f"{path.stem}.partial{rank}.npz")


def partial_paths(path: Path) -> list[Path]:
    """Every rank's :func:`partial_path` of ``path`` that exists."""
    return sorted(path.parent.glob(f"{path.stem}.partial*.npz"))


def saved_progress(path: Path) -> tuple[int, int] | None:
    """``(particles done, particles in the pass)`` of a partial checkpoint, or None where it is
    unreadable (read without its grids)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return int(z["particles_done"]), int(z["n_rows"])
    except (OSError, ValueError, KeyError, EOFError):
        return None


def gather_key(rows: np.ndarray, **settings) -> str:
    """A digest of the rows (in gathering order) and the settings that shape the sums."""
    digest = hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    digest.update(repr(sorted(settings.items())).encode())
    return digest.hexdigest()


@dataclass
class GatherState:
    """Where a statistics pass stood: ``batches`` done, the accumulator's ``insertions`` (at a
    flush), its totals ``data`` (B, complex) and ``weights`` (W), the ``power`` by shell, the
    number of images left out, the sums of the images' ``background`` level and the rows weighed
    0 for their background's structure (``left_out``, int64)."""

    batches: int
    insertions: int
    data: torch.Tensor
    weights: torch.Tensor
    power: torch.Tensor
    n_dropped: int
    background: torch.Tensor
    left_out: np.ndarray


class GatherCheckpoint:
    """The partial checkpoint of one statistics pass at ``path``, valid for ``key``.

    Parameters
    ----------
    path : Path
        Where it is written (``.npz``).
    key : str
        :func:`gather_key` of the pass: a file written for another key is ignored.
    n_rows, batch_size : int
        The pass's particles and batch (for :func:`saved_progress`).
    every_s : float, optional
        Seconds between saves; default :data:`PARTIAL_EVERY_S` (read when the pass starts).
    """

    def __init__(
        self, path: Path, key: str, n_rows: int, batch_size: int, every_s: float | None = None
    ) -> None:
        self.path, self.key = Path(path), key
        self.n_rows, self.batch_size = int(n_rows), int(batch_size)
        self.every_s = PARTIAL_EVERY_S if every_s is None else float(every_s)
        self._last = time.monotonic()

    def load(self, device: torch.device | str) -> GatherState | None:
        """The state saved for this key, on ``device``, or None (none, another key, unreadable)."""
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if str(z["format"]) != _FORMAT or str(z["key"]) != self.key:
                    return None
                arrays = {k: z[k] for k in ("data", "weights", "power", "background")}
                counts = {k: int(z[k]) for k in ("batches", "insertions", "n_dropped")}
                left_out = np.asarray(z["left_out"], dtype=np.int64)
        except (OSError, ValueError, KeyError, EOFError) as exc:
            log.warning("%s: unreadable, the statistics pass starts afresh (%s)", self.path, exc)
            return None
        tensors = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
        return GatherState(**counts, **tensors, left_out=left_out)

    def resume(
        self, device: torch.device | str, progress: Callable[..., None] | None = None
    ) -> GatherState | None:
        """:meth:`load`, and where a state is there, the pass told it continues:
        ``progress(done, n_rows, resumed=True)`` with the particles it covered, and the log."""
        state = self.load(device)
        if state is None:
            return None
        done = min(self.n_rows, state.batches * self.batch_size)
        if progress is not None:
            progress(done, self.n_rows, resumed=True)
        log.info(
            "statistics: the pass saved part way (%s) continues at particle %d of %d",
            self.path.name,
            done,
            self.n_rows,
        )
        return state

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def save(self, state: GatherState) -> None:
        """Write ``state``; where that fails (a full disk: at box 256 a half's sums are 810 MB),
        warn and save no more, so the pass goes on as it did before it was ever saved."""
        try:
            with atomic_path(self.path, suffix=".npz") as tmp:
                np.savez(
                    tmp,
                    format=_FORMAT,
                    key=self.key,
                    batches=state.batches,
                    insertions=state.insertions,
                    n_dropped=state.n_dropped,
                    particles_done=min(self.n_rows, state.batches * self.batch_size),
                    n_rows=self.n_rows,
                    data=state.data.cpu().numpy(),
                    weights=state.weights.cpu().numpy(),
                    power=state.power.cpu().numpy(),
                    background=state.background.cpu().numpy(),
                    left_out=np.asarray(state.left_out, dtype=np.int64),
                )
        except OSError as exc:
            log.warning(
                "%s: the statistics pass could not be saved part way (%s); it goes on unsaved",
                self.path.name,
                exc,
            )
            self.every_s = math.inf
        self._last = time.monotonic()
