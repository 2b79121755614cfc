"""``cryosplat sharpen``: a map's fall-off read from a Guinier plot and taken out, low-passed at its
resolution (as ``relion_postprocess --auto_bfac``; :mod:`cryosplat.validation.sharpening`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = (
    "sharpen a map for model building: its B-factor from a Guinier plot (or given) taken out, "
    "low-passed at its resolution (as relion_postprocess)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        type=Path,
        help="a complete reconstruct run folder (its map.mrc, resolution and mask.mrc), or a map "
        "(.mrc/.map, with --resolution)",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="sharpened map (.mrc)")
    parser.add_argument(
        "--resolution",
        type=float,
        default=None,
        help="the map's resolution (Å): the Guinier band's fine end and the low-pass (default: "
        "the run's reported resolution)",
    )
    parser.add_argument(
        "--bfactor",
        type=float,
        default=None,
        help="B-factor to apply (Å², RELION's sign: negative sharpens; default: minus the "
        "Guinier fit's)",
    )
    parser.add_argument(
        "--low-resolution",
        type=float,
        default=None,
        help="the Guinier band's coarse end (Å; default 10, as relion_postprocess)",
    )
    parser.add_argument(
        "--mask",
        type=Path,
        default=None,
        help="fit the B-factor within this mask (default: the run's mask.mrc; none for a map)",
    )
    parser.add_argument(
        "--mtf",
        type=Path,
        default=None,
        help="divide the map by this detector MTF first (a RELION MTF STAR file, as "
        "relion_postprocess --mtf)",
    )
    parser.add_argument(
        "--mtf-angpix",
        type=float,
        default=None,
        help="the raw micrographs' pixel size (Å) the MTF's frequencies refer to (default: the "
        "map's, as relion_postprocess --mtf_angpix)",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="also write the map filtered locally (OUTPUT_local.mrc): each voxel sharpened by the "
        "same B-factor and low-passed at its local resolution (the run's local_resolution.mrc), "
        "as relion_postprocess --locres's filtered map, but never coarser than the map's "
        "resolution",
    )
    parser.add_argument(
        "--local-resolution",
        type=Path,
        default=None,
        metavar="MAP",
        help="the local resolution map (Å per voxel) --local filters by (default: the run's "
        "local_resolution.mrc; needed for a map)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the output if it exists")


def _run_inputs(folder: Path) -> tuple[Path, float | None, Path | None, Path | None]:
    """The map, reported resolution, automatic mask and local resolution map of a complete run
    folder."""
    from cryosplat.reconstruct.run_folder import (
        LOCAL_RESOLUTION_FILE,
        MAP_FILE,
        read_complete_run,
    )

    _, resolution = read_complete_run(folder, "sharpen reads a complete run (or give a map)")
    mask, local = folder / "mask.mrc", folder / LOCAL_RESOLUTION_FILE
    return (
        folder / MAP_FILE,
        resolution,
        mask if mask.is_file() else None,
        local if local.is_file() else None,
    )


def local_output(output: Path) -> Path:
    """Where ``--local`` writes the map filtered locally, beside ``output``."""
    return output.with_name(output.stem + "_local.mrc")


def run(args: argparse.Namespace) -> int:
    from cryosplat.core.errors import InputError
    from cryosplat.io.mrc import read_map, read_map_origin, write_map
    from cryosplat.io.mtf_star import read_mtf_star
    from cryosplat.io.svg_plot import write_svg
    from cryosplat.validation.sharpening import (
        GUINIER_LOW_RESOLUTION_ANGSTROM,
        divide_by_mtf,
        guinier_fit,
        guinier_plot,
        sharpen,
    )
    from cryosplat.validation.user_mask import load_fsc_mask

    if not args.source.exists():
        raise InputError(f"{args.source}: not found (a reconstruct run folder or a map)")
    if args.source.is_dir():
        map_path, resolution, mask_path, local_path = _run_inputs(args.source)
    else:
        map_path, resolution, mask_path, local_path = args.source, None, None, None
    local = args.local or args.local_resolution is not None
    local_path = args.local_resolution if args.local_resolution is not None else local_path
    if local and local_path is None:
        raise InputError(
            f"{args.source}: --local filters by a local resolution map: give --local-resolution "
            "MAP (a run folder holds local_resolution.mrc)"
        )
    resolution = args.resolution if args.resolution is not None else resolution
    if resolution is None or not resolution > 0:
        raise InputError(
            f"{args.source}: no resolution to sharpen to; give --resolution (Å)"
            if resolution is None
            else f"--resolution must be positive, got {resolution}"
        )
    if args.output.resolve() == map_path.resolve():
        raise InputError(f"{args.output} is the map being sharpened; write the result elsewhere")
    for out in (args.output, local_output(args.output)) if local else (args.output,):
        if out.exists() and not args.overwrite:
            raise InputError(f"{out} exists; --overwrite replaces it")
    if args.mtf_angpix is not None and args.mtf is None:
        raise InputError("--mtf-angpix needs --mtf (the detector's MTF STAR file)")
    if args.mtf_angpix is not None and not args.mtf_angpix > 0:
        raise InputError(f"--mtf-angpix must be positive, got {args.mtf_angpix}")
    mtf = None if args.mtf is None else read_mtf_star(args.mtf)
    volume, pixel = read_map(map_path)
    if mtf is not None:
        detector_pixel = pixel if args.mtf_angpix is None else args.mtf_angpix
        volume = divide_by_mtf(volume, pixel, mtf, detector_pixel)
        whose = "" if args.mtf_angpix is not None else ", the map's: --mtf-angpix sets it"
        print(
            f"divided by the MTF in {args.mtf} (detector pixel {detector_pixel:g} Å{whose}; "
            f"the MTF at the map's Nyquist {float(mtf.at(0.5 * detector_pixel / pixel)):.3f})"
        )
    local_map = None if not local else _read_local(local_path, volume, pixel)
    mask_path = args.mask if args.mask is not None else mask_path
    low = GUINIER_LOW_RESOLUTION_ANGSTROM if args.low_resolution is None else args.low_resolution
    fit, mask = None, None
    if mask_path is not None:  # checked as every command's mask; another grid's resampled
        loaded = load_fsc_mask(mask_path, volume.shape[0], pixel)
        mask = loaded.volume.astype("float32")
        if loaded.note is not None:
            print(loaded.note)
    fitted = volume if mask is None else volume * mask
    if args.bfactor is None:
        try:
            fit = guinier_fit(fitted, pixel, resolution, low)
        except ValueError as exc:
            raise InputError(f"{map_path}: {exc} (--bfactor B)") from None
        apply = -fit.bfactor_angstrom2
        print(
            f"Guinier fit {fit.low_resolution_angstrom:g}-{fit.high_resolution_angstrom:.2f} Å "
            f"({fit.shells} shells{', within ' + str(mask_path) if mask_path else ''}): the map's "
            f"B-factor {fit.bfactor_angstrom2:.1f} Å², correlation {fit.correlation:.3f}"
        )
    else:
        apply = args.bfactor
    sharpened = sharpen(volume, pixel, apply, resolution)
    origin = read_map_origin(map_path)
    write_map(args.output, sharpened, pixel, origin)
    plot = args.output.with_name(args.output.stem + "_guinier.svg")
    shown = sharpened if mask is None else sharpened * mask
    write_svg(plot, guinier_plot(fitted, shown, pixel, fit))
    print(
        f"sharpened by B {apply:+.1f} Å², low-passed at {resolution:.2f} Å: {args.output} "
        f"({pixel:g} Å/voxel); Guinier plot {plot}"
    )
    if local_map is not None:
        from cryosplat.validation.local_filter import local_filter

        out = local_output(args.output)
        filtered = local_filter(volume, pixel, local_map, apply, coarsest_angstrom=resolution)
        write_map(out, filtered, pixel, origin)
        print(
            f"filtered locally by {local_path} ({_local_summary(local_map, mask)}), sharpened by "
            f"the same B: {out}"
        )
    return 0


def _read_local(local_path: Path, volume, pixel: float):
    """The local resolution map at ``local_path``, on the map's grid (else an input error)."""
    import numpy as np

    from cryosplat.core.errors import InputError
    from cryosplat.io.mrc import read_map
    from cryosplat.validation.local_filter import checked_local_resolution

    local, local_pixel = read_map(local_path)
    if local.shape != volume.shape or not np.isclose(local_pixel, pixel, rtol=1e-3):
        raise InputError(
            f"{local_path}: box {local.shape[0]} of {local_pixel:g} Å, the map's "
            f"{volume.shape[0]} of {pixel:g} Å"
        )
    try:
        return checked_local_resolution(local, volume.shape)
    except ValueError as exc:
        raise InputError(f"{local_path}: {exc}") from None


def _local_summary(local, mask) -> str:
    """The local resolutions' 5th, 50th and 95th percentiles within ``mask`` (or the box)."""
    import numpy as np

    within = local if mask is None else local[mask > 0.5]
    where = "of the box" if within.size in (0, local.size) else "within the mask"
    low, median, high = np.percentile(within if within.size else local, [5, 50, 95])
    return f"{low:.2f}-{high:.2f} Å, 5th-95th percentile {where}, median {median:.2f} Å"
