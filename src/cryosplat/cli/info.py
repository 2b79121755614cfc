"""``cryosplat info``: read a particle set, check its stacks, and print a summary."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryosplat.particles.summary import ParticleSummary

HELP = (
    "summarise particles (.star, .cs, or .mrcs with cryoDRGN pickles): count, optics, defocus, "
    "poses, view coverage and preferred orientation; checks every referenced image exists"
)


@dataclass
class InfoConfig:
    """Inputs of ``cryosplat info``."""

    particles: Path
    datadir: Path | None = None
    poses: Path | None = None
    ctf: Path | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("particles", type=Path, help="particle .star, .cs or .mrcs stack")
    parser.add_argument(
        "--datadir",
        type=Path,
        default=None,
        help="folder to resolve relative image paths against first",
    )
    parser.add_argument("--poses", type=Path, default=None, help="cryoDRGN poses.pkl (with .mrcs)")
    parser.add_argument("--ctf", type=Path, default=None, help="cryoDRGN ctf.pkl (with .mrcs)")


def format_summary(s: ParticleSummary) -> str:
    """The printed form of a summary."""
    lines = [
        f"particles:    {s.source}",
        f"count:        {s.n_particles}",
        f"box:          {s.box} px",
        f"pixel size:   {s.pixel_size_angstrom:.4f} Å",
        f"optics groups ({len(s.optics)}):",
    ]
    for g in s.optics:
        lines.append(
            f"  {g.name}: {g.pixel_size_angstrom:.4f} Å, {g.voltage_kv:g} kV, "
            f"Cs {g.cs_mm:g} mm, Q {g.amplitude_contrast:g}, {g.n_particles} particles"
        )
    lines.append(f"CTF:          {'yes' if s.has_ctf else 'no'}")
    if s.defocus_range_um is not None:
        lines.append(
            f"defocus:      {s.defocus_range_um[0]:.3f} - {s.defocus_range_um[1]:.3f} µm "
            "(mean of U and V)"
        )
    lines.append(f"poses:        {'yes' if s.has_poses else 'no'}")
    if s.view_coverage is not None:
        lines.append(
            f"view coverage: {100 * s.view_coverage:.1f} % of {s.n_view_cells} cells of "
            f"~{s.cell_degrees:g}°"
        )
        lines.append(
            "tilt histogram: "
            + ", ".join(f"{lo:.0f}-{hi:.0f}°: {c}" for lo, hi, c in s.tilt_histogram)
        )
    if s.densest_cone is not None:
        from cryosplat.particles.summary import PREFERRED_CONE_DEGREES, uniform_cone_share

        share, axis = s.densest_cone
        uniform = uniform_cone_share(PREFERRED_CONE_DEGREES)
        lines.append(
            f"densest {PREFERRED_CONE_DEGREES:g}° cone: {100 * share:.1f} % of the views, about "
            f"({axis[0]:.2f}, {axis[1]:.2f}, {axis[2]:.2f}) (uniform views: {100 * uniform:.0f} %)"
        )
    if s.random_subsets is not None:
        lines.append(
            "random subsets: " + ", ".join(f"{k}: {v}" for k, v in s.random_subsets.items())
        )
    else:
        lines.append("random subsets: none")
    lines.append(f"stacks ({len(s.stacks)}):" if s.stacks else "stacks:       none read")
    for path, n_images, n_used in s.stacks:
        lines.append(f"  {path}: {n_images} images, {n_used} referenced")
    for note in s.notes:
        lines.append(f"note: {note}")
    for warning in s.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from cryosplat.particles.read import read_particles
    from cryosplat.particles.summary import summarize
    from cryosplat.particles.validate import ACCEPT_OPTION, check_particles

    config = InfoConfig(args.particles, args.datadir, args.poses, args.ctf)
    particles = read_particles(
        config.particles, datadir=config.datadir, poses=config.poses, ctf=config.ctf
    )
    summary = summarize(particles)
    findings = check_particles(particles, densest=summary.densest_cone)
    print(format_summary(summary))
    for f in findings:
        stops = f" (reconstruct stops on this unless {ACCEPT_OPTION})" if f.refuse else ""
        print(f"warning: {f.message}{stops}")
    return 0
