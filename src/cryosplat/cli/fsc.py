"""``cryosplat fsc``: maps compared with a reference by their FSC
(:mod:`cryosplat.validation.map_comparison`), as ``relion_image_handler --fsc`` or
``cryodrgn_utils fsc`` do, several maps at once with one plot."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = (
    "FSC of maps with a reference map (a truth, another program's map, or the other half map): "
    "the 0.5 and 0.143 crossings, the curves as JSON and an SVG plot"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "reference",
        type=Path,
        help="the map (.mrc/.map) or atomic model (.pdb/.cif) the others are compared with",
    )
    parser.add_argument(
        "maps",
        type=Path,
        nargs="+",
        help="maps (.mrc/.map) on the reference's grid (or any, with --resample), reconstruct "
        "run folders (their map.mrc), or atomic models (.pdb/.cif: their density drawn on the "
        "first map's grid, in its frame)",
    )
    masks = parser.add_mutually_exclusive_group()
    masks.add_argument(
        "--mask",
        type=Path,
        default=None,
        help="multiply every map by this mask (.mrc, values 0-1) first, each FSC corrected for "
        "the mask's own correlation by phase randomisation as relion_postprocess does (default: a "
        "soft sphere 7 voxels inside the box's edge)",
    )
    masks.add_argument("--no-mask", action="store_true", help="compare the whole boxes, unmasked")
    parser.add_argument(
        "--angpix",
        type=float,
        default=None,
        help="voxel size (Å) of every map (default: the maps' headers, which must agree)",
    )
    parser.add_argument(
        "--resample",
        action="store_true",
        help="resample each map of another box or voxel size (its header's), or not cubic (a "
        "deposited map boxed around its model), onto the reference's grid, centre voxel on "
        "centre voxel as RELION places a map, low-passed to the coarser Nyquist (default: refuse "
        "it). Maps in different frames (a deposited map with its own origin) need --fit too",
    )
    parser.add_argument(
        "--fit",
        action="store_true",
        help="turn and move each map onto the reference first (a rigid-body fit, as ChimeraX "
        "fitmap: a global search, then a local one; ten seconds or more a map), for maps in "
        "different frames, e.g. a deposited map; names a map whose mirror image fits better. "
        "Atomic models are not fitted",
    )
    parser.add_argument(
        "--centre-models",
        action="store_true",
        help="place each atomic model's centre of mass at the box centre, as cryosplat simulate "
        "does (default: the model's own coordinates, in the frame of the first map)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="write the curves here (.json) and their plot beside it (.svg); with --fit, each "
        "map fitted too (OUTPUT_fitted_<i>_<map>.mrc, on the reference's grid and origin, to "
        "overlay it in ChimeraX)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the outputs if they exist"
    )


def _map_file(path: Path) -> Path:
    """A map file, or a reconstruct run folder's map."""
    from cryosplat.core.errors import InputError
    from cryosplat.reconstruct.run_folder import MAP_FILE

    if not path.is_dir():
        return path
    if not (path / MAP_FILE).is_file():
        raise InputError(f"{path}: a folder without {MAP_FILE} (not a complete reconstruct run)")
    return path / MAP_FILE


def _fitted(args: argparse.Namespace, paths: list[Path]) -> list[bool]:
    """Which inputs ``--fit`` moves: every map after the reference, no atomic model."""
    from cryosplat.model.atoms import ATOM_SUFFIXES

    return [
        args.fit and i > 0 and p.suffix.lower() not in ATOM_SUFFIXES for i, p in enumerate(paths)
    ]


def _outputs(args: argparse.Namespace, paths: list[Path], fitted: list[bool]) -> list[Path]:
    """The files ``-o`` names: the curves, their plot and each map ``fitted`` marks
    (``OUT_fitted_<i>_<map>.mrc`` on the reference's grid); refused where one exists."""
    from cryosplat.core.errors import InputError

    if args.output is None:
        return []
    if args.output.suffix.lower() != ".json":
        raise InputError(f"{args.output}: the curves are written as JSON; name it *.json")
    outputs = [args.output, args.output.with_suffix(".svg")]
    outputs += [
        args.output.with_name(f"{args.output.stem}_fitted_{i}_{p.stem}.mrc")
        for i, (p, moved) in enumerate(zip(paths, fitted, strict=True))
        if moved
    ]
    for out in outputs:
        if out.exists() and not args.overwrite:
            raise InputError(f"{out} exists; --overwrite replaces it")
    return outputs


def run(args: argparse.Namespace) -> int:
    from cryosplat.core.errors import InputError
    from cryosplat.io.mrc import write_map
    from cryosplat.io.svg_plot import write_svg
    from cryosplat.reconstruct.half_map_report import format_resolution
    from cryosplat.reconstruct.run_folder import write_json_atomic
    from cryosplat.validation.map_comparison import (
        compare_maps,
        comparison_notes,
        read_inputs_on_one_grid,
    )
    from cryosplat.validation.map_fit import fit_onto_reference
    from cryosplat.validation.masks import spherical_mask
    from cryosplat.validation.user_mask import coverage_warning, load_fsc_mask

    paths = [_map_file(args.reference)] + [_map_file(p) for p in args.maps]
    fitted = _fitted(args, paths)
    outputs = _outputs(args, paths, fitted)
    grid = read_inputs_on_one_grid(paths, args.angpix, args.centre_models, args.resample)
    volumes, pixel = grid.volumes, grid.pixel_size_angstrom
    box = volumes[0].shape[0]
    for note in grid.resampled + (() if args.fit else grid.apart):  # a fit places them anyway
        print(note)
    fits = None
    if args.fit:
        moved = fit_onto_reference(
            volumes,
            [str(p) for p in paths],
            fitted,
            pixel,
            progress=lambda line: print(line, flush=True),
        )
        volumes, fits = moved.volumes, moved.fits
        for note in moved.notes:
            print(note)
    if args.no_mask:
        mask, mask_name = None, "no mask"
    elif args.mask is not None:
        loaded = load_fsc_mask(args.mask, box, pixel)
        mask = loaded.volume
        if loaded.note is not None:
            print(loaded.note)
        if (warning := coverage_warning(loaded, volumes[0], pixel)) is not None:
            print(f"warning: {warning}")  # the reference's molecule
        mask_name = f"mask {args.mask}, corrected by phase randomisation (as relion_postprocess)"
    else:
        try:
            mask, mask_name = spherical_mask(box), "soft spherical mask"
        except ValueError:
            raise InputError(
                f"{paths[0]}: box {box} is too small for the default soft spherical mask (its "
                "edge 7 voxels inside the box's): pass --no-mask, or --mask"
            ) from None
    comparison = compare_maps(
        volumes[0],
        [(str(p), v) for p, v in zip(paths[1:], volumes[1:], strict=True)],
        pixel,
        mask,
        (str(paths[0]), mask_name),
        correct_mask=args.mask is not None,
    )
    print(f"FSC with {paths[0]} (box {box}, {pixel:g} Å/voxel, {mask_name}):")
    width = max(len(m.name) for m in comparison.maps)
    print(f"  {'map':{width}s}  {'FSC 0.5':>10s}  {'FSC 0.143':>10s}")
    for m in comparison.maps:
        print(
            f"  {m.name:{width}s}  "
            f"{format_resolution(m.resolution_angstrom(0.5, pixel), explain=False):>10s}  "
            f"{format_resolution(m.resolution_angstrom(0.143, pixel), explain=False):>10s}"
        )
    print(
        "  (against a truth or an independent map read 0.5; between two half maps of "
        "independent halves, 0.143)"
    )
    for note in comparison_notes(comparison):
        print(f"warning: {note}")
    if not outputs:
        return 0
    data = comparison.to_json()
    if fits is not None:
        for entry, fit in zip(data["maps"], fits[1:], strict=True):
            entry["fit"] = None if fit is None else fit.to_json()
        written = [v for v, f in zip(volumes, fits, strict=True) if f is not None]
        for path, volume in zip(outputs[2:], written, strict=True):
            write_map(path, volume, pixel, grid.origin_xyz_angstrom)
            print(f"fitted map: {path}")
    write_json_atomic(outputs[0], data)
    write_svg(outputs[1], comparison.plot())
    print(f"curves: {outputs[0]}; plot: {outputs[1]}")
    return 0
