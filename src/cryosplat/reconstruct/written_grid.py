"""The grid a run's maps are written on: the images' own, also where their box is odd.

The engines work at even boxes. Images of an odd box ``D`` are used Fourier-cropped to ``D − 1``
(pixel ``p·D/(D − 1)``, the same extent; :func:`~cryosplat.particles.downsample.
downsample_particles`), and the maps are made on that grid. A user holds the particles, RELION's
maps and masks at box ``D`` and pixel ``p``: ``relion_reconstruct`` and ``relion_postprocess``
write and read them there, and an FSC against any of them is taken voxel by voxel. So every map a
run writes (``map.mrc``, the half maps, ``mask.mrc``, ``local_weight.mrc``,
``local_resolution.mrc``) is written back at ``D`` and ``p`` with header origin 0, Fourier-padded
by one voxel (:func:`~cryosplat.core.fourier.fourier_pad_volume`, the even grid's Nyquist planes
left out: the statistics gather nothing past ``(D − 1)/2 − 1/pad`` anyway), and read back by
:func:`map_at_box` where a command reads a run's half maps. Until round 2, session 70 the maps
were written at ``D − 1`` with the header origin that puts them where a map at ``D`` lies
(:func:`~cryosplat.core.conventions.cropped_map_origin_angstrom`): ChimeraX overlaid them, but a
voxel-by-voxel FSC against a box-``D`` map could not be taken. The pseudo-atoms keep that origin's
shift: it places them on the box-``D`` grid. Maps a user asked to be made smaller
(``--downsample``, ``--max-resolution``, or a memory bound) stay at the box they were made at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryosplat.core.conventions import source_box_to_write
from cryosplat.core.errors import InputError
from cryosplat.core.fourier import fourier_crop_volume, fourier_pad_volume
from cryosplat.io.mrc import write_map

__all__ = ["WrittenGrid", "map_at_box", "source_box_to_write"]


@dataclass(frozen=True)
class WrittenGrid:
    """Where the maps of a run made at ``box`` and ``pixel_size_angstrom`` are written.

    Attributes
    ----------
    box, pixel_size_angstrom : the working grid's.
    origin_angstrom : float
        Header origin (Å, each axis) of a map written on the working grid.
    source_box : int or None
        The images' odd box (``box + 1``): the maps are written back at it; None: at ``box``.
    """

    box: int
    pixel_size_angstrom: float
    origin_angstrom: float = 0.0
    source_box: int | None = None

    def __post_init__(self) -> None:
        if self.source_box is not None and source_box_to_write(self.source_box, self.box) is None:
            raise ValueError(
                f"maps are written back only at the odd box just above the working box "
                f"{self.box}, got {self.source_box}"
            )

    @property
    def written_box(self) -> int:
        """The box of the maps as written."""
        return self.box if self.source_box is None else self.source_box

    @property
    def written_pixel_angstrom(self) -> float:
        """The voxel size of the maps as written (Å)."""
        return self.pixel_size_angstrom * self.box / self.written_box

    def on_written_grid(self, volume: np.ndarray, bounded: bool = False) -> np.ndarray:
        """``volume`` (the working grid's) on the grid it is written on; ``bounded`` (a mask, a
        weight, a local resolution): kept within its own range, which the band-limited
        interpolation may overshoot by a little where it steps."""
        if self.source_box is None:
            return volume
        tensor = torch.as_tensor(np.asarray(volume), dtype=torch.float64)
        padded = fourier_pad_volume(tensor, self.source_box, drop_nyquist=True).numpy()
        if bounded:
            padded = np.clip(padded, float(np.min(volume)), float(np.max(volume)))
        return padded.astype(np.asarray(volume).dtype, copy=False)

    def write(self, path: Path, volume: np.ndarray, bounded: bool = False) -> None:
        """Write ``volume`` (the working grid's) as ``path``, on the written grid."""
        origin = self.origin_angstrom if self.source_box is None else 0.0
        write_map(path, self.on_written_grid(volume, bounded), self.written_pixel_angstrom, origin)


def map_at_box(volume: np.ndarray, box: int, path: Path) -> np.ndarray:
    """A run's map as read back (``path``) on the working grid of ``box``: as it is, or, where it
    was written back at the odd box above it (:class:`WrittenGrid`), Fourier-cropped to ``box``."""
    size = volume.shape[0]
    if size == box:
        return volume
    if source_box_to_write(size, box) is None:
        raise InputError(f"{path}: box {size}, the run's {box}")
    cropped = fourier_crop_volume(torch.as_tensor(volume, dtype=torch.float64), box)
    return cropped.numpy().astype(volume.dtype, copy=False)
