"""The GPU path in one call: the CUDA tests, kernel throughputs and a full reconstruction.

Steps (each within a share of ``--budget-s``; a step that fails or runs out of time is recorded
and the next one runs; the table is printed row by row and ``--results`` is rewritten after
every step, so a cut-off run still leaves its results):

1. ``tests``: ``pytest -m cuda tests/test_cuda.py`` (on ``--device cpu``: the CPU variants of the
   same file), pass/fail counts.
2. ``statistics``: the statistics pass (:func:`cryosplat.reconstruct.grid.gather.accumulate`)
   in particles/s at box 128 and 256, images already in host memory and read from an MRC stack
   (its pages dropped from the page cache with ``posix_fadvise`` before each repeat).
3. ``fit``: one step of the gridded fit (voxelise, loss, backward, Adam) at box 256 with 50,000
   Gaussians.
4. ``render``: each splat backend, images/s forward + backward at D = 128 with 10,000 Gaussians.
5. ``full``: ``cryosplat simulate`` (Fourier projection) of 50,000 particles of 8ZPM at box 256,
   then ``cryosplat reconstruct --device DEVICE``: wall time, peak GPU memory
   (``torch.cuda.max_memory_allocated`` from ``run.json`` and ``nvidia-smi`` sampled), resolution.
6. ``compare``: a smaller set (3,000 particles, box 96) reconstructed with the same settings on
   DEVICE and on the CPU; FSC between the two maps up to the reported resolution (≥ 0.99), and
   against the rounding floor: the CPU's map against the CPU's map of the same images plus noise
   of 1e-6 of their s.d. (the fit amplifies rounding; the device may not sit more than 0.02
   under that floor). On a GPU also the device's map against the device's, the same run again,
   and with ``--deterministic`` two runs with deterministic kernels (identical maps) and the full
   run's time with them.

Times are medians after a warm-up, by CUDA events on a GPU and ``time.perf_counter`` elsewhere.

Usage::

    python benchmarks/bench_gpu.py                          # on a GPU machine (~9 min)
    python benchmarks/bench_gpu.py --device cpu --quick     # tiny sizes: checks the script
    python benchmarks/bench_gpu.py --steps full,compare --budget-s 400   # rerun some steps
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # this checkout's cryosplat, installed or not

from gpu_kernels import (  # noqa: E402
    PARTICLE_EXTENT_ANGSTROM,
    check,
    step_fit,
    step_render,
    step_statistics,
)
from gpu_runs import (  # noqa: E402
    SmiSampler,
    env,
    perturbed_copy,
    reconstruct,
    simulate,
)

from cryosplat.io.mrc import read_map  # noqa: E402
from cryosplat.validation.fsc import fsc  # noqa: E402

STEPS = ("tests", "statistics", "fit", "render", "full", "compare")
# Share of the budget of each step (the rest of the budget carries over to later steps).
SHARES = {
    "tests": 0.12,
    "statistics": 0.10,
    "fit": 0.06,
    "render": 0.10,
    "full": 0.40,
    "compare": 0.22,
}
FULL_TARGET_S = 120.0
FSC_TARGET = 0.99
PERTURBATION = 1e-6  # relative noise added to the images of the rounding-floor run
FLOOR_MARGIN = 0.02  # the device's FSC may sit this far under the CPU's own rounding floor


@dataclass
class Sizes:
    """Problem sizes of one run (full or ``--quick``)."""

    stats_boxes: tuple[int, ...] = (128, 256)
    stats_images: tuple[int, ...] = (4096, 2048)
    fit_box: int = 256
    fit_gaussians: int = 50_000
    render_box: int = 128
    render_gaussians: int = 10_000
    render_batches: dict = field(
        default_factory=lambda: {"reference": 64, "fast": 512, "fourier": 1024}
    )
    full_particles: int = 50_000
    full_box: int = 256
    compare_particles: int = 3_000
    compare_box: int = 96
    reconstruct_args: tuple[str, ...] = ()


QUICK = Sizes(
    stats_boxes=(32, 48),
    stats_images=(256, 128),
    fit_box=32,
    fit_gaussians=2_000,
    render_box=32,
    render_gaussians=500,
    render_batches={"reference": 8, "fast": 16, "fourier": 32},
    full_particles=400,
    full_box=32,
    compare_particles=300,
    compare_box=32,
    reconstruct_args=("--n-gaussians", "300", "--stage-steps", "6,4,4,4"),
)


class Report:
    """Rows of the result table, printed as they come and written to a Markdown file."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path, self.header, self.rows = path, header, []

    def add(self, step: str, item: str, value: str, status: str = "") -> None:
        self.rows.append((step, item, value, status))
        print(f"  {step:<10} {item:<58} {value:<28} {status}", flush=True)

    def write(self) -> None:
        lines = ["# GPU results", "", "Written by `benchmarks/bench_gpu.py`.", ""]
        lines += [f"- {k}: {v}" for k, v in self.header.items()]
        lines += ["", "| step | what | result | check |", "|---|---|---|---|"]
        lines += [f"| {s} | {i} | {v} | {c} |" for s, i, v, c in self.rows]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.path)


def _environment(device: torch.device) -> dict:
    env = {
        "date (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:]),
        "torch": f"{torch.__version__} (CUDA {torch.version.cuda})",
        "device": str(device),
        "CPU cores": str(os.cpu_count()),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["GPU"] = f"{props.name}, {props.total_memory / 2**30:.1f} GiB"
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run(
            [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        env["nvidia-smi"] = out.stdout.strip().replace("\n", "; ") or out.stderr.strip()
    return env


def step_tests(report: Report, device: torch.device, seconds: float, args) -> None:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py"]
    cmd += ["-m", "cuda"] if device.type == "cuda" else ["-m", "not cuda"]
    start = time.perf_counter()
    try:
        out = subprocess.run(
            cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=seconds
        )
    except subprocess.TimeoutExpired:
        report.add("tests", " ".join(cmd[3:]), f"timed out after {seconds:.0f} s", "FAIL")
        return
    (args.workdir / "tests.log").write_text(out.stdout + out.stderr)
    lines = [ln for ln in out.stdout.strip().splitlines() if ln.strip()]
    summary = lines[-1] if lines else out.stderr.strip()[-200:]
    for line in out.stdout.splitlines():
        if line.startswith(("FAILED", "ERROR")):
            report.add("tests", line[:120], "", "FAIL")
    status = "pass" if out.returncode == 0 else "FAIL"
    took = time.perf_counter() - start
    report.add("tests", "pytest " + " ".join(cmd[6:]), f"{summary} ({took:.0f} s)", status)


def step_full(report: Report, device: torch.device, seconds: float, args) -> None:
    n, box = args.sizes.full_particles, args.sizes.full_box
    deadline = time.perf_counter() + seconds
    folder = args.workdir / f"sim_{n}_{box}"
    ok, wall, last = simulate(folder, n, box, device, 0.5 * seconds)
    report.add(
        "full",
        f"cryosplat simulate 8ZPM, {n:,} particles, box {box} (fourier, {device})",
        (f"{wall:.1f} s" if last != "reused" else "reused from --workdir") if ok else last,
        "pass" if ok else "FAIL",
    )
    if not ok:
        return
    smi = SmiSampler(args.workdir / "nvidia_smi.txt") if device.type == "cuda" else None
    ok, wall, last, summary = reconstruct(
        folder / "particles.star",
        args.workdir / "rec_full",
        str(device),
        max(10.0, deadline - time.perf_counter()),
        args,
    )
    smi_peak = smi.stop() if smi else None
    if not ok:
        report.add("full", f"cryosplat reconstruct --device {device}", last, "FAIL")
        return
    report.add(
        "full",
        f"cryosplat reconstruct --device {device}: wall time (≤ {FULL_TARGET_S:.0f} s)",
        f"{wall:.1f} s",
        check(wall <= FULL_TARGET_S, device),
    )
    timings = summary.get("timings_s", {})
    if timings:
        report.add(
            "full",
            "statistics pass / fit and validation (from run.json)",
            f"{timings.get('statistics', float('nan')):.1f} s / {timings.get('fit', float('nan')):.1f} s",
            f"{n / timings['statistics']:,.0f} particles/s" if timings.get("statistics") else "",
        )
    report.add(
        "full",
        "resolution (cross-validated)",
        f"{summary.get('resolution_angstrom', float('nan')):.2f} Å",
        f"Nyquist {2 * PARTICLE_EXTENT_ANGSTROM / box:.2f} Å",
    )
    if summary.get("peak_gpu_memory_gb") is not None:
        report.add(
            "full",
            "peak GPU memory (torch.cuda.max_memory_allocated)",
            f"{summary['peak_gpu_memory_gb']:.2f} GB",
        )
    if smi_peak is not None:
        report.add("full", "peak GPU memory (nvidia-smi, whole device)", f"{smi_peak:,.0f} MiB")
    if args.deterministic:
        remaining = deadline - time.perf_counter()
        what = f"cryosplat reconstruct --device {device} --deterministic: wall time"
        if remaining < 10:
            report.add("full", what, "no time left", "FAIL")
            return
        ok, det_wall, last, _ = reconstruct(
            folder / "particles.star",
            args.workdir / "rec_full_deterministic",
            str(device),
            remaining,
            args,
            ("--deterministic",),
        )
        report.add(
            "full",
            what,
            f"{det_wall:.1f} s ({det_wall / wall:.2f}×)" if ok else last,
            "" if ok else "FAIL",
        )


def step_compare(report: Report, device: torch.device, seconds: float, args) -> None:
    """The device's map against the CPU's, and the CPU's against itself on rounding-perturbed
    images: a fit of noisy data amplifies rounding, so the second FSC is the floor the first can
    be held to (measured: a 1e-6 relative perturbation on the CPU alone gives the same FSC at the
    resolution shell as the GPU against the CPU, 0.89; round 2 session 10)."""
    n, box = args.sizes.compare_particles, args.sizes.compare_box
    deadline = time.perf_counter() + seconds
    folder = args.workdir / f"sim_{n}_{box}"
    ok, wall, last = simulate(folder, n, box, device, 0.25 * seconds)
    if not ok:
        report.add("compare", f"cryosplat simulate {n} particles, box {box}", last, "FAIL")
        return
    perturbed = perturbed_copy(folder, PERTURBATION)
    maps, resolutions = [], []
    # On --device cpu the first two runs are both on the CPU: that checks the comparison itself.
    runs = [
        ("device", str(device), folder, ()),
        ("cpu", "cpu", folder, ()),
        ("cpu_perturbed", "cpu", perturbed, ()),
    ]
    if device.type == "cuda" or args.deterministic:  # run to run: GPU atomics sum in any order
        runs.append(("device_again", str(device), folder, ()))
        if args.deterministic:
            runs += [(f"device_det{i}", str(device), folder, ("--deterministic",)) for i in (1, 2)]
    for label, name, source, extra in runs:
        out = args.workdir / f"rec_compare_{label}"
        remaining = deadline - time.perf_counter()
        what = " ".join([f"reconstruct {n:,} particles, box {box}, --device {name}", *extra])
        if source is perturbed:
            what += f" (images + {PERTURBATION:g} × s.d. noise)"
        if remaining < 5:
            report.add("compare", what, "no time left", "FAIL")
            return
        ok, wall, last, summary = reconstruct(
            source / "particles.star", out, name, remaining, args, extra
        )
        if not ok:
            report.add("compare", what, last, "FAIL")
            return
        resolutions.append(summary.get("resolution_angstrom", float("nan")))
        report.add("compare", what, f"{wall:.1f} s, {resolutions[-1]:.2f} Å")
        maps.append(read_map(out / "map.mrc")[0])
    resolution = max(resolutions[:2])
    pixel = PARTICLE_EXTENT_ANGSTROM / box
    device_curve = np.asarray(fsc(maps[0], maps[1]))
    floor_curve = np.asarray(fsc(maps[1], maps[2]))
    last_shell = min(len(device_curve) - 1, int(box * pixel / resolution))
    shells = slice(1, last_shell + 1)
    worst = float(device_curve[shells].min())
    report.add(
        "compare",
        f"FSC {device} map vs cpu map, shells 1–{last_shell} (to {resolution:.2f} Å), min",
        f"{worst:.4f}",
        "pass" if worst >= FSC_TARGET else "FAIL",
    )
    floor = float(floor_curve[shells].min())
    report.add(
        "compare", "FSC cpu map vs cpu map of perturbed images, same shells, min", f"{floor:.4f}"
    )
    below = float((floor_curve[shells] - device_curve[shells]).max())
    report.add(
        "compare",
        f"{device}-vs-cpu FSC under the rounding floor, largest gap (≤ {FLOOR_MARGIN})",
        f"{below:.4f}",
        "pass" if below <= FLOOR_MARGIN else "FAIL",
    )
    beyond = device_curve[last_shell + 1 :]
    if beyond.size:
        report.add("compare", "FSC beyond the reported resolution, min", f"{beyond.min():.4f}")
    if len(maps) >= 4:
        again = np.asarray(fsc(maps[0], maps[3]))
        report.add(
            "compare",
            f"FSC {device} map vs {device} map (the same run again), same shells, min",
            f"{float(again[shells].min()):.4f}",
        )
    if len(maps) == 6:
        same = bool(np.array_equal(maps[4], maps[5]))
        report.add(
            "compare",
            f"{device} --deterministic twice: the same map",
            "identical"
            if same
            else f"FSC min {float(np.asarray(fsc(maps[4], maps[5]))[shells].min()):.4f}",
            "pass" if same else "FAIL",
        )


FUNCTIONS = {
    "tests": step_tests,
    "statistics": step_statistics,
    "fit": step_fit,
    "render": step_render,
    "full": step_full,
    "compare": step_compare,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (checks the script)")
    parser.add_argument("--budget-s", type=float, default=540.0, help="whole run (default 540)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"among {','.join(STEPS)}")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cryosplat_bench_gpu"))
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "GPU_RESULTS.md")
    parser.add_argument("--full-particles", type=int, help="particles of the full run")
    parser.add_argument("--compare-particles", type=int, help="particles of the CPU comparison")
    parser.add_argument("--threads", type=int, help="CPU threads of torch (default: torch's)")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="also time the full run with --deterministic and check two such runs on the device "
        "give the same map",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"bench_gpu: no CUDA device for torch {torch.__version__}", file=sys.stderr)
        return 2
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        print(f"bench_gpu: unknown steps {unknown}; choose among {STEPS}", file=sys.stderr)
        return 2
    args.sizes = QUICK if args.quick else Sizes()
    if args.full_particles:
        args.sizes.full_particles = args.full_particles
    if args.compare_particles:
        args.sizes.compare_particles = args.compare_particles
    if args.threads:
        torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    header = _environment(device)
    header["budget"] = f"{args.budget_s:.0f} s, steps {','.join(steps)}"
    report = Report(args.results, header)
    for k, v in header.items():
        print(f"{k}: {v}", flush=True)
    report.write()
    for i, name in enumerate(steps):
        remaining = args.budget_s - (time.perf_counter() - start)
        later = sum(SHARES[s] for s in steps[i:])
        seconds = remaining * SHARES[name] / later if later else remaining
        if remaining < 5:
            report.add(name, "skipped", "budget spent", "FAIL")
            report.write()
            continue
        print(f"[{name}] up to {seconds:.0f} s", flush=True)
        try:
            FUNCTIONS[name](report, device, seconds, args)
        except Exception as exc:  # a failing step is a result; the next step still runs
            report.add(name, "error", f"{type(exc).__name__}: {str(exc)[:150]}", "FAIL")
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            report.write()
    elapsed = time.perf_counter() - start
    report.header["elapsed"] = f"{elapsed:.0f} s of {args.budget_s:.0f} s"
    report.write()
    print(f"wrote {args.results} ({elapsed:.0f} s)", flush=True)
    return 1 if any(row[3] == "FAIL" for row in report.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
