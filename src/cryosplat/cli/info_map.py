"""``cryosplat info MAP``: a map's grid, placement and values (:mod:`cryosplat.io.map_info`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryosplat.io.map_info import MapSummary


def format_map(s: MapSummary) -> str:
    """The printed form of a map's summary, with what reads it next."""
    from cryosplat.core.conventions import file_origin_angstrom

    lines = [f"map:          {s.source}"]
    if s.voxel_size_angstrom > 0:
        extent = s.box * s.voxel_size_angstrom
        lines.append(f"box:          {s.box} voxels ({extent:.1f} Å a side)")
        lines.append(
            f"voxel size:   {s.voxel_size_angstrom:.4f} Å (Nyquist {2 * s.voxel_size_angstrom:.2f} Å)"
        )
        centre = s.origin_xyz_angstrom + file_origin_angstrom(s.box, s.voxel_size_angstrom)
        where = ", ".join(f"{c:.1f}" for c in centre)
        first = ", ".join(f"{c:.1f}" for c in s.origin_xyz_angstrom)
        lines.append(
            f"placed:       first voxel at ({first}) Å, centre voxel {s.box // 2} at ({where}) Å "
            "(x, y, z; as ChimeraX places it)"
        )
    else:
        lines.append(f"box:          {s.box} voxels")
        lines.append("voxel size:   none in the header (commands that read it take --angpix)")
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
    else:
        lines.append(
            "next:         cryosplat fsc REFERENCE MAP (--resample, --fit for another grid or "
            "frame); cryosplat sharpen MAP --resolution Å"
        )
    lines.append(
        "(a map, not particles: it holds as many sections as voxels a side; a stack of that many "
        "images of that box is read as particles when --poses and --ctf are given)"
        if s.source.lower().endswith(".mrc")
        else "(a map, not particles)"
    )
    return "\n".join(lines)
