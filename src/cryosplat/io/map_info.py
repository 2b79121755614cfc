"""A 3D map told from a particle stack, and summarised (``cryosplat info MAP``).

RELION writes particle stacks as ``.mrcs`` and maps as ``.mrc``; EMDB maps are ``.map``. A map
given where particles are expected (a run's ``map.mrc`` to ``reconstruct`` or ``info``) was read as
a stack of its sections, one "particle" per z plane, and the summary spoke of background, hot
pixels and noise levels of those planes. :func:`is_map_file` tells one from the other by its name
and shape (``.map``, or ``.mrc`` with as many sections as pixels a side); :func:`summarise_map`
reads what a user checks before comparing or sharpening a map: its grid, where its header places
it, its values, and whether it is a mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from cryosplat.core.errors import InputError
from cryosplat.io.mrc import read_map, read_map_origin_xyz, stack_header_info

__all__ = ["MAP_SUFFIXES", "MapSummary", "grid_text", "is_map_file", "summarise_map"]

# Files of these suffixes may hold a map; ``.mrcs`` never does (RELION's stacks).
MAP_SUFFIXES = (".mrc", ".map")
# A map whose values all lie within this of [0, 1], with voxels at both ends, is a mask. A mask
# resampled overshoots a little: a relion_mask_create mask of box 112 rescaled to box 56 by
# relion_image_handler --rescale_angpix lies in [-0.072, 1.080] (round 2, session 96).
MASK_TOLERANCE = 0.1


def grid_text(shape_zyx: tuple[int, ...]) -> str:
    """A map's box as messages name it: ``56``, or, not cubic, ``31 × 33 × 29 (x, y, z)``."""
    depth, rows, columns = shape_zyx
    return str(depth) if depth == rows == columns else f"{columns} × {rows} × {depth} (x, y, z)"


def is_map_file(path: str | Path) -> bool:
    """Whether ``path`` holds a 3D map: ``.map``, or ``.mrc`` whose sections number its side
    (``nz == ny == nx > 1``), or of several sections that are not square (no particle image is:
    a deposited map boxed around its model). A missing or unreadable file is not one (its reader
    says why)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MAP_SUFFIXES or not path.is_file():
        return False
    if suffix == ".map":
        return True
    try:
        header = stack_header_info(path)
    except InputError:  # whatever reads it next names the fault
        return False
    if header["nz"] <= 1:
        return False
    return header["nx"] == header["ny"] == header["nz"] or header["nx"] != header["ny"]


@dataclass(frozen=True)
class MapSummary:
    """What :func:`summarise_map` reads.

    Attributes
    ----------
    source : str
    shape_xyz : (int, int, int)
        Voxels along x, y and z (equal for a cubic map: :attr:`box`).
    voxel_size_angstrom : float
        0 where the header holds none.
    origin_xyz_angstrom : np.ndarray, shape (3,)
        Where the header places the first voxel (x, y, z).
    minimum, maximum, mean, sd : float
        The values.
    label : str
        The header's first label (the program that wrote it, for most).
    is_mask : bool
        Values within [0, 1] (to :data:`MASK_TOLERANCE`), some near each end.
    inside_share : float
        For a mask, the share of voxels above one half.
    """

    source: str
    shape_xyz: tuple[int, int, int]
    voxel_size_angstrom: float
    origin_xyz_angstrom: np.ndarray
    minimum: float
    maximum: float
    mean: float
    sd: float
    label: str
    is_mask: bool
    inside_share: float

    @property
    def box(self) -> int | None:
        """The side of a cubic map; None for one that is not cubic."""
        return self.shape_xyz[0] if len(set(self.shape_xyz)) == 1 else None


def summarise_map(path: str | Path) -> MapSummary:
    """Read a map's grid, placement and values (:class:`MapSummary`)."""
    volume, voxel = read_map(path, cubic=False)
    with mrcfile.open(path, header_only=True, permissive=True) as m:
        count = int(m.header.nlabl)
        label = m.header.label[0].decode("ascii", "replace").strip() if count else ""
    low, high = float(volume.min()), float(volume.max())
    is_mask = (
        low >= -MASK_TOLERANCE
        and high <= 1 + MASK_TOLERANCE
        and high > 1 - MASK_TOLERANCE
        and low < MASK_TOLERANCE
    )
    return MapSummary(
        source=str(path),
        shape_xyz=(volume.shape[2], volume.shape[1], volume.shape[0]),
        voxel_size_angstrom=voxel,
        origin_xyz_angstrom=read_map_origin_xyz(path),
        minimum=low,
        maximum=high,
        mean=float(volume.mean(dtype=np.float64)),
        sd=float(volume.std(dtype=np.float64)),
        label=label,
        is_mask=is_mask,
        inside_share=float((volume > 0.5).mean()),
    )
