"""Per-particle defocus read again: ``cryosplat refine-defocus`` against ``relion_ctf_refine``.

For each catalogue set whose STAR records each particle's defocus with an error (made by
:mod:`bench_datasets` with ``relion_project`` from the true defocus, ``in.star``; the STAR's values
moved by ``defocus_error_angstrom``):

* cryosplat: ``cryosplat reconstruct`` of the set as recorded, ``cryosplat refine-defocus`` of its
  run, ``cryosplat reconstruct`` of ``refined.star``;
* RELION: ``relion_reconstruct --ctf`` of the set as recorded (full map and both halves),
  ``relion_postprocess`` of its halves (within cryosplat's automatic mask of the same set),
  ``relion_ctf_refine --fit_defocus --fit_mode fpfff`` (each particle's defocus, nothing else;
  its brute-force search and local refinement as RELION 3.1 runs them), ``relion_reconstruct
  --ctf`` of its STAR; and cryosplat of RELION's STAR, which tells the two refinements apart from
  the two reconstructions.

``relion_ctf_refine`` groups particles by micrograph: where a set names none, the STAR given to
RELION names one per hundred particles (``rlnMicrographName``; the errors are drawn per particle,
so the grouping carries no information). The sets of ``micrographs65`` name their own, and their
particles share an error per micrograph besides their own; those of ``micrographs65h`` are imaged
at one defocus per micrograph plus their heights, the STAR recording the micrograph's, and
``relion_ctf_refine`` is also run per micrograph (``--fit_mode fmfff``) on them. The sets of
``astigmatism66`` record each micrograph's astigmatism with an error too: cryosplat reads it per
micrograph (as by default where micrographs are named), and ``relion_ctf_refine`` is also run with
its astigmatism per micrograph (``--fit_mode fpmff``); cryosplat once more with
``--no-astigmatism``. Both programs
read the names, and cryosplat reads them once more without (``micrographs not read``: the STAR
with the names taken out, reconstructed again, the same maps, then ``refine-defocus``). The
tables give the errors of the mean defocus and of the astigmatism's components
(:meth:`~cryosplat.core.ctf.CTFParams.astigmatism_components`) against the truth before and after
each refinement, the time each
took, each map's FSC with the truth, and that FSC's mean over the outer quarter of the shells
(:func:`print_outer_fsc`: it tells maps apart where both cross 0.143 at Nyquist).

Example::

    python benchmarks/bench_defocus.py --out bench_out/defocus
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from bench_datasets import make_dataset
from bench_methods import _cryosplat_script, measure, run_cryosplat, run_relion
from bench_variants import parse_args, print_table, table_row
from run_benchmarks import selected_specs

from cryosplat.core.ctf import CTFParams
from cryosplat.io.star import read_star, write_star

DEFAULT_SETS = "ctf_errors,defocus65,micrographs65"
PARTICLES_PER_MICROGRAPH = 100


def with_micrographs(star: Path, out: Path) -> Path:
    """``star`` written to ``out`` with a micrograph name per :data:`PARTICLES_PER_MICROGRAPH`
    particles where it names none (``relion_ctf_refine`` groups by them), its stacks linked
    beside it."""
    blocks = {name: dict(block.columns) for name, block in read_star(star).items()}
    particles = blocks["particles"]
    n = len(particles["rlnImageName"])
    particles["rlnMicrographName"] = particles.get("rlnMicrographName") or [
        f"mic{i // PARTICLES_PER_MICROGRAPH:05d}.mrc" for i in range(n)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    write_star(out, blocks)
    link_stacks(star, out.parent)
    return out


def without_micrographs(star: Path, out: Path) -> Path | None:
    """``star`` written to ``out`` without its micrograph names, its stacks linked beside it;
    None where it names none."""
    blocks = {name: dict(block.columns) for name, block in read_star(star).items()}
    if blocks["particles"].pop("rlnMicrographName", None) is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    write_star(out, blocks)
    link_stacks(star, out.parent)
    return out


def link_stacks(star: Path, folder: Path) -> None:
    """Links in ``folder`` to the stacks ``star`` names (relative to its folder), so that a STAR
    written into ``folder`` reads them as RELION does, from its working directory."""
    names = read_star(star)["particles"].columns["rlnImageName"]
    for stack in sorted({name.split("@", 1)[1] for name in names}):
        link = folder / stack
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((star.parent / stack).resolve())


def _ctf_of(block) -> CTFParams:
    return CTFParams.create(
        block.n_rows,
        defocus_u_angstrom=block.get_float("rlnDefocusU"),
        defocus_v_angstrom=block.get_float("rlnDefocusV"),
        defocus_angle_degrees=block.get_float("rlnDefocusAngle"),
    )


def ctf_errors(star: Path, truth_star: Path, recorded_star: Path) -> dict[str, float]:
    """The rms of the CTF's errors against the truth (Å), recorded and in ``star``: its mean
    defocus (``defocus_before``, ``defocus_after``) and its astigmatism's components
    (``astigmatism_before``, ``astigmatism_after``: the rms length of the error in ``(a, b)``).
    The truth (``relion_project``'s input, no image names) follows the recorded STAR's rows;
    ``star``'s particles are matched to those by image name."""
    truth = _ctf_of(read_star(truth_star)["particles"])
    recorded_block = read_star(recorded_star)["particles"]
    row_of = {name: i for i, name in enumerate(recorded_block.columns["rlnImageName"])}
    new_block = read_star(star)["particles"]
    rows = np.array([row_of[name] for name in new_block.columns["rlnImageName"]])
    true = np.stack(truth.astigmatism_components(), 1)
    out = {}
    for label, ctf, at in (
        ("before", _ctf_of(recorded_block), slice(None)),
        ("after", _ctf_of(new_block), rows),
    ):
        error = true[at] - np.stack(ctf.astigmatism_components(), 1)
        out[f"defocus_{label}"] = float(np.sqrt(np.mean(error[:, 0] ** 2)))
        out[f"astigmatism_{label}"] = float(np.sqrt(np.mean((error[:, 1:] ** 2).sum(1))))
    return out


def refine_cryosplat(
    star: Path, run: Path, out: Path, extra: tuple[str, ...] = ()
) -> tuple[Path, float, str]:
    """``cryosplat refine-defocus STAR --run RUN -o OUT [EXTRA]``: its STAR, seconds and summary
    line."""
    command = [_cryosplat_script(), "refine-defocus", str(star), "--run", str(run), "-o", str(out)]
    command += list(extra)
    cost = measure([*command, "--no-progress", "--overwrite"], star.parent, out.with_suffix(".log"))
    line = " ".join(
        text
        for text in out.with_suffix(".log").read_text().splitlines()
        if "defocus read" in text or "astigmatism read" in text
    )
    return out / "refined.star", cost.wall_s, line


def refine_relion(
    star: Path,
    halves: tuple[Path, Path],
    mask: Path,
    pixel: float,
    out: Path,
    fit_mode: str = "fpfff",
):
    """``relion_postprocess`` of ``halves`` within ``mask``, then ``relion_ctf_refine`` of ``star``
    (run in its folder): its STAR and the seconds both took."""
    out.mkdir(parents=True, exist_ok=True)
    post = out / "postprocess"
    cost = measure(
        ["relion_postprocess", "--i", str(halves[0]), "--mask", str(mask), "--angpix", str(pixel)]
        + ["--o", str(post)],
        star.parent,
        out / "postprocess.log",
    )
    threads = "2"
    refine = measure(
        ["relion_ctf_refine", "--i", star.name, "--f", str(post) + ".star", "--o", str(out) + "/"]
        + ["--fit_defocus", "--fit_mode", fit_mode, "--kmin_defocus", "30", "--j", threads],
        star.parent,
        out / "ctf_refine.log",
    )
    refined = star.parent / f"{out.name}_refined.star"
    subprocess.run(["cp", str(out / "particles_ctf_refine.star"), str(refined)], check=True)
    return refined, cost.wall_s + refine.wall_s


def bench_set(spec, cache: Path, out_root: Path) -> tuple[list[str], list[str]]:
    """One set's map rows and defocus-error rows."""
    data = make_dataset(spec, cache)
    pixel = spec.pixel_size_angstrom
    work = out_root / "runs" / spec.name
    truth_star = data.star.parent / "in.star"
    rows, errors = [], []

    def row(label: str, made, out: Path) -> None:
        rows.append(table_row((spec.name, label), made, data.truth, pixel, out))

    def error_row(label: str, star: Path, seconds: float) -> None:
        e = ctf_errors(star, truth_star, data.star)
        errors.append(
            f"| {spec.name} | {label} | {e['defocus_before']:.0f} | {e['defocus_after']:.0f} | "
            f"{e['astigmatism_before']:.0f} | {e['astigmatism_after']:.0f} | {seconds:.1f} |"
        )

    recorded = work / "cryosplat_recorded"
    row("recorded", run_cryosplat(data.star, recorded), recorded)
    refined, seconds, line = refine_cryosplat(data.star, recorded / "run", work / "cs_refine")
    print(f"{spec.name}: {line}", flush=True)
    error_row("cryosplat refine-defocus", refined, seconds)
    link_stacks(data.star, work)

    def reconstruct_refined(label: str, refined: Path, copy_name: str, folder: str) -> None:
        # copied beside the stacks linked in ``work``, where its image names resolve
        copy = work / copy_name
        subprocess.run(["cp", str(refined), str(copy)], check=True)
        row(label, run_cryosplat(copy, work / folder), work / folder)

    reconstruct_refined("cryosplat's defocus", refined, "cs_refined.star", "cryosplat_refined")
    if spec.micrograph_astigmatism_error_angstrom:  # the same, the astigmatism left as recorded
        refined, seconds, line = refine_cryosplat(
            data.star, recorded / "run", work / "cs_no_astig", ("--no-astigmatism",)
        )
        error_row("cryosplat refine-defocus --no-astigmatism", refined, seconds)
        reconstruct_refined(
            "cryosplat's, astigmatism not read", refined, "cs_no_astig.star", "cryosplat_no_astig"
        )
    unnamed = without_micrographs(data.star, work / "unnamed" / "particles.star")
    if unnamed is not None:  # the same images, their micrographs not read (the same maps)
        run_cryosplat(unnamed, work / "cryosplat_unnamed_recorded")
        run = work / "cryosplat_unnamed_recorded" / "run"
        refined, seconds, line = refine_cryosplat(unnamed, run, work / "cs_unnamed")
        print(f"{spec.name}, micrographs not read: {line}", flush=True)
        error_row("cryosplat refine-defocus, micrographs not read", refined, seconds)
        reconstruct_refined(
            "cryosplat's, micrographs not read",
            refined,
            "cs_unnamed_refined.star",
            "cryosplat_unnamed",
        )
    relion_star = with_micrographs(data.star, work / "relion_particles.star")
    out = work / "relion_recorded"
    made = run_relion(relion_star, out, pixel)
    row("recorded", made, out)
    mask = recorded / "run" / "mask.mrc"
    refined, seconds = refine_relion(relion_star, made.half_maps, mask, pixel, work / "relion_ctf")
    error_row("relion_ctf_refine", refined, seconds)
    out = work / "relion_refined"
    row("relion_ctf_refine's defocus", run_relion(refined, out, pixel), out)
    if spec.micrograph_heights_angstrom:  # one true defocus per micrograph: its mode applies
        refined, seconds = refine_relion(
            relion_star, made.half_maps, mask, pixel, work / "relion_ctf_mic", "fmfff"
        )
        error_row("relion_ctf_refine, per micrograph", refined, seconds)
        out = work / "relion_refined_mic"
        row("relion_ctf_refine's, per micrograph", run_relion(refined, out, pixel), out)
    if spec.micrograph_astigmatism_error_angstrom:  # its astigmatism per micrograph, as ours
        astigmatism, seconds = refine_relion(
            relion_star, made.half_maps, mask, pixel, work / "relion_ctf_astig", "fpmff"
        )
        error_row("relion_ctf_refine, astigmatism per micrograph", astigmatism, seconds)
        out = work / "relion_refined_astig"
        row(
            "relion_ctf_refine's, astigmatism per micrograph",
            run_relion(astigmatism, out, pixel),
            out,
        )
    out = work / "cryosplat_on_relion"
    row("relion_ctf_refine's defocus", run_cryosplat(refined, out), out)
    return rows, errors


RUNS = (
    ("cryosplat_recorded", "recorded", "cryosplat"),
    ("cryosplat_refined", "cryosplat's defocus", "cryosplat"),
    ("cryosplat_no_astig", "cryosplat's, astigmatism not read", "cryosplat"),
    ("cryosplat_unnamed", "cryosplat's, micrographs not read", "cryosplat"),
    ("relion_recorded", "recorded", "relion"),
    ("relion_refined", "relion_ctf_refine's defocus", "relion"),
    ("relion_refined_mic", "relion_ctf_refine's, per micrograph", "relion"),
    ("relion_refined_astig", "relion_ctf_refine's, astigmatism per micrograph", "relion"),
    ("cryosplat_on_relion", "relion_ctf_refine's defocus", "cryosplat"),
)
OUTER_FRACTION = 0.75


def print_outer_fsc(out_root: Path, names: list[str]) -> None:
    """The mean FSC with the truth over the shells past :data:`OUTER_FRACTION` of Nyquist, for
    each map :func:`bench_set` made under ``out_root`` (read from its saved curves)."""
    print("\n| set | defocus | method | mean FSC with the truth, outer quarter of the shells |")
    print("|---|---|---|---|")
    for name in names:
        for folder, label, method in RUNS:
            saved = out_root / "runs" / name / folder / f"{method}_fsc_truth.npy"
            if not saved.is_file():  # a set that names no micrographs
                continue
            curve = np.load(saved)
            outer = curve[int(OUTER_FRACTION * len(curve)) :]
            print(f"| {name} | {label} | {method} | {outer.mean():.3f} |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, DEFAULT_SETS, argv)
    rows, errors = [], []
    specs = selected_specs(args.datasets.split(","), quick=False)
    for spec in specs:
        made, error = bench_set(spec, args.cache, args.out)
        rows += made
        errors += error
    print(
        "\n| set | refinement | defocus error rms, recorded (Å) | after (Å) | astigmatism error "
        "rms, recorded (Å) | after (Å) | time (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(errors))
    print_table("set | defocus", rows)
    print_outer_fsc(args.out, [spec.name for spec in specs])
    return 0


if __name__ == "__main__":
    sys.exit(main())
