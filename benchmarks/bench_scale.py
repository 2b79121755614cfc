"""Paper-scale benchmark, scaled down to a small shared machine: many stacks, large boxes.

``python benchmarks/bench_scale.py make`` makes the data set (cached under ``bench_out/scale``):
5A1A (beta-galactosidase) at box 256, 1.3 Å/px, projected by ``relion_project --ctf`` with real
EMPIAR-10028 defocus values and white noise (:mod:`bench_datasets`), then re-written as stacks of
``--per-stack`` images each, as RELION's extraction writes one stack per micrograph.

``python benchmarks/bench_scale.py run`` measures, each as its own process (wall time and peak RSS
by ``/usr/bin/time``), ``cryosplat reconstruct`` (default plan and ``--max-resolution``) and
``relion_reconstruct --ctf`` (full map, same ``--maxres``), scores each map against the truth
(FSC 0.5, soft spherical mask; a map at a cropped box against the truth Fourier-cropped to it).

``python benchmarks/bench_scale.py flat --box 128 --sizes 2000,10000`` runs the statistics pass
alone and ``relion_reconstruct --ctf`` on blob-and-noise sets of growing size
(:mod:`cryosplat.simulate.noise_stacks`): peak memory against the particle count, particles per
second. ``python benchmarks/bench_scale.py rate -n 50000 --noise coloured --sizes 1500,4500``
rates the statistics pass per core against relion_reconstruct's back-projection on the first
particles of the box-256 set (two sizes, by the difference). ``python benchmarks/bench_scale.py table`` prints the tables of ``benchmarks/RESULTS.md``
("Paper scale") from the saved results.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_datasets import DatasetSpec, make_dataset  # noqa: E402
from bench_methods import measure  # noqa: E402
from bench_report import score_maps  # noqa: E402

from cryosplat.io.mrc import MRCStack, read_map, write_map  # noqa: E402
from cryosplat.io.star import write_relion31_particles  # noqa: E402
from cryosplat.particles.read import read_particles  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "bench_out" / "scale"
DEFAULT_SNR = 0.005


def spec(
    n_particles: int,
    box: int = 256,
    pixel: float = 1.3,
    noise: str = "white",
    snr: float = DEFAULT_SNR,
) -> DatasetSpec:
    """5A1A with real defocus (EMPIAR-10028's CTF table), SNR 0.005 unless told, white or coloured
    noise (the radial spectrum of real particle images, :func:`bench_noise.coloured_noise_profile`)."""
    return DatasetSpec(
        "5a1a_" + _name(n_particles, box, noise, snr),
        "models/5a1a.cif",
        box,
        pixel,
        n_particles,
        snr,
        ctf_table="metadata/empiar10028_ctf.pkl",
        cs_mm=2.0,
        noise=noise,
    )


def _name(n_particles: int, box: int, noise: str, snr: float) -> str:
    name = f"{box}_{n_particles}" + ("_c" if noise == "coloured" else "")
    return name if snr == DEFAULT_SNR else f"{name}_snr{snr:g}"


def split_into_stacks(star: Path, per_stack: int) -> Path:
    """Re-write ``star``'s single stack as stacks of ``per_stack`` images (``mics/mic_NNNNN.mrcs``)."""
    out = star.with_name(f"particles_{per_stack}.star")
    if out.is_file():
        return out
    from cryosplat.io.mrc import write_stack

    particles = read_particles(star)
    stack = MRCStack(particles.stacks[0].path)
    folder = star.parent / "mics"
    folder.mkdir(exist_ok=True)
    names = []
    for s, start in enumerate(range(0, len(particles), per_stack)):
        rows = np.arange(start, min(len(particles), start + per_stack))
        write_stack(folder / f"mic_{s:05d}.mrcs", stack.read(rows), particles.pixel_size_angstrom)
        names += [f"{k + 1:06d}@mics/mic_{s:05d}.mrcs" for k in range(rows.size)]
    write_relion31_particles(
        out,
        image_names=names,
        rotations=particles.rotations,
        shifts_angstrom=particles.shifts_angstrom,
        ctf=particles.ctf,
        pixel_size_angstrom=particles.pixel_size_angstrom,
        box=particles.box,
        random_subset=particles.random_subset,
    )
    return out


def make(
    n_particles: int, box: int, per_stack: int, noise: str = "white", snr: float = DEFAULT_SNR
) -> tuple[Path, Path]:
    data = make_dataset(spec(n_particles, box, noise=noise, snr=snr), ROOT / "datasets")
    return split_into_stacks(data.star, per_stack), data.truth


def run(args: argparse.Namespace) -> list[dict]:
    star, truth = make(args.n, args.box, args.per_stack, args.noise, args.snr)
    pixel = read_particles(star).pixel_size_angstrom
    out = ROOT / f"runs_{_name(args.n, args.box, args.noise, args.snr)}"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    cases = [
        ("cryosplat --max-resolution", ["--max-resolution", str(args.res)]),
        ("cryosplat full box", []),
    ]
    exe = [sys.executable, "-m", "cryosplat.cli.main", "reconstruct", str(star)]
    for label, extra in cases:
        if not _selected(label, args.only):
            continue
        folder = out / label.replace(" ", "").replace("--", "_")
        cmd = [*exe, "-o", str(folder / "run"), "--no-progress", *extra, *args.cryosplat_args]
        folder.mkdir(exist_ok=True)
        cost = measure(cmd, folder, folder / "log.txt")
        rows.append(_row(label, cost, folder / "run" / "map.mrc", truth, pixel))
    for label, extra in (
        ("relion_reconstruct --ctf", []),
        ("relion --maxres", ["--maxres", str(args.res)]),
    ):
        if not _selected(label, args.only):
            continue
        path = out / f"relion{len(extra)}.mrc"
        cmd = [
            "relion_reconstruct",
            "--i",
            star.name,
            "--ctf",
            "--angpix",
            str(pixel),
            "--o",
            str(path),
            *extra,
        ]
        cost = measure(cmd, star.parent, out / f"relion{len(extra)}.log")
        rows.append(_row(label, cost, path, truth, pixel))
    if _selected("cryodrgn backproject_voxel", args.only):
        from bench_methods import ensure_cryodrgn, run_cryodrgn

        box = read_particles(star).box
        result = run_cryodrgn(ensure_cryodrgn(), star, out / "cryodrgn", box, pixel)
        rows.append(
            _row("cryodrgn backproject_voxel", result.measured, result.full_map, truth, pixel)
        )
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def crop_volume(volume: np.ndarray, box: int) -> np.ndarray:
    """Fourier-crop a cubic map (D, D, D) to (box, box, box), values kept."""
    size = volume.shape[0]
    spectrum = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(volume)))
    lo = size // 2 - box // 2
    kept = spectrum[lo : lo + box, lo : lo + box, lo : lo + box]
    small = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(kept))).real * (box / size) ** 3
    return small.astype(np.float32)


def _selected(label: str, only: str | None) -> bool:
    return only is None or any(part in label for part in only.split(","))


def _row(label, cost, map_path, truth, pixel) -> dict:
    """Score a map against the truth, Fourier-cropped to the map's box when that is smaller."""
    volume, voxel = read_map(map_path)
    if volume.shape[0] != read_map(truth)[0].shape[0]:
        small = map_path.with_name(f"truth_{volume.shape[0]}.mrc")
        write_map(small, crop_volume(read_map(truth)[0], volume.shape[0]), voxel)
        truth, pixel = small, voxel
    score = {
        key: value.tolist() if isinstance(value, np.ndarray) else value
        for key, value in asdict(score_maps(truth, map_path, None, pixel)).items()
    }
    return {
        "method": label,
        "wall_s": cost.wall_s,
        "peak_mib": cost.peak_mib,
        "box": volume.shape[0],
        **score,
    }


STATISTICS_ONLY = """
import sys, time
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.gather import accumulate
particles = read_particles(sys.argv[1])
start = time.monotonic()
stats = accumulate(particles)
print(f"{len(particles) / (time.monotonic() - start):.1f} particles/s")
"""


def flat(args: argparse.Namespace) -> list[dict]:
    """Statistics pass (and relion_reconstruct) on blob-and-noise sets of growing size, one box."""
    from cryosplat.simulate.noise_stacks import NoiseStacksConfig, write_noise_particles

    rows = []
    for n in args.sizes:
        folder = ROOT / "flat" / f"noise_{args.box}_{n}"
        star = folder / "particles.star"
        if not star.is_file():
            write_noise_particles(folder, NoiseStacksConfig(n, args.box, 2.0, args.per_stack))
        log = folder / "statistics.log"
        cost = measure([sys.executable, "-c", STATISTICS_ONLY, str(star)], folder, log)
        rate = log.read_text().split()[-2]
        rows.append(
            {
                "method": "cryosplat statistics pass",
                "n": n,
                "box": args.box,
                "wall_s": cost.wall_s,
                "peak_mib": cost.peak_mib,
                "rate": rate,
            }
        )
        if "relion" in (args.only or "relion"):
            cmd = [
                "relion_reconstruct",
                "--i",
                "particles.star",
                "--ctf",
                "--angpix",
                "2.0",
                "--o",
                "relion.mrc",
            ]
            cost = measure(cmd, folder, folder / "relion.log")
            rows.append(
                {
                    "method": "relion_reconstruct --ctf",
                    "n": n,
                    "box": args.box,
                    "wall_s": cost.wall_s,
                    "peak_mib": cost.peak_mib,
                    "rate": f"{n / cost.wall_s:.1f}",
                }
            )
        print(rows[-1] if len(rows) < 2 else rows[-2:])
    out = ROOT / "flat" / f"results_{args.box}.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


HALVES_STATISTICS = """
import sys, threading, time
import numpy as np, torch
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.gather import accumulate
torch.set_num_threads(1)
particles, n = read_particles(sys.argv[1]), int(sys.argv[2])
start = time.monotonic()
halves = [threading.Thread(target=accumulate, args=(particles, np.arange(i, 2 * n, 2))) for i in (0, 1)]
[t.start() for t in halves]
[t.join() for t in halves]
print(f"{time.monotonic() - start:.3f} seconds")
"""


def _first_rows(star: Path, n: int, out: Path) -> Path:
    """A STAR of the first ``n`` particle rows of ``star`` (a RELION 3.1 file, images in place)."""
    lines = star.read_text().splitlines()
    block = max(i for i, line in enumerate(lines) if line.startswith("data_particles"))
    header = block + max(i for i, line in enumerate(lines[block:]) if line.startswith("_rln")) + 1
    out.write_text("\n".join(lines[:header] + lines[header : header + n]) + "\n")
    return out


def rate(args: argparse.Namespace) -> list[dict]:
    """Statistics pass per core against relion_reconstruct's back-projection, same machine.

    Both are timed at two sizes and rated by the difference, which removes what does not grow
    with the particles (start-up, grid allocation, RELION's final gridding iterations):
    cryosplat as the engine runs it on a CPU (the two halves side by side, one thread each, 2
    cores), relion_reconstruct --ctf single-threaded (1 core).
    """
    star, _ = make(args.n, args.box, args.per_stack, args.noise, args.snr)
    folder = star.parent
    rows = []
    small, large = args.sizes
    seconds = {}
    for n in (small, large):
        subset = _first_rows(star, n, folder / f"first_{n}.star")
        log = folder / f"first_{n}.statistics.log"
        measure([sys.executable, "-c", HALVES_STATISTICS, subset.name, str(n // 2)], folder, log)
        relion_log = folder / f"first_{n}.relion.log"
        relion = measure(
            ["relion_reconstruct", "--i", subset.name, "--ctf", "--o", f"first_{n}.mrc"],
            folder,
            relion_log,
        )
        seconds[n] = (float(log.read_text().split()[-2]), relion.wall_s)
    ours = (large - small) / (seconds[large][0] - seconds[small][0]) / 2
    theirs = (large - small) / (seconds[large][1] - seconds[small][1])
    for method, per_core, cores in (
        ("cryosplat statistics pass (halves side by side)", ours, 2),
        ("relion_reconstruct --ctf back-projection", theirs, 1),
    ):
        rows.append({"method": method, "box": args.box, "cores": cores, "per_core": per_core})
    rows.append({"method": "ratio", "box": args.box, "cores": 0, "per_core": ours / theirs})
    out = ROOT / f"rate_{args.box}.json"
    out.write_text(json.dumps({"seconds": seconds, "rows": rows}, indent=2) + "\n")
    return rows


def table() -> str:
    """The "Paper scale" tables of RESULTS.md from the saved results."""
    lines = [
        "| data set | method | box used | wall (s) | peak RSS (MiB) | FSC-truth 0.5 (Å) |",
        "|---|---|---|---|---|---|",
    ]
    for path in sorted(ROOT.glob("runs_*/results.json")):
        for r in json.loads(path.read_text()):
            lines.append(
                f"| {path.parent.name[5:]} | {r['method']} | {r['box']} | {r['wall_s']:.0f} | "
                f"{r['peak_mib']:.0f} | {r['truth_05']:.2f} |"
            )
    lines += [
        "",
        "| blob-and-noise set | method | particles | wall (s) | peak RSS (MiB) | particles/s |",
        "|---|---|---|---|---|---|",
    ]
    for path in sorted(ROOT.glob("flat/results_*.json")):
        for r in json.loads(path.read_text()):
            lines.append(
                f"| box {r['box']}, stacks of 100 | {r['method']} | {r['n']} | {r['wall_s']:.0f} | "
                f"{r['peak_mib']:.0f} | {r['rate']} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("make", "run", "flat", "rate", "table"))
    p.add_argument("-n", type=int, default=2000, help="particles")
    p.add_argument("--box", type=int, default=256)
    p.add_argument("--sizes", type=lambda t: [int(x) for x in t.split(",")], default=[2000, 10000])
    p.add_argument("--per-stack", type=int, default=100)
    p.add_argument("--noise", choices=("white", "coloured"), default="white")
    p.add_argument("--snr", type=float, default=DEFAULT_SNR, help="signal-to-noise ratio")
    p.add_argument("--res", type=float, default=6.0, help="--max-resolution / --maxres (Å)")
    p.add_argument(
        "--only", help="run only the methods whose label contains one of these (comma-separated)"
    )
    p.add_argument("--cryosplat-args", nargs=argparse.REMAINDER, default=[])
    args = p.parse_args()
    if args.what == "table":
        print(table())
        return
    if args.what == "flat":
        flat(args)
        return
    if args.what == "rate":
        for row in rate(args):
            print(row)
        return
    if args.what == "make":
        print(make(args.n, args.box, args.per_stack, args.noise, args.snr))
        print(json.dumps(asdict(spec(args.n, args.box, noise=args.noise, snr=args.snr)), indent=1))
        return
    for row in run(args):
        print(row)


if __name__ == "__main__":
    main()
