"""``cryosplat simulate``: a particle data set with known truth from atoms, a Gaussian model or a map."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = (
    "simulate particle images (RELION 3.1 STAR + MRC stacks + truth.mrc) from a PDB/mmCIF "
    "model, a saved Gaussian model (.npz) or an MRC map"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults are SimulationConfig's, filled in by run() (building the parser imports no torch).
    parser.add_argument(
        "model",
        type=Path,
        help="atomic model (.pdb/.cif), Gaussian model (.npz) or map (.mrc/.map)",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier simulation in the output folder (refused by default)",
    )
    parser.add_argument("-n", "--n-particles", type=int, required=True, help="number of particles")
    parser.add_argument(
        "--box",
        type=int,
        default=None,
        help="image size in pixels (required for atoms; default: the model's)",
    )
    parser.add_argument(
        "--pixel-size",
        type=float,
        default=None,
        help="pixel size in Å (required for atoms; default: the model's)",
    )
    parser.add_argument(
        "--snr",
        type=float,
        default=None,
        help="signal variance / noise variance over the box after the CTF ('inf' for no noise; "
        "default 0.01)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    views = parser.add_mutually_exclusive_group()
    views.add_argument(
        "--views",
        type=Path,
        default=None,
        help="take the view distribution from this STAR/.cs (default: uniform)",
    )
    views.add_argument(
        "--preferred-views",
        type=_preferred_views,
        action="append",
        default=None,
        metavar="FRACTION,DEGREES[,TILT,ROT]",
        help="preferred orientation: this share of the views within this many degrees of the "
        "map's z axis (RELION tilt), or of the view of RELION angles TILT, ROT; repeat it for "
        "several preferred views (shares summing to at most 1), the rest uniform; e.g. 0.8,20 "
        "or --preferred-views 0.45,12 --preferred-views 0.4,12,90,0 (top and side views)",
    )
    parser.add_argument(
        "--shift-sd",
        type=float,
        default=None,
        help="standard deviation of the particle origins, Å (default 0)",
    )
    parser.add_argument(
        "--defocus-min",
        type=float,
        default=None,
        help="smallest defocus, Å (as RELION and cryoSPARC; default 10000)",
    )
    parser.add_argument(
        "--defocus-max",
        type=float,
        default=None,
        help="largest defocus, Å (default 25000)",
    )
    parser.add_argument(
        "--astigmatism",
        type=float,
        default=None,
        help="largest |defocus U - V|, Å, random angle (default 0)",
    )
    parser.add_argument(
        "--ctf-table",
        type=Path,
        default=None,
        help="cryoDRGN ctf.pkl whose defocus rows are sampled instead of the range",
    )
    parser.add_argument(
        "--voltage",
        type=float,
        default=None,
        help="acceleration voltage, kV (default 300)",
    )
    parser.add_argument(
        "--cs",
        type=float,
        default=None,
        help="spherical aberration, mm (default 2.7)",
    )
    parser.add_argument(
        "--amplitude-contrast",
        type=float,
        default=None,
        help="amplitude contrast fraction (default 0.1)",
    )
    parser.add_argument(
        "--ctf-bfactor",
        type=float,
        default=None,
        help="CTF envelope B-factor, Å² (default 0)",
    )
    parser.add_argument(
        "--atom-bfactor",
        type=float,
        default=None,
        help="B-factor added to every atom of an atomic model, Å² (default 0)",
    )
    parser.add_argument(
        "--no-ctf",
        action="store_true",
        help="do not apply the CTF to the images (the STAR still lists one)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images made at once (default 128)",
    )
    parser.add_argument(
        "--images-per-stack",
        type=int,
        default=None,
        help="most images in one .mrcs file (default 10000)",
    )
    parser.add_argument(
        "--device", default=None, help="torch device: cpu, cuda or cuda:N (default cpu)"
    )
    parser.add_argument(
        "--projection",
        choices=("splat", "fourier"),
        default=None,
        help="atoms and Gaussian models: splat each Gaussian, or Fourier slices "
        "of the voxelised model (faster for big models; default splat). Maps always use "
        "Fourier slices",
    )
    parser.add_argument(
        "--backend",
        default=None,
        help="splatting backend: auto, reference or fast (default auto)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def _preferred_views(text: str):
    from cryosplat.simulate.views import PreferredViews

    try:
        return PreferredViews.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from cryosplat.core.progress import Progress
    from cryosplat.simulate.simulation import SimulationConfig, simulate

    def um(angstrom: float | None) -> float | None:
        return None if angstrom is None else angstrom * 1e-4

    given = {
        "box": args.box,
        "pixel_size_angstrom": args.pixel_size,
        "snr": args.snr,
        "seed": args.seed,
        "views": args.views,
        "preferred_views": None if args.preferred_views is None else tuple(args.preferred_views),
        "shift_sd_angstrom": args.shift_sd,
        "defocus_min_um": um(args.defocus_min),
        "defocus_max_um": um(args.defocus_max),
        "astigmatism_max_angstrom": args.astigmatism,
        "ctf_table": args.ctf_table,
        "voltage_kv": args.voltage,
        "cs_mm": args.cs,
        "amplitude_contrast": args.amplitude_contrast,
        "bfactor_angstrom2": args.ctf_bfactor,
        "bfactor_extra_angstrom2": args.atom_bfactor,
        "batch_size": args.batch_size,
        "images_per_stack": args.images_per_stack,
        "device": args.device,
        "projection": args.projection,
        "backend": args.backend,
    }
    config = SimulationConfig(
        n_particles=args.n_particles,
        apply_ctf=not args.no_ctf,
        **{k: v for k, v in given.items() if v is not None},
    )
    bars: list[Progress] = []  # started with the first images: no bar before an input error

    def progress(done: int, _total: int) -> None:
        if not bars:
            bars.append(Progress(args.n_particles, label="simulate"))
        bars[0].update(done)

    try:
        result = simulate(
            args.model,
            args.output,
            config,
            progress=None if args.quiet else progress,
            overwrite=args.overwrite,
        )
    finally:
        for bar in bars:
            bar.close()
    print(
        f"wrote {result.n_particles} particles ({result.box} px, "
        f"{result.pixel_size_angstrom:g} Å/px) in {len(result.stack_paths)} stack(s) to "
        f"{result.output_dir}"
    )
    print(f"  metadata: {result.star_path}")
    print(f"  truth map: {result.truth_path}")
    print(
        f"  signal variance {result.signal_variance:.4g}, noise s.d. {result.noise_sd:.4g} "
        f"(SNR {config.snr:g})"
    )
    return 0
