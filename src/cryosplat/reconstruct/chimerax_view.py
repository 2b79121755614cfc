"""``chimerax.cxc``: a ChimeraX command script in a run folder that shows its map as a surface at
the molecule's level, coloured by its local resolution.

ChimeraX runs a command script in the script's own folder, so the script names the run's files
without a path and the folder can be moved or copied whole: ``chimerax chimerax.cxc`` in the run
folder, or File > Open of the script, opens ``map.mrc`` (voxel size and origin in its header,
:mod:`cryosplat.io.mrc`), draws its surface at :func:`surface_level` and colours it by
``local_resolution.mrc`` from blue (the finest 5th percentile of the windows in the molecule) to
red (the coarsest 95th), as ``color sample`` does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from cryosplat.io.mrc import read_map
from cryosplat.reconstruct.run_folder import LOCAL_RESOLUTION_FILE, MAP_FILE, VIEW_FILE
from cryosplat.validation.masks import molecule_core

__all__ = [
    "LOCAL_RESOLUTION_PALETTE",
    "surface_level",
    "write_view_script",
    "write_run_view",
]

log = logging.getLogger("cryosplat")

LOCAL_RESOLUTION_PALETTE = "blue:cyan:green:yellow:red"
"""Finest to coarsest (ChimeraX colour names, low end of ``range`` first)."""
TIED_EXCESS = 1.5
"""Where a level's surface would enclose this many times the core's voxels, they share its value."""


def surface_level(volume: ArrayLike, pixel_size_angstrom: float) -> float:
    """The map value whose surface encloses as many voxels as the molecule's core
    (:func:`~cryosplat.validation.masks.molecule_core`, the part of the automatic mask before it
    is dilated): the level a user would otherwise find by hand, on the map's own scale.

    Parameters
    ----------
    volume : array-like, shape (D, D, D)
        The map as written.
    pixel_size_angstrom : float

    Returns
    -------
    float: the map's ``n``-th largest value, ``n`` the core's voxels; where that value is shared
    by many more voxels (a solvent set to one value, as a masked map's), halfway from it to the
    next larger value. For a map with no positive low-passed maximum, its mean plus three
    standard deviations.
    """
    v = np.asarray(volume, dtype=np.float64)
    if v.ndim != 3 or v.size == 0:
        raise ValueError(f"volume must be a 3-D map, got shape {v.shape}")
    core = molecule_core(v, pixel_size_angstrom)
    n = 0 if core is None else int(core.sum())
    if n == 0:
        return float(v.mean() + 3.0 * v.std())
    flat = v.ravel()
    level = float(np.partition(flat, flat.size - n)[flat.size - n])
    if (flat >= level).sum() > TIED_EXCESS * n:
        above = flat[flat > level]
        if above.size:
            level = 0.5 * (level + float(above.min()))
    return level


def write_view_script(
    folder: Path,
    volume: ArrayLike,
    pixel_size_angstrom: float,
    local_percentiles_angstrom: tuple[float, float] | None,
) -> tuple[Path, float]:
    """Write ``folder / VIEW_FILE`` for the map ``volume`` written there as ``MAP_FILE``.

    ``local_percentiles_angstrom``: the 5th and 95th percentiles of the local resolution in the
    molecule (Å), the colour range; None (no window read a resolution) leaves the surface
    uncoloured. Returns the script's path and the surface's level.
    """
    level = surface_level(volume, pixel_size_angstrom)
    lines = [
        f"# cryosplat reconstruct: run in ChimeraX (`chimerax {VIEW_FILE}` in this folder, or",
        "# File > Open), which reads the file names below from this script's folder.",
        f"open {MAP_FILE}",
        f"volume #1 style surface level {level:.6g}",
    ]
    if local_percentiles_angstrom is not None:
        low, high = (float(x) for x in local_percentiles_angstrom)
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
            raise ValueError(
                f"local_percentiles_angstrom must be two finite resolutions, finest first, got "
                f"{local_percentiles_angstrom}"
            )
        high = max(high, low + 0.01)  # a range of one value colours nothing
        lines += [
            f"open {LOCAL_RESOLUTION_FILE}",
            "volume #2 hide",
            f"color sample #1 map #2 palette {LOCAL_RESOLUTION_PALETTE} range {low:.2f},{high:.2f}",
        ]
    lines.append("view")
    path = folder / VIEW_FILE
    path.write_text("\n".join(lines) + "\n")
    return path, level


def write_run_view(folder: Path, local_percentiles_angstrom: Sequence[float]) -> float:
    """:func:`write_view_script` for the run folder's ``map.mrc`` as written (its box and voxel),
    logged; ``local_percentiles_angstrom``: the 5th, 50th and 95th percentiles of its local
    resolution (non-finite where no window read one: the surface is then uncoloured). Returns the
    surface's level."""
    low, _, high = local_percentiles_angstrom
    volume, voxel = read_map(folder / MAP_FILE)
    colours = (low, high) if np.isfinite([low, high]).all() else None
    path, level = write_view_script(folder, volume, voxel, colours)
    log.info(
        "ChimeraX: %s shows the map's surface at the molecule's level (%.4g)%s",
        path.name,
        level,
        "" if colours is None else ", coloured by its local resolution",
    )
    return level
