"""``local_resolution.mrc`` written for a run, and what its log, ``fsc.json`` and the summary say
of it (:mod:`cryosplat.validation.local_resolution` reads the windows)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cryosplat.reconstruct.run_folder import LOCAL_RESOLUTION_FILE, VIEW_FILE
from cryosplat.reconstruct.written_grid import WrittenGrid
from cryosplat.validation.local_resolution import local_resolution, window_radius_px

__all__ = ["write_local_resolution"]

log = logging.getLogger("cryosplat")


def write_local_resolution(
    folder: Path,
    halves: Sequence,
    region: tuple[np.ndarray, str],
    resolution_angstrom: float,
    grid: WrittenGrid,
) -> dict:
    """``local_resolution.mrc``: the FSC of ``halves`` (the map's, before their local weight, on
    ``grid``'s working grid) read in windows across the molecule (``region``: a mask and its
    name), the windows ``resolution_angstrom`` sets; its windows, for ``fsc.json``. The
    percentiles are of the windows that read a resolution; those that read none (their halves
    share nothing: solvent, or the molecule's faint edge) are counted apart. Written on
    ``grid``'s written grid, as the maps are."""
    pixel = grid.pixel_size_angstrom
    mask, mask_name = region
    maps = [torch.as_tensor(m).float() for m in halves]
    radius = window_radius_px(resolution_angstrom, pixel, maps[0].shape[0])
    local = local_resolution((maps[0], maps[1]), mask, pixel, radius)
    grid.write(folder / LOCAL_RESOLUTION_FILE, local.volume, bounded=True)
    low, median, high = local.percentiles(mask)
    none, windows = local.without_reading(mask)
    log.info(
        "local resolution: %.2f-%.2f Å (5th-95th percentile of the windows centred in %s, "
        "median %.2f Å): the map's halves' FSC at 0.143 in %d windows of radius "
        "%.1f Å, as relion_postprocess --locres reads half maps (finer than the cross-validated "
        "resolution where the halves share errors); local_resolution.mrc, which %s colours the "
        "map's surface by in ChimeraX%s",
        low,
        high,
        mask_name,
        median,
        len(local.centres_px),
        radius * pixel,
        VIEW_FILE,
        ""
        if not none
        else (
            f"; {none} of the {windows} windows there read no resolution (their halves share "
            "nothing: solvent, or the molecule's faint edge) and hold their box "
            f"({local.resolution_angstrom[local.no_reading][0]:.1f} Å) in the map"
        ),
    )
    return {
        "radius_px": local.radius_px,
        "percentiles_5_50_95_angstrom": [round(v, 3) for v in (low, median, high)],
        "windows_without_resolution": none,
        "centres_px": local.centres_px.tolist(),
        "resolution_angstrom": [round(float(v), 3) for v in local.resolution_angstrom],
    }
