"""A map's central slices kept per image between passes that read the same map at the same shells.

``cryosplat refine-defocus`` reads each image against the other half's map four to six times (the
scores, the defocus, the astigmatism's fine grids), every time at the same pose and shells; only
the CTF changes. Reading a slice (eight grid values per sample, trilinear) was half of the
command's time (round 2, session 67: 14.3 s of 27 s on 6,000 particles of box 128). A
:class:`SliceCache` given to :func:`~cryosplat.reconstruct.grid.particle_scores.read_samples`
(``SampleReading.slices``) keeps each image's slice the first time it is read and hands it back
after, the same values; a pass reading fewer shells of the same map is handed the kept slices'
samples within them. It holds at most ``budget_bytes``: a map, shells and sampling whose slices
would not fit are read every time, as without it. Host memory only (a GPU reads slices fast).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["SliceCache", "DEFAULT_BUDGET_FRACTION"]

DEFAULT_BUDGET_FRACTION = 0.25
"""Of the memory available when the command starts (:meth:`SliceCache.for_host`)."""


class _Entry:
    """One map, radius and sampling's slices: a row of ``values`` per image of the rows read,
    at the plane's samples ``kept`` (ascending)."""

    def __init__(self, volume, radius, kept, rows: np.ndarray, n_particles: int) -> None:
        self.volume = volume  # held, so that its id names it while the cache lives
        self.radius, self.kept = float(radius), kept
        self.slot = np.full(n_particles, -1, dtype=np.int64)
        self.slot[rows] = np.arange(len(rows))
        self.values = torch.empty((len(rows), len(kept)), dtype=torch.complex64)
        self.have = np.zeros(len(rows), dtype=bool)
        self._columns: dict[float, torch.Tensor | None] = {}

    def columns(self, radius: float, kept: torch.Tensor) -> slice | torch.Tensor | None:
        """Where the samples ``kept`` of a read at ``radius`` stand among this entry's: all of
        them at its own radius, a subset at a smaller one (the same plane's samples, read the
        same way); None where they are not all here."""
        if float(radius) == self.radius:
            return slice(None)
        if float(radius) > self.radius:
            return None
        if float(radius) not in self._columns:
            at = torch.searchsorted(self.kept, kept).clamp_max(max(len(self.kept) - 1, 0))
            inside = len(self.kept) > 0 and bool((self.kept[at] == kept).all())
            self._columns[float(radius)] = at if inside else None
        return self._columns[float(radius)]

    def slots(self, rows: np.ndarray) -> np.ndarray | None:
        """The rows' slots, or None unless every one is kept."""
        if rows.max(initial=-1) >= len(self.slot):
            return None
        slots = self.slot[rows]
        return slots if (slots >= 0).all() and self.have[slots].all() else None


class SliceCache:
    """Slices per image, per (map, radius, sampling), within ``budget_bytes``.

    A read at a smaller radius than one kept for the same map and sampling is handed the kept
    slices' samples within it (``refine-defocus``'s coarse astigmatism pass reads to half the
    radius of the others).

    Parameters
    ----------
    budget_bytes : int
        The most the kept slices may take (complex64, 8 bytes a sample); 0 keeps none.
    """

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes must be non-negative, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self.used_bytes = 0
        self._entries: dict[tuple, list[_Entry]] = {}
        self._refused: set[tuple] = set()
        self.hits = 0  # images handed back, for the log and the tests

    @classmethod
    def for_host(cls, fraction: float = DEFAULT_BUDGET_FRACTION) -> SliceCache:
        """A cache of ``fraction`` of the memory available now (none where that is unknown)."""
        from cryosplat.reconstruct.grid.memory_plan import available_memory_bytes

        available = available_memory_bytes()
        return cls(0 if available is None else int(fraction * available))

    def get(
        self, volume, radius: float, key, rows: np.ndarray, kept: torch.Tensor
    ) -> torch.Tensor | None:
        """The slices ``(n, M)`` of ``rows`` (particle rows) at the samples ``kept`` (M,), or
        None unless every one is kept."""
        for entry in self._entries.get((id(volume), key), []):
            columns = entry.columns(radius, kept.cpu())
            slots = None if columns is None else entry.slots(rows)
            if slots is not None:
                self.hits += len(rows)
                values = entry.values[torch.as_tensor(slots)]
                return values if isinstance(columns, slice) else values[:, columns]
        return None

    def put(
        self,
        volume,
        radius: float,
        key,
        rows: np.ndarray,
        slices: torch.Tensor,
        read: np.ndarray,
        n_particles: int,
        kept: torch.Tensor,
    ) -> None:
        """Keep ``slices`` (n, M) of ``rows`` at the samples ``kept``; the first time for this
        map, radius and sampling, room is made for every row of ``read`` (the call's) if the
        budget allows, else never."""
        if slices.device.type != "cpu":
            return
        name = (id(volume), key)
        entries = self._entries.setdefault(name, [])
        entry = next((e for e in entries if e.radius == float(radius)), None)
        if entry is None and (*name, float(radius)) not in self._refused:
            size = len(read) * slices.shape[1] * 8
            if self.used_bytes + size <= self.budget_bytes:
                entry = _Entry(volume, radius, kept.cpu(), read, n_particles)
                entries.append(entry)
                self.used_bytes += size
            else:
                self._refused.add((*name, float(radius)))
        if entry is None or entry.values.shape[1] != slices.shape[1]:
            return
        slots = entry.slot[rows]
        mine = slots >= 0
        entry.values[torch.as_tensor(slots[mine])] = slices[torch.as_tensor(mine)]
        entry.have[slots[mine]] = True
