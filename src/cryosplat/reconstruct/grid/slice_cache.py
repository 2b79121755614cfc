"""A map's central slices kept per image between passes that read the same map at the same shells.

``cryosplat refine-defocus`` reads each image against the other half's map four to six times (the
scores, the defocus, the astigmatism's fine grids), every time at the same pose and shells; only
the CTF changes. Reading a slice (eight grid values per sample, trilinear) was half of the
command's time (round 2, session 67: 14.3 s of 27 s on 6,000 particles of box 128). A
:class:`SliceCache` given to :func:`~cryosplat.reconstruct.grid.particle_scores.read_samples`
(``SampleReading.slices``) keeps each image's slice the first time it is read and hands it back
after, the same values. It holds at most ``budget_bytes``: a map, shells and sampling whose slices
would not fit are read every time, as without it. Host memory only (a GPU reads slices fast).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["SliceCache", "DEFAULT_BUDGET_FRACTION"]

DEFAULT_BUDGET_FRACTION = 0.25
"""Of the memory available when the command starts (:meth:`SliceCache.for_host`)."""


class _Entry:
    """One map, radius and sampling's slices: a row of ``values`` per image of the rows read."""

    def __init__(self, volume, rows: np.ndarray, n_samples: int, n_particles: int) -> None:
        self.volume = volume  # held, so that its id names it while the cache lives
        self.slot = np.full(n_particles, -1, dtype=np.int64)
        self.slot[rows] = np.arange(len(rows))
        self.values = torch.empty((len(rows), n_samples), dtype=torch.complex64)
        self.have = np.zeros(len(rows), dtype=bool)


class SliceCache:
    """Slices per image, per (map, radius, sampling), within ``budget_bytes``.

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
        self._entries: dict[tuple, _Entry | None] = {}
        self.hits = 0  # images handed back, for the log and the tests

    @classmethod
    def for_host(cls, fraction: float = DEFAULT_BUDGET_FRACTION) -> SliceCache:
        """A cache of ``fraction`` of the memory available now (none where that is unknown)."""
        from cryosplat.reconstruct.grid.memory_plan import available_memory_bytes

        available = available_memory_bytes()
        return cls(0 if available is None else int(fraction * available))

    def get(self, volume, radius: float, key, rows: np.ndarray) -> torch.Tensor | None:
        """The slices ``(n, M)`` of ``rows`` (particle rows), or None unless every one is kept."""
        entry = self._entries.get(_key(volume, radius, key))
        if entry is None or rows.max(initial=-1) >= len(entry.slot):
            return None
        slots = entry.slot[rows]
        if (slots < 0).any() or not entry.have[slots].all():
            return None
        self.hits += len(rows)
        return entry.values[torch.as_tensor(slots)]

    def put(
        self,
        volume,
        radius: float,
        key,
        rows: np.ndarray,
        slices: torch.Tensor,
        read: np.ndarray,
        n_particles: int,
    ) -> None:
        """Keep ``slices`` (n, M) of ``rows``; the first time for this map, radius and sampling,
        room is made for every row of ``read`` (the call's) if the budget allows, else never."""
        if slices.device.type != "cpu":
            return
        name = _key(volume, radius, key)
        if name not in self._entries:
            size = len(read) * slices.shape[1] * 8
            fits = self.used_bytes + size <= self.budget_bytes
            self._entries[name] = (
                _Entry(volume, read, slices.shape[1], n_particles) if fits else None
            )
            self.used_bytes += size if fits else 0
        entry = self._entries[name]
        if entry is None or entry.values.shape[1] != slices.shape[1]:
            return
        slots = entry.slot[rows]
        mine = slots >= 0
        entry.values[torch.as_tensor(slots[mine])] = slices[torch.as_tensor(mine)]
        entry.have[slots[mine]] = True


def _key(volume, radius: float, key) -> tuple:
    return (id(volume), float(radius), key)
