"""``cryosplat info``: summarise a particle set (its stacks checked) or a reconstruct output
folder (its run's state and results)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryosplat.cli.info_map import format_map
from cryosplat.cli.info_run import format_run
from cryosplat.cli.names import PASS_CHECKPOINTS
from cryosplat.cli.particle_choice import add_selection_arguments, apply_selection
from cryosplat.cli.record_lines import (
    format_defocus,
    format_poses,
    format_saved_passes,
    format_scores,
)
from cryosplat.core.errors import InputError

if TYPE_CHECKING:
    from cryosplat.particles.summary import ParticleSummary

HELP = (
    "summarise particles (.star, .cs, or .mrcs with cryoDRGN pickles): count, optics, defocus, "
    "poses, view coverage and preferred orientation; checks every referenced image exists. "
    "Given a reconstruct output folder: its run's state (running, complete, stopped) and results; "
    "given a score output folder: what was scored against which run, and what it named; given a "
    "refine-defocus output folder: how far the recorded defoci were off; given a refine-poses "
    "output folder: how far the recorded poses were off. Given a map (.mrc, .map): its grid, "
    "placement and values"
)


@dataclass
class InfoConfig:
    """Inputs of ``cryosplat info``."""

    particles: Path
    datadir: Path | None = None
    poses: Path | None = None
    ctf: Path | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "particles",
        type=Path,
        help="particle .star, .cs or .mrcs stack, a reconstruct, score, refine-defocus or "
        "refine-poses output folder, or a map (.mrc, .map)",
    )
    parser.add_argument(
        "--datadir",
        type=Path,
        default=None,
        help="folder to resolve relative image paths against first",
    )
    parser.add_argument("--poses", type=Path, default=None, help="cryoDRGN poses.pkl (with .mrcs)")
    parser.add_argument("--ctf", type=Path, default=None, help="cryoDRGN ctf.pkl (with .mrcs)")
    add_selection_arguments(parser)


def format_summary(s: ParticleSummary) -> str:
    """The printed form of a summary."""
    from cryosplat.particles.downsample import even_box

    lines = [
        f"particles:    {s.source}",
        f"count:        {s.n_particles}",
        f"box:          {s.box} px"
        + (
            f" (odd: reconstruct uses them Fourier-cropped to {even_box(s.box)} and writes its "
            f"maps back at {s.box})"
            if even_box(s.box) != s.box
            else ""
        ),
        f"pixel size:   {s.pixel_size_angstrom:.4f} Å",
        f"optics groups ({len(s.optics)}):",
    ]
    for g in s.optics:
        lines.append(
            f"  {g.name}: {g.pixel_size_angstrom:.4f} Å, {g.voltage_kv:g} kV, "
            f"Cs {g.cs_mm:g} mm, Q {g.amplitude_contrast:g}, {g.n_particles} particles"
            + (f" (read at box {s.box}; {g.stored})" if g.stored else "")
            + (f"; {g.aberrations}" if g.aberrations else "")
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
    if s.classes:
        lines.append(f"classes:      {s.classes}")
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


def _background_line(particles) -> str:
    """The images' background as the statistics pass will find it, from up to 500 of them."""
    import numpy as np

    from cryosplat.reconstruct.grid.background import TAKE_OFF_FRACTION, measure_background

    level, share, take_off = measure_background(particles, np.arange(len(particles)), 500)
    if not np.isfinite(level):
        return "background:   not measured: an image holds NaN or infinite pixels"
    what = (
        "not at zero: reconstruct takes it off (were they normalised?)"
        if take_off
        else f"at zero within {TAKE_OFF_FRACTION:.0%} (normalised)"
    )
    n = min(len(particles), 500)
    return (
        f"background:   corners average {level:.4g}, {share:.2%} of their noise sd, in {n} "
        f"images: {what}"
    )


def _hot_pixel_line(particles) -> str:
    """Hot pixels as reconstruct will replace them, in up to 500 images spread over the set."""
    from cryosplat.particles.dust import DUST_SDS, dust_counts, without_dust

    rows = particles.spread_rows(500)
    cleaned = without_dust(particles)
    for start in range(0, rows.size, 100):
        cleaned.read_images(rows[start : start + 100])
    pixels, images, read = dust_counts(cleaned)
    rule = f"beyond {DUST_SDS:g} s.d.s of their image from its mean and their neighbours' median"
    if pixels == 0:
        return f"hot pixels:   none in {read} images ({rule})"
    return (
        f"hot pixels:   {pixels} in {images} of {read} images ({rule}): reconstruct replaces "
        "them by that median (--dust-sds 0 keeps them)"
    )


def _noise_level_line(particles) -> str:
    """Whether reconstruct will weigh the images by their noise levels (the same sample)."""
    from cryosplat.reconstruct.grid.noise_levels import measure_noise_levels

    levels = measure_noise_levels(particles, report=False)  # the lines below say it
    if levels is None or levels.share == 0:
        line = "noise levels: alike (each image weighs the same; details in the run's log)"
    else:
        line = (
            f"noise levels: differ, variances by a factor {levels.own_factor:.2f} (1 sd): "
            "reconstruct weighs each image by the inverse of its noise variance "
            "(--image-weights off: alike)"
        )
    if levels is not None and levels.structure_limits is not None:
        past, sampled = levels.structure_sampled or (0, 0)
        line += (
            f"\nwarning: background structure: {past} of {sampled} sampled images hold structure "
            "in their background far beyond their noise (a support film's edge, contamination): "
            "reconstruct leaves every such image out of the map (--image-weights off keeps them)"
        )
    return line


def _ctf_lines(particles) -> list[str]:
    """The images' Thon rings against the metadata's CTF, and their astigmatism's axis against
    the metadata's where any particle is astigmatic, each from up to 300 images."""
    from cryosplat.particles.astigmatism_check import check_astigmatism
    from cryosplat.particles.thon_rings import check_thon_rings

    if (check := check_thon_rings(particles)) is None:
        return ["CTF check:    none (no CTF, or images under 24 pixels)"]
    rings = check.describe(particles.pixel_size_angstrom)
    lines = [_verdict_line("CTF check:", check.verdict, rings)]
    if (axis := check_astigmatism(particles)) is not None:
        lines.append(_verdict_line("astigmatism:", axis.verdict, axis.describe()))
    return lines


def _verdict_line(label: str, verdict: str, text: str) -> str:
    """A check's line: a warning where it found a mismatch, else under its label."""
    return f"warning: {text}" if verdict == "mismatch" else f"{label:<14}{text}"


def _convention_lines(particles) -> list[str]:
    """The poses and the images' CTF state as written against a converter's common slips, from
    one sample of up to 3,000 particles at box 48; none without poses and CTF."""
    from cryosplat.reconstruct import ctf_state_check, pose_check
    from cryosplat.reconstruct.grid.sample_maps import can_check, check_sample

    if not can_check(particles):
        return []
    try:
        sample = check_sample(particles)
        checks = [
            ("poses:", pose_check.check_pose_conventions(particles, sample=sample)),
            ("CTF state:", ctf_state_check.check_ctf_state(particles, sample=sample)),
        ]
    except InputError as error:  # a bad image: its own line, the other findings still printed
        return [f"poses:        not checked: {error}"]
    lines = [_verdict_line(label, c.verdict, c.describe()) for label, c in checks if c is not None]
    poses = checks[0][1]
    if poses is not None and (warning := poses.unrelated_setting_warning()) is not None:
        lines.append(f"warning: {warning}")
    return lines


def _print_metadata_alone(config: InfoConfig) -> None:
    """What a STAR or .cs file says, where its images cannot be read (stacks missing or
    broken): printed before the error, so a table copied without its stacks can still be
    inspected. Nothing where the metadata itself is at fault."""
    from cryosplat.particles.read import read_particles
    from cryosplat.particles.summary import summarize

    if config.poses or config.ctf:
        return
    try:
        particles = read_particles(config.particles, datadir=config.datadir, require_images=False)
    except InputError:
        return
    print(format_summary(summarize(particles)))
    print("(metadata alone: the images could not be read, below)")


def run(args: argparse.Namespace) -> int:
    if args.particles.is_dir():
        from cryosplat.reconstruct.defocus_run import read_defocus_record
        from cryosplat.reconstruct.grid.row_store import saved_passes
        from cryosplat.reconstruct.pose_run import read_poses_record
        from cryosplat.reconstruct.run_summary import read_run
        from cryosplat.reconstruct.score_run import read_scores

        if args.poses or args.ctf or args.datadir or args.classes or args.ind or args.optics_groups:
            raise InputError(
                f"{args.particles}: a folder is read as a reconstruct, score, refine-defocus or "
                "refine-poses output folder, "
                "which takes no --datadir, --poses, --ctf, --class, --ind or --optics-group"
            )
        if not (args.particles / "run.json").exists():
            if (scores := read_scores(args.particles)) is not None:
                print(format_scores(args.particles, scores))
                return 0
            if (defocus := read_defocus_record(args.particles)) is not None:
                print(format_defocus(args.particles, defocus))
                return 0
            if (poses := read_poses_record(args.particles)) is not None:
                print(format_poses(args.particles, poses))
                return 0
            if passes := saved_passes(args.particles / PASS_CHECKPOINTS):
                print(format_saved_passes(args.particles, passes))
                return 0
        print(format_run(read_run(args.particles)))
        return 0
    from cryosplat.io.map_info import is_map_file, summarise_map
    from cryosplat.particles.read import read_particles
    from cryosplat.particles.summary import summarize
    from cryosplat.particles.validate import ACCEPT_OPTION, check_particles

    if args.poses is None and args.ctf is None and is_map_file(args.particles):
        if args.datadir or args.classes or args.ind or args.optics_groups:
            raise InputError(
                f"{args.particles}: a map, which takes no --datadir, --class, --ind or "
                "--optics-group"
            )
        print(format_map(summarise_map(args.particles)))
        return 0

    config = InfoConfig(args.particles, args.datadir, args.poses, args.ctf)
    try:
        particles = read_particles(
            config.particles, datadir=config.datadir, poses=config.poses, ctf=config.ctf
        )
    except InputError:
        _print_metadata_alone(config)
        raise
    particles = apply_selection(particles, args)
    summary = summarize(particles)
    findings = check_particles(particles, densest=summary.densest_cone)
    print(format_summary(summary))
    if particles.stacks:
        print(_background_line(particles))
        print(_hot_pixel_line(particles))
        print(_noise_level_line(particles))
        for line in _ctf_lines(particles) + _convention_lines(particles):
            print(line)
    for f in findings:
        stops = f" (reconstruct stops on this unless {ACCEPT_OPTION})" if f.refuse else ""
        print(f"warning: {f.message}{stops}")
    return 0
