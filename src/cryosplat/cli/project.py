"""``cryosplat project``: projections of a model along the poses of a particle file (like
``relion_project --ang``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryosplat.cli.names import BACKENDS

HELP = (
    "project an atomic (PDB/mmCIF) or Gaussian (.npz) model, or a map (.mrc), along the angles of "
    "a STAR file"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        type=Path,
        help="atomic model (.pdb/.cif), Gaussian model (.npz) or density map (.mrc/.map, of the "
        "images' box)",
    )
    parser.add_argument(
        "--angles",
        type=Path,
        required=True,
        help="particle file (.star or .cs) with angles, origins, CTF; one image per row",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output stack (.mrcs)")
    parser.add_argument(
        "--apply-ctf",
        action="store_true",
        help="multiply each image by its CTF (by |CTF| or CTF² where the STAR says its images are "
        "phase-flipped or CTF-premultiplied: the images such data hold)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the output stack if it exists"
    )
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="splatting backend")
    parser.add_argument("--batch-size", type=int, default=64, help="images rendered together")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--box",
        type=int,
        default=None,
        help="image size in pixels (default: from the particle file)",
    )
    parser.add_argument(
        "--pixel-size",
        type=float,
        default=None,
        help="pixel size in Å (default: from the particle file)",
    )
    parser.add_argument(
        "--atom-bfactor",
        type=float,
        default=0.0,
        help="B-factor (Å²) added to every atom of an atomic model",
    )
    parser.add_argument(
        "--n-sigma",
        type=float,
        default=3.0,
        help="splat footprint half-width in standard deviations",
    )


def run(args: argparse.Namespace) -> int:
    from cryosplat.simulate.project import ProjectionConfig, project_particles

    config = ProjectionConfig(
        model_path=args.model,
        angles_path=args.angles,
        output_path=args.output,
        apply_ctf=args.apply_ctf,
        backend=args.backend,
        batch_size=args.batch_size,
        device=args.device,
        box=args.box,
        pixel_size_angstrom=args.pixel_size,
        bfactor_extra_angstrom2=args.atom_bfactor,
        n_sigma=args.n_sigma,
        overwrite=args.overwrite,
    )
    result = project_particles(config)
    print(
        f"wrote {result.n_images} projections of {result.projected} "
        f"({result.box}² px, {result.pixel_size_angstrom:.4g} Å/px) to {result.output_path}"
    )
    return 0
