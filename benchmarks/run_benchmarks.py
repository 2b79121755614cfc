"""Benchmark cryosplat against relion_reconstruct and cryoDRGN backproject_voxel.

Data sets are made with RELION's projector (``bench_datasets``), each method runs as a measured
process (``bench_methods``) and its maps are scored against the truth (``bench_report``). One table
is printed and written to ``benchmarks/RESULTS.md`` with the command and the machine at its top.

Examples
--------
``python benchmarks/run_benchmarks.py``  (everything: 8zpm, 6vxx, the particle-count sweep and the
simulator's acceptance set)
``python benchmarks/run_benchmarks.py --datasets 8zpm --methods relion,cryodrgn --quick``
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench_catalogue import DATASETS, QUICK
from bench_catalogue import quick as quick_version
from bench_datasets import Dataset, DatasetSpec, make_dataset, preferred_cones
from bench_methods import MethodRun, ensure_cryodrgn, run_cryodrgn, run_cryosplat, run_relion
from bench_report import compare_curves, format_table, plot_curves, score_maps, write_results

REPO = Path(__file__).resolve().parents[1]
METHODS = ("cryosplat", "relion", "cryodrgn")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets",
        default=",".join(DATASETS),
        help="comma-separated among: " + ", ".join(DATASETS),
    )
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="comma-separated among: " + ", ".join(METHODS)
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small versions of the data sets (1,000 particles; sweep 500-2,000)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench_out",
        help="working folder; data sets are cached under OUT/datasets",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO / "benchmarks" / "RESULTS.md",
        help="where to write the Markdown results",
    )
    parser.add_argument(
        "--cryosplat-args",
        default="",
        help="extra arguments for 'cryosplat reconstruct' (one quoted string)",
    )
    args = parser.parse_args(argv)
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for what, chosen, known in (
        ("data set", args.datasets, {**DATASETS, **_SINGLE}),
        ("method", args.methods, METHODS),
    ):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            parser.error(f"unknown {what}(s) {unknown}; choose among {list(known)}")
    return args


# Single data sets by name (e.g. ``emd1832_c``), besides the groups.
_SINGLE = {s.name: [s] for group in DATASETS.values() for s in group}


def selected_specs(names: list[str], quick: bool) -> list[DatasetSpec]:
    """The data sets of the chosen groups (or single sets by name), each once, in order."""
    table = QUICK if quick else DATASETS
    specs: dict[str, DatasetSpec] = {}
    for name in names:
        chosen = table.get(name)
        if chosen is None:  # a single set, or (with --quick) a group without its own quick list
            chosen = DATASETS.get(name) or _SINGLE[name]
            chosen = [quick_version(s) for s in chosen] if quick else chosen
        for spec in chosen:
            specs.setdefault(spec.name, spec)
    return list(specs.values())


def _views_text(spec: DatasetSpec) -> str:
    if spec.views is not None:
        return "views sampled from " + spec.views
    cones = preferred_cones(spec)
    if cones is None:
        return "uniform views"
    parts = []
    for c in cones:
        axis = (
            "one axis"
            if c.about_z
            else f"the view of tilt {c.axis_tilt_degrees:g}°, rot {c.axis_rot_degrees:g}°"
        )
        parts.append(f"{c.fraction:.0%} within {c.cone_degrees:g}° of {axis}")
    rest = 1.0 - sum(c.fraction for c in cones)
    return "views: " + ", ".join(parts) + (", the rest uniform" if rest > 1e-9 else "")


def describe(spec: DatasetSpec, data: Dataset) -> str:
    ctf = (
        f"defocus rows sampled from {spec.ctf_table}"
        if spec.ctf_table
        else f"defocus {spec.defocus_min_um}-{spec.defocus_max_um} µm"
    )
    if spec.astigmatism_max_angstrom:
        ctf += f", astigmatism up to {spec.astigmatism_max_angstrom:g} Å"
    if any(spec.phase_shift_degrees):
        low, high = spec.phase_shift_degrees
        ctf += f", a phase plate's shift {low:g}-{high:g}° per image (in the STAR)"
    model = spec.model
    if spec.tandem[0] > 1:
        model += f" {spec.tandem[0]} times in a row along x, {spec.tandem[1]} voxels apart"
    if spec.truth_bfactor_angstrom2:
        how = "sharpened" if spec.truth_bfactor_angstrom2 < 0 else "blurred"
        model += f" {how} by B {spec.truth_bfactor_angstrom2:+g} Å² to Nyquist"
    if spec.micelle is not None:
        m = spec.micelle
        model += (
            f" in a detergent micelle ({2 * m.radius_angstrom:g} Å across its plane, "
            f"{2 * m.half_thickness_angstrom:g} Å thick, {m.level:g} of the protein's density)"
        )
    if spec.missing_part is not None:
        part = spec.missing_part
        model += (
            f" with a ball of {part.radius_angstrom:g} Å about voxel "
            f"{tuple(round(c, 1) for c in part.centre_voxel)} held by {part.present_fraction:.0%} "
            "of the particles (the truth: the two states' mean)"
        )
    if spec.moving_part is not None:
        move = spec.moving_part
        model += (
            f" with a ball of {move.radius_angstrom:g} Å about voxel "
            f"{tuple(round(c, 1) for c in move.centre_voxel)} turned about an axis along "
            f"{tuple(round(c, 2) for c in move.axis)} through voxel "
            f"{tuple(round(c, 1) for c in move.hinge_voxel)} by a different angle per particle "
            f"({move.states} equal shares at a normal's quantiles, s.d. {move.sd_degrees:g}°; "
            "the truth: the states' mean)"
        )
    if spec.real_looking_bfactor is not None:
        model += (
            f" made to look like a real map (B + {spec.real_looking_bfactor:g} Å², a negative "
            f"halo, noisy solvent{', mean zero' if spec.real_looking_mean_zero else ''})"
        )
    return (
        f"`{spec.name}` (made by {spec.simulator}): {model}, {spec.n_particles:,} "
        f"particles, box {spec.box}, "
        f"{spec.pixel_size_angstrom} Å/px (Nyquist {2 * spec.pixel_size_angstrom:.2f} Å), "
        f"SNR {spec.snr}, shifts {spec.shift_sd_angstrom} Å s.d., {ctf}, "
        f"{spec.voltage_kv:g} kV, Cs {spec.cs_mm} mm, Q {spec.amplitude_contrast}, "
        f"{_views_text(spec)}"
        f"{'' if spec.symmetry == 'C1' else ', truth in RELION ' + spec.symmetry + ' orientation'}"
        f"; {spec.noise} noise"
        f"{' (spectrum of ' + spec.noise_source + ')' if spec.noise == 'coloured' else ''}"
        f" s.d. {data.noise_sd:.4g} for signal variance "
        f"{data.signal_variance:.4g}"
        + (
            f", each image's s.d. times exp({spec.noise_sd_spread:g}·z − {spec.noise_sd_spread:g}²)"
            if spec.noise_sd_spread
            else ""
        )
        + (
            f"; {spec.neighbours:.0%} of the images hold part of a neighbouring particle"
            if spec.neighbours
            else ""
        )
        + (
            f"; each image plus a linear background ramp, its value at the box's edge "
            f"{spec.background_ramp_sd:g} noise s.d. (rms)"
            if spec.background_ramp_sd
            else ""
        )
        + (
            f"; the noise power times 1 + {spec.noise_anisotropy:g}·cos 2θ (θ the frequency's "
            "direction from the images' x axis)"
            if spec.noise_anisotropy
            else ""
        )
        + (
            f"; {spec.hot_pixels[0]:.2%} of the pixels hot (plus a normal of "
            f"{spec.hot_pixels[1]:g} noise s.d.s)"
            if spec.hot_pixels[0]
            else ""
        )
        + (
            f"; {spec.carbon_edges[0]:.0%} of the images hold a support film's edge (a step of "
            f"{spec.carbon_edges[1]:g} noise s.d.s past it, and its texture)"
            if spec.carbon_edges[0]
            else ""
        )
        + (
            f"; {spec.ice_blobs[0]:.0%} of the images hold part of a blob of contamination (up "
            f"to {spec.ice_blobs[1]:g} noise s.d.s at its thickest, and its texture)"
            if spec.ice_blobs[0]
            else ""
        )
        + (
            f"; {spec.micrograph_edges[0]:.0%} of the particles at a micrograph's edge (up to "
            f"{spec.micrograph_edges[1]:g} of the box outside it, filled as relion_preprocess "
            "fills it with the nearest pixels inside)"
            if spec.micrograph_edges[0]
            else ""
        )
        + _envelope_text(spec)
        + _pose_error_text(spec)
        + (
            f"; each defocus in the STAR moved by {spec.defocus_error_angstrom:g} Å s.d. (the "
            "images made with the true one)"
            if spec.defocus_error_angstrom
            else ""
        )
        + _micrograph_text(spec)
    )


def _micrograph_text(spec: DatasetSpec) -> str:
    if not spec.particles_per_micrograph:
        return ""
    shared = spec.micrograph_defocus_error_angstrom
    heights = spec.micrograph_heights_angstrom
    astigmatism = spec.micrograph_astigmatism_error_angstrom
    return (
        f"; a micrograph named per {spec.particles_per_micrograph} particles"
        + (
            f", its particles imaged at one defocus plus heights of {heights:g} Å s.d., the "
            "STAR recording the micrograph's"
            if heights
            else ""
        )
        + (
            f", its particles' defoci in the STAR moved together by {shared:g} Å s.d. more"
            if shared
            else ""
        )
        + (
            f", its astigmatism in the STAR moved by {astigmatism:g} Å s.d. along each component"
            if astigmatism
            else ""
        )
    )


def _envelope_text(spec: DatasetSpec) -> str:
    low, high = spec.ctf_bfactor_angstrom2
    if high <= 0:
        return ""
    where = "in the STAR" if spec.ctf_bfactor_recorded else "not in the STAR"
    return f"; envelope B-factor {low:g}-{high:g} Å² per image ({where})"


def _pose_error_text(spec: DatasetSpec) -> str:
    if not (spec.pose_error_degrees or spec.shift_error_angstrom):
        return ""
    return (
        f"; poses in the STAR with errors: each view turned by {spec.pose_error_degrees:g}° "
        f"(rms), each shift moved by {spec.shift_error_angstrom:g} Å s.d. per axis (the images "
        "projected with the true ones)"
    )


def warm_cache(folder: Path) -> None:
    """Read the data set's stacks once, so that every method finds them in the page cache.

    Without it the first method to run on a data set pays for the disk reads of all of them.
    """
    for stack in sorted(folder.glob("*.mrcs")):
        with open(stack, "rb") as fh:
            while fh.read(1 << 24):
                pass


def run_method(
    method: str,
    data: Dataset,
    workdir: Path,
    cryodrgn_exe: Path | None,
    cryosplat_args: list[str],
    symmetry: str = "C1",
) -> MethodRun:
    spec = data.spec
    tag = "" if symmetry == "C1" else f"_{symmetry}"
    if method == "cryosplat":
        extra = cryosplat_args if symmetry == "C1" else [*cryosplat_args, "--sym", symmetry]
        return run_cryosplat(data.star, workdir / f"cryosplat{tag}", extra)
    if method == "relion":
        return run_relion(data.star, workdir / f"relion{tag}", spec.pixel_size_angstrom, symmetry)
    if cryodrgn_exe is None:
        raise RuntimeError("cryoDRGN environment unavailable")
    return run_cryodrgn(
        cryodrgn_exe, data.star, workdir / "cryodrgn", spec.box, spec.pixel_size_angstrom
    )


def symmetry_runs(method: str, spec: DatasetSpec) -> list[str]:
    """The symmetries a method runs with: a symmetric set's group first, then C1 (the baseline)."""
    if spec.symmetry == "C1" or method == "cryodrgn":  # backproject_voxel has no symmetry
        return ["C1"]
    return [spec.symmetry, "C1"]


def self_correlation(map_path: Path, symmetry: str) -> float:
    """Smallest correlation (soft spherical mask) of a map with itself under the group's operators.

    Operators that permute the axes (D2's) move voxels onto voxels: exact. Others (C3's) resample
    trilinearly, which blurs fine detail; the map is then low-passed to 8 pixels (a quarter of the Nyquist
    frequency) first, so that the score measures symmetry, not interpolation (the atomic truth of
    6vxx_c3 scores 0.78 unfiltered, 0.995 so filtered).
    """
    import numpy as np
    import torch

    from cryosplat.core.symmetry import rotate_volume, symmetry_operators
    from cryosplat.io.mrc import read_map
    from cryosplat.validation.masks import spherical_mask

    volume, _ = read_map(map_path)
    volume = volume.astype("float64")
    ops = symmetry_operators(symmetry)
    if np.abs(ops - np.round(ops)).max() > 1e-9:
        k = np.fft.fftfreq(volume.shape[0])
        kz, ky, kx = np.meshgrid(k, k, k, indexing="ij")
        low = np.sqrt(kx**2 + ky**2 + kz**2) <= 0.125
        volume = np.real(np.fft.ifftn(np.fft.fftn(volume) * low))
    mask = spherical_mask(volume.shape[0]).astype("float64")
    v = torch.from_numpy(volume.astype("float64"))
    a = (volume * mask).ravel()
    a = a - a.mean()
    scores = []
    for op in ops[1:]:
        b = (rotate_volume(v, op).numpy() * mask).ravel()
        b = b - b.mean()
        scores.append(float(a @ b / ((a @ a) ** 0.5 * (b @ b) ** 0.5)))
    return min(scores) if scores else 1.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python benchmarks/run_benchmarks.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    cryodrgn_exe = ensure_cryodrgn() if "cryodrgn" in args.methods else None
    notes: list[str] = []
    if "cryodrgn" in args.methods and cryodrgn_exe is None:
        notes.append("cryoDRGN column skipped: its virtual environment could not be created.")
    rows, descriptions = [], []
    args.results.parent.mkdir(parents=True, exist_ok=True)  # the plots are written there as made
    for spec in selected_specs(args.datasets, args.quick):
        data = make_dataset(spec, args.out / "datasets")
        descriptions.append(describe(spec, data))
        curves: dict = {}
        variants = [(m, sym) for m in args.methods for sym in symmetry_runs(m, spec)]
        for method, sym in variants:
            if method == "cryodrgn" and cryodrgn_exe is None:
                continue
            label = method if spec.symmetry == "C1" else f"{method} --sym {sym}"
            row = {"method": label, "dataset": spec.name, "particles": spec.n_particles}
            print(f"[run] {label} on {spec.name}", flush=True)
            warm_cache(data.folder)
            try:
                run = run_method(
                    method,
                    data,
                    args.out / "runs" / spec.name,
                    cryodrgn_exe,
                    shlex.split(args.cryosplat_args),
                    sym,
                )
                score = score_maps(
                    data.truth, run.full_map, run.half_maps, spec.pixel_size_angstrom
                )
            except (RuntimeError, OSError, ValueError) as exc:
                row["notes"] = f"failed: {' '.join(str(exc).split())}"
                print(f"[run] {method} on {spec.name} failed: {exc}", flush=True)
                rows.append(row)
                continue
            curves[label] = score.curve
            notes = [*run.notes, f"hand {score.hand} (corr {score.correlation:.3f})"]
            if spec.symmetry != "C1":
                notes.append(
                    f"map self-correlation under {spec.symmetry} (min over operators) "
                    f"{self_correlation(run.full_map, spec.symmetry):.4f}"
                )
            if spec.simulator == "cryosplat" and method == "relion":
                limit = 2.5 * 2 * spec.pixel_size_angstrom
                verdict = "pass" if score.truth_05 < limit else "FAIL"
                notes.append(
                    f"simulator acceptance, FSC-truth 0.5 finer than {limit:.2f} Å "
                    f"(2.5× Nyquist): {verdict}"
                )
            row.update(
                {
                    "FSC-truth 0.5 (Å)": score.truth_05,
                    "FSC-truth 0.143 (Å)": score.truth_0143,
                    "half-map 0.143 (Å)": score.half_0143,
                    "wall time (s)": run.measured.wall_s,
                    "peak memory (MiB)": run.measured.peak_mib,
                    "notes": "; ".join(notes),
                }
            )
            rows.append(row)
            print(format_table([row]).splitlines()[-1], flush=True)
        if curves:
            png = args.results.parent / f"fsc_{spec.name}.png"
            plot_curves(png, f"{spec.name}: FSC with the truth", curves, spec.pixel_size_angstrom)
            comparison = compare_curves(curves, spec.box, spec.pixel_size_angstrom)
            for row in rows:
                if row["dataset"] == spec.name and row["method"] == "cryosplat" and comparison:
                    row["notes"] = f"{row.get('notes', '')}; {comparison}; curves {png.name}"
    table = format_table(rows)
    print(table)
    write_results(args.results, command, rows, descriptions, notes)
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
