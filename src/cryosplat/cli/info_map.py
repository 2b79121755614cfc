"""``cryosplat info MAP``: a map's grid, placement and values (:mod:`cryosplat.io.map_info`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryosplat.io.map_info import MapSummary


def format_map(s: MapSummary) -> str:
    """The printed form of a map's summary, with what reads it next."""
    from cryosplat.core.conventions import centre_voxel_xyz_angstrom
    from cryosplat.io.map_info import grid_text

    lines = [f"map:          {s.source}"]
    sizes = s.shape_xyz
    grid = grid_text(sizes[::-1])
    if s.voxel_size_angstrom > 0:
        extents = [n * s.voxel_size_angstrom for n in sizes]
        extent = (
            f"{extents[0]:.1f} Å a side"
            if s.box is not None
            else " × ".join(f"{e:.1f}" for e in extents) + " Å"
        )
        lines.append(f"box:          {grid} voxels ({extent})")
        lines.append(
            f"voxel size:   {s.voxel_size_angstrom:.4f} Å (Nyquist {2 * s.voxel_size_angstrom:.2f} Å)"
        )
        centre = centre_voxel_xyz_angstrom(
            s.origin_xyz_angstrom, sizes[::-1], s.voxel_size_angstrom
        )
        where = ", ".join(f"{c:.1f}" for c in centre)
        first = ", ".join(f"{c:.1f}" for c in s.origin_xyz_angstrom)
        index = (
            f"{s.box // 2}" if s.box is not None else f"({', '.join(str(n // 2) for n in sizes)})"
        )
        lines.append(
            f"placed:       first voxel at ({first}) Å, centre voxel {index} at ({where}) Å "
            "(x, y, z; as ChimeraX places it)"
        )
    else:
        lines.append(f"box:          {grid} voxels")
        lines.append("voxel size:   none in the header (commands that read it take --angpix)")
    if s.box is None:
        lines.append(
            "not cubic:    cryosplat fsc REFERENCE THIS --resample puts it on a cubic map's grid "
            "(centre on centre; --fit for another frame); sharpen takes cubic maps"
        )
    lines.append(
        f"values:       {s.minimum:.4g} to {s.maximum:.4g}, mean {s.mean:.4g}, sd {s.sd:.4g}"
    )
    if s.label:
        lines.append(f"written by:   {s.label}")
    if s.is_mask:
        lines.append(
            f"a mask:       values 0-1, {100 * s.inside_share:.1f} % of the voxels inside (above "
            "0.5): for cryosplat fsc --mask, sharpen --mask or reconstruct --mask"
        )
    elif s.box is not None:
        lines.append(
            "next:         cryosplat fsc REFERENCE MAP (--resample, --fit for another grid or "
            "frame); cryosplat sharpen MAP --resolution Å"
        )
    lines.append(
        "(a map, not particles: it holds as many sections as voxels a side; a stack of that many "
        "images of that box is read as particles when --poses and --ctf are given)"
        if s.source.lower().endswith(".mrc") and s.box is not None
        else "(a map, not particles)"
    )
    return "\n".join(lines)
