"""``cryosplat simulate``: a particle data set with known truth from atoms, a Gaussian model or a map."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryosplat.core.progress import Progress
from cryosplat.simulate.simulation import SimulationConfig, simulate

HELP = (
    "simulate particle images (RELION 3.1 STAR + MRC stacks + truth.mrc) from a PDB/mmCIF "
    "model, a saved Gaussian model (.npz) or an MRC map"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SimulationConfig(n_particles=1)
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
        default=defaults.snr,
        help="signal variance / noise variance over the box after the CTF "
        "(default %(default)s; 'inf' for no noise)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    parser.add_argument(
        "--views",
        type=Path,
        default=None,
        help="take the view distribution from this STAR/.cs (default: uniform)",
    )
    parser.add_argument(
        "--shift-sd",
        type=float,
        default=defaults.shift_sd_angstrom,
        help="standard deviation of the particle origins, Å (default %(default)s)",
    )
    parser.add_argument(
        "--defocus-min",
        type=float,
        default=defaults.defocus_min_um,
        help="smallest defocus, µm (default %(default)s)",
    )
    parser.add_argument(
        "--defocus-max",
        type=float,
        default=defaults.defocus_max_um,
        help="largest defocus, µm (default %(default)s)",
    )
    parser.add_argument(
        "--astigmatism",
        type=float,
        default=defaults.astigmatism_max_angstrom,
        help="largest |defocus U - V|, Å, random angle (default %(default)s)",
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
        default=defaults.voltage_kv,
        help="acceleration voltage, kV (default %(default)s)",
    )
    parser.add_argument(
        "--cs",
        type=float,
        default=defaults.cs_mm,
        help="spherical aberration, mm (default %(default)s)",
    )
    parser.add_argument(
        "--amplitude-contrast",
        type=float,
        default=defaults.amplitude_contrast,
        help="amplitude contrast fraction (default %(default)s)",
    )
    parser.add_argument(
        "--bfactor",
        type=float,
        default=defaults.bfactor_angstrom2,
        help="CTF envelope B-factor, Å² (default %(default)s)",
    )
    parser.add_argument(
        "--atom-bfactor",
        type=float,
        default=defaults.bfactor_extra_angstrom2,
        help="B-factor added to every atom of an atomic model, Å² (default %(default)s)",
    )
    parser.add_argument(
        "--no-ctf",
        action="store_true",
        help="do not apply the CTF to the images (the STAR still lists one)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="images made at once (default %(default)s)",
    )
    parser.add_argument(
        "--images-per-stack",
        type=int,
        default=defaults.images_per_stack,
        help="most images in one .mrcs file (default %(default)s)",
    )
    parser.add_argument("--device", default=defaults.device, help="torch device (default cpu)")
    parser.add_argument(
        "--projection",
        choices=("splat", "fourier"),
        default=defaults.projection,
        help="atoms and Gaussian models: splat each Gaussian, or Fourier slices "
        "of the voxelised model (faster for big models; default "
        "%(default)s). Maps always use Fourier slices",
    )
    parser.add_argument(
        "--backend",
        default=defaults.backend,
        help="splatting backend: auto, reference or fast (default %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def run(args: argparse.Namespace) -> int:
    config = SimulationConfig(
        n_particles=args.n_particles,
        box=args.box,
        pixel_size_angstrom=args.pixel_size,
        snr=args.snr,
        seed=args.seed,
        views=args.views,
        shift_sd_angstrom=args.shift_sd,
        defocus_min_um=args.defocus_min,
        defocus_max_um=args.defocus_max,
        astigmatism_max_angstrom=args.astigmatism,
        ctf_table=args.ctf_table,
        voltage_kv=args.voltage,
        cs_mm=args.cs,
        amplitude_contrast=args.amplitude_contrast,
        bfactor_angstrom2=args.bfactor,
        apply_ctf=not args.no_ctf,
        bfactor_extra_angstrom2=args.atom_bfactor,
        batch_size=args.batch_size,
        images_per_stack=args.images_per_stack,
        device=args.device,
        projection=args.projection,
        backend=args.backend,
    )
    bar = None if args.quiet else Progress(args.n_particles, label="simulate")
    try:
        result = simulate(
            args.model,
            args.output,
            config,
            progress=None if bar is None else lambda done, _total: bar.update(done),
            overwrite=args.overwrite,
        )
    finally:
        if bar is not None:
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
