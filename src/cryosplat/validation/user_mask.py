"""A mask the user gives for the resolution, as ``relion_postprocess --mask`` takes one.

A RELION or cryoSPARC user holds a soft solvent mask of the refinement (values 0 outside the
molecule, 1 inside, a soft edge between) and reads resolutions within it. Given one
(``reconstruct --mask``), the cross-validated resolution is read within it (times the soft
sphere of every reading), with that mask's own FSC noise
(:func:`~cryosplat.validation.crossval.tighter_mask_noise_scale`) and the lower bound past its
own cut, as the automatic mask's reading is (:mod:`cryosplat.validation.mask_choice`), but on
its own scale: an estimate of the map's FSC with the truth *within the mask*, not carried back to
the sphere's. The soft sphere's reading is kept beside it.

The mask is taken at the map's box and voxel size (a mask made from ``map.mrc``), or at the
particles' box and pixel size (the refinement's mask) when the run works at a smaller box
(``--downsample``, ``--max-resolution``, an odd box): it is then Fourier-cropped as the images
are (:func:`cryosplat.core.fourier.fourier_crop_volume`), the same physical extent about voxel
``D // 2``, and clipped to [0, 1]. A mask of any other grid (a refinement of the unbinned
particles, a larger box, a box that is not cubic) whose header holds its voxel size is resampled
onto the map's, centre voxel on centre voxel as RELION places its maps
(:func:`cryosplat.core.resample.resample_volume`: the same physical extent about the molecule's
centre, band-limited to the coarser grid, zero beyond the mask's box), clipped to [0, 1], and
named (:attr:`FSCMask.note`). A mask of the map's box whose voxel size differs is refused: that is
more often a wrong header than another grid.

A mask in the right grid can still lie in the wrong place (made in another frame):
:func:`coverage_warning` names one whose mean over the molecule's core is under
:data:`MIN_CORE_COVERAGE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryosplat.core.errors import InputError
from cryosplat.core.fourier import fourier_crop_volume
from cryosplat.core.resample import resample_volume
from cryosplat.io.map_info import MASK_TOLERANCE, grid_text
from cryosplat.io.mrc import read_map
from cryosplat.validation.masks import molecule_core

__all__ = ["FSCMask", "MIN_CORE_COVERAGE", "core_coverage", "coverage_warning", "load_fsc_mask"]

# Voxel sizes that differ by more than this share are different grids.
VOXEL_TOLERANCE = 0.01
# A mask holding fewer voxels above one half than this share of the box holds nothing.
MIN_INSIDE_SHARE = 1e-4
# A given mask whose mean over the molecule's core is under this is named: a focused mask, or one
# placed wrong (made in another frame, or on a grid placed otherwise than centre on centre).
MIN_CORE_COVERAGE = 0.5


@dataclass(frozen=True)
class FSCMask:
    """A user's mask on the map's grid.

    Attributes
    ----------
    volume : np.ndarray, shape (D, D, D), float64 in [0, 1]
    name : str
        Where it came from (the file), for the report.
    note : str or None
        How it was put on the map's grid, where it was resampled from another (for the log).
    """

    volume: np.ndarray
    name: str
    note: str | None = None


def load_fsc_mask(
    path: str | Path | None,
    box: int,
    pixel_size_angstrom: float,
    source_box: int | None = None,
    source_pixel_size_angstrom: float | None = None,
) -> FSCMask | None:
    """Read and check a user's mask for the map of ``box`` voxels of ``pixel_size_angstrom``.

    Parameters
    ----------
    path : str, Path or None
        MRC file; None: no mask (returns None).
    box, pixel_size_angstrom : the map's grid.
    source_box, source_pixel_size_angstrom : optional
        The particles' own box and pixel size, where the run works at a smaller box: a mask of
        that box is Fourier-cropped to ``box``. A mask of any other box is resampled from the
        voxel size in its header (module docstring).

    Raises
    ------
    InputError
        The file is not a 3D map; its box is another grid's and its header holds no voxel
        size; its box is the map's (or the particles') and its voxel size is not; its values are
        not a mask's (outside [0, 1], or nothing inside, also once on the map's grid).
    """
    if path is None:
        return None
    path = Path(path)
    volume, voxel = read_map(path, cubic=False)
    # Its side; None where it is not cubic (resampled, as any other grid's mask).
    size = volume.shape[0] if len(set(volume.shape)) == 1 else None
    named = grid_text(volume.shape)
    grids = {box: pixel_size_angstrom}
    if source_box is not None and source_pixel_size_angstrom is not None:
        grids.setdefault(source_box, source_pixel_size_angstrom)
    if size not in grids and not voxel > 0:
        raise InputError(
            f"{path}: the mask's box is {named}, the map's {box}"
            + (f" (the particles' {source_box})" if source_box not in (None, box) else "")
            + ", and its header holds no voxel size to put it on the map's grid: set it (e.g. "
            "relion_image_handler --angpix), or make the mask on the map's grid (from map.mrc)"
        )
    if size in grids:
        expected = grids[size]
        if voxel > 0 and abs(voxel - expected) > VOXEL_TOLERANCE * expected:
            raise InputError(
                f"{path}: the mask's voxel size is {voxel:.4g} Å, the map's grid of box {size} "
                f"has {expected:.4g} Å: a mask of another grid (set its header's voxel size if "
                "it is only wrong there, e.g. relion_image_handler --angpix)"
            )
    low, high = float(volume.min()), float(volume.max())
    if low < -MASK_TOLERANCE or high > 1.0 + MASK_TOLERANCE:  # a resampled mask's ringing
        raise InputError(
            f"{path}: holds values from {low:.4g} to {high:.4g}; a mask holds 0 outside the "
            "molecule, 1 inside and a soft edge between (is it a map rather than a mask?)"
        )
    if float((volume > 0.5).mean()) < MIN_INSIDE_SHARE:
        raise InputError(f"{path}: the mask holds nothing (no voxel above 0.5)")
    note = None
    if size == box:  # also an odd box, which no crop makes
        on_grid = torch.as_tensor(volume, dtype=torch.float64)
    elif size in grids:
        on_grid = fourier_crop_volume(torch.as_tensor(volume, dtype=torch.float64), box)
    else:
        on_grid = torch.as_tensor(resample_volume(volume, voxel, box, pixel_size_angstrom))
        note = (
            f"mask {path}: box {named} of {voxel:.4g} Å resampled onto the map's grid (box {box} "
            f"of {pixel_size_angstrom:.4g} Å), centre voxel on centre voxel"
        )
    on_grid = on_grid.to(torch.float64).clamp(0.0, 1.0)
    if float((on_grid > 0.5).double().mean()) < MIN_INSIDE_SHARE:
        raise InputError(
            f"{path}: the mask holds nothing on the map's grid (box {box} of "
            f"{pixel_size_angstrom:.4g} Å): its molecule lies outside the map's box"
        )
    return FSCMask(on_grid.numpy(), str(path), note)


def core_coverage(mask: np.ndarray, volume: np.ndarray, pixel_size_angstrom: float) -> float | None:
    """The mean of ``mask`` over the molecule's core in ``volume`` (the map low-passed to 15 Å,
    at or above a tenth of its maximum: :func:`~cryosplat.validation.masks.molecule_core`): 1 for
    a mask over the whole molecule; None where the map holds no core."""
    core = molecule_core(volume, pixel_size_angstrom)
    if core is None or not core.any():
        return None
    return float(np.asarray(mask, dtype=np.float64)[core].mean())


def coverage_warning(mask: FSCMask, volume: np.ndarray, pixel_size_angstrom: float) -> str | None:
    """A warning where ``mask`` covers less than :data:`MIN_CORE_COVERAGE` of the molecule's
    core in ``volume`` (:func:`core_coverage`), else None: the resolution read within it is then
    a region's (a focused mask) or the solvent's (a mask placed wrong)."""
    share = core_coverage(mask.volume, volume, pixel_size_angstrom)
    if share is None or share >= MIN_CORE_COVERAGE:
        return None
    return (
        f"the given mask {mask.name} covers {100 * share:.0f} % of the molecule (its core: the "
        "map low-passed to 15 Å, above a tenth of its maximum): the resolution is read within "
        "it, a region's if the mask was meant to focus on one, the solvent's if it lies "
        "elsewhere (made in another frame): look at it over the map in ChimeraX"
    )
