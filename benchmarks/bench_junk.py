"""Particles that are not the molecule at their pose, named by ``cryosplat score`` and left out.

A real particle set holds junk that 2D and 3D classification did not catch: empty ice picked as
particles, and particles whose refinement gave them a wrong pose. For each catalogue set (made by
:mod:`bench_datasets` with ``relion_project``) this benchmark makes a copy in which

* ``--wrong-poses`` of the particles (15 % by default) carry another particle's pose (its angles
  and origin): the molecule, at a pose the metadata does not give;
* ``--noise-images`` of them (10 %) are images of noise alone: their own image with its Fourier
  phases made random (the same power spectrum, the molecule's signal gone);
* ``--other-molecule`` of them (none by default) hold another molecule instead of the set's, as a
  contaminant or a complex fallen apart gives: their image less the set's noise-free projection
  (``relion_project`` of the truth along the poses and CTF the set was made with), plus that of
  ``--other-map`` (resampled to the set's pixel and box) scaled to the same signal variance, so
  the noise is the image's own;

both written into one RELION 3.1 STAR file and one stack. Then, on the set as made and on the
copy: ``cryosplat reconstruct``, ``cryosplat score`` of its run, ``cryosplat reconstruct
--ind kept.npy`` and ``--weights weights.npy`` (every particle, weighed by its chance of holding
the molecule); ``relion_reconstruct --ctf`` of every particle and of the particles cryosplat
kept; and, for reference, cryosplat on the genuine particles only. The tables give what was named
(of each kind of junk, and of the genuine particles) and each map's FSC with the truth.

Example::

    python benchmarks/bench_junk.py --out bench_out/junk
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from bench_datasets import SHARED, make_dataset
from bench_methods import _cryosplat_script, run_cryosplat, run_relion
from bench_variants import parse_args, print_table, project_again, table_row
from run_benchmarks import selected_specs

from cryosplat.io.mrc import read_map, write_map, write_stack
from cryosplat.io.star import write_relion31_particles
from cryosplat.particles.read import read_particles
from cryosplat.particles.star_tables import write_star_rows

DEFAULT_SETS = "emd5625_c,emd1832_c,betagal_c"
KINDS = ("genuine", "wrong pose", "noise image", "other molecule")
OTHER_MAPS = ("maps/emd_6824.mrc", "maps/emd_1832.map")  # the first that is not the set's own


def phase_randomised(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``images`` (B, D, D) with their Fourier phases made random (a real image's: the phases of
    a white noise image), their amplitudes kept."""
    amplitude = np.abs(np.fft.rfft2(images))
    phase = np.angle(np.fft.rfft2(rng.standard_normal(images.shape)))
    shape = images.shape[-2:]
    return np.fft.irfft2(amplitude * np.exp(1j * phase), s=shape).astype(np.float32)


def resampled_map(source: Path, box: int, pixel_size_angstrom: float) -> np.ndarray:
    """The map ``source`` resampled (trilinearly) to ``pixel_size_angstrom`` and cut or padded
    with zeros about its centre to ``box`` (a contaminant's density: its centre to a voxel)."""
    volume, voxel = read_map(source)
    volume = torch.nn.functional.interpolate(
        torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None],
        scale_factor=voxel / pixel_size_angstrom,
        mode="trilinear",
    )[0, 0].numpy()
    out = np.zeros((box,) * 3, dtype=np.float32)
    n = volume.shape[0]
    take, put = slice(max(n // 2 - box // 2, 0), None), slice(max(box // 2 - n // 2, 0), None)
    part = volume[take, take, take][:box, :box, :box]
    m = part.shape[0]
    out[put, put, put][:m, :m, :m] = part
    return out


def other_molecule_images(data, rows: np.ndarray, other_map: Path, folder: Path) -> np.ndarray:
    """The images at ``rows`` with the set's molecule replaced by the map ``other_map``'s (module
    docstring), (R, D, D)."""
    box, pixel = data.spec.box, data.spec.pixel_size_angstrom
    images = {}
    for name, write in (
        ("truth", lambda path: write_map(path, read_map(data.truth)[0], pixel)),
        ("other", lambda path: write_map(path, resampled_map(other_map, box, pixel), pixel)),
    ):
        work = folder / f"project_{name}"
        work.mkdir(parents=True, exist_ok=True)
        write(work / "map.mrc")
        images[name] = project_again(data, rows, work / "map.mrc", box, work).read(
            np.arange(len(rows))
        )
    scale = np.sqrt(images["truth"].var() / images["other"].var())
    own = read_particles(data.star).read_images(rows)
    return (own - images["truth"] + scale * images["other"]).astype(np.float32)


def junk_copy(
    data,
    folder: Path,
    wrong_poses: float,
    noise_images: float,
    other_molecule: float = 0.0,
    seed: int = 7,
):
    """The copy of ``data`` with junk (module docstring) in ``folder``: its STAR file and each
    particle's kind (an index into :data:`KINDS`), saved beside as ``kinds.npy``."""
    star, kinds_path = folder / "particles.star", folder / "kinds.npy"
    if star.is_file() and kinds_path.is_file():
        return star, np.load(kinds_path)
    folder.mkdir(parents=True, exist_ok=True)
    particles = read_particles(data.star)
    n = len(particles)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_pose, n_noise = int(round(wrong_poses * n)), int(round(noise_images * n))
    n_other = int(round(other_molecule * n))
    kinds = np.zeros(n, dtype=np.int64)
    kinds[order[:n_pose]] = 1
    kinds[order[n_pose : n_pose + n_noise]] = 2
    kinds[order[n_pose + n_noise : n_pose + n_noise + n_other]] = 3
    # A wrong pose: another particle's (a cyclic shift of the chosen rows: never one's own).
    moved = order[:n_pose]
    source = np.roll(moved, 1)
    rotations, shifts = particles.rotations.copy(), particles.shifts_angstrom.copy()
    rotations[moved], shifts[moved] = rotations[source], shifts[source]
    images = particles.read_images(np.arange(n))
    noise_rows = np.flatnonzero(kinds == 2)
    images[noise_rows] = phase_randomised(images[noise_rows], rng)
    if n_other:
        own = Path(data.spec.model).name
        other_map = SHARED / next(m for m in OTHER_MAPS if Path(m).name != own)
        other_rows = np.flatnonzero(kinds == 3)
        images[other_rows] = other_molecule_images(data, other_rows, other_map, folder)
    write_stack(folder / "particles.mrcs", images, data.spec.pixel_size_angstrom)
    write_relion31_particles(
        star,
        image_names=[f"{i + 1:06d}@particles.mrcs" for i in range(n)],
        rotations=rotations,
        shifts_angstrom=shifts,
        ctf=particles.ctf,
        pixel_size_angstrom=data.spec.pixel_size_angstrom,
        box=particles.box,
        random_subset=particles.random_subset,
    )
    np.save(kinds_path, kinds)
    return star, kinds


def score(star: Path, run: Path, out: Path, ind: Path | None = None) -> tuple[np.ndarray, str]:
    """``cryosplat score`` of ``run`` (made from the rows ``ind`` lists, if given): the named rows
    and its summary line."""
    exe = _cryosplat_script()
    command = [exe, "score", str(star), "--run", str(run), "-o", str(out), "--no-progress"]
    command += ["--overwrite"] + (["--ind", str(ind)] if ind is not None else [])
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return np.load(out / "named.npy"), done.stdout.splitlines()[0]


def detection_row(name: str, label: str, named: np.ndarray, kind_of: np.ndarray) -> str:
    """The detection table's row: how many of each kind of particle ``named`` holds."""
    counts = []
    for k, kind in enumerate(KINDS):
        total = int((kind_of == k).sum())
        if total:
            hit = int(np.isin(np.flatnonzero(kind_of == k), named).sum())
            counts.append(f"{kind} {hit}/{total} ({100 * hit / total:.1f} %)")
    return f"| {name} | {label} | {len(named)} | {'; '.join(counts)} |"


def curve_row(name: str, method: str, work: Path) -> str:
    """Whole curves of ``method`` on a set with junk: the kept particles' map's FSC with the
    truth minus every particle's, from shell 1 to where the latter crosses 0.143."""
    curves = {}
    for which in ("all", "kept", "weighted", "genuine"):
        path = work / f"{method}_{which}" / f"{method}_fsc_truth.npy"
        if path.is_file():
            curves[which] = np.load(path)
    every, kept = curves["all"], curves["kept"]
    below = np.flatnonzero(every[1:] < 0.143)
    shells = slice(1, 1 + int(below[0]) if below.size else len(every))
    gain = (kept - every)[shells]

    def mean_gain(which: str) -> str:
        return f"{np.mean((curves[which] - every)[shells]):+.4f}" if which in curves else "—"

    return (
        f"| {name} | {method} | {gain.mean():+.4f} | {gain.min():+.4f} ({1 + int(gain.argmin())}) "
        f"| {mean_gain('weighted')} | {mean_gain('genuine')} |"
    )


def _row(labels: tuple[str, str], which: str, made, data, out: Path) -> str:
    """The table row of ``made`` (its FSC curve with the truth kept in ``out``)."""
    return table_row((*labels, which), made, data.truth, data.spec.pixel_size_angstrom, out)


def main(argv: list[str] | None = None) -> int:
    options = {
        "--wrong-poses": {"type": float, "default": 0.15},
        "--noise-images": {"type": float, "default": 0.10},
        "--other-molecule": {"type": float, "default": 0.0},
    }
    args = parse_args(__doc__, DEFAULT_SETS, argv, options)
    detection, maps = [], []
    for spec in selected_specs(args.datasets.split(","), quick=False):
        data = make_dataset(spec, args.cache)
        pixel = spec.pixel_size_angstrom
        folder = args.out / "copies" / spec.name
        star, kinds = junk_copy(
            data, folder, args.wrong_poses, args.noise_images, args.other_molecule
        )
        genuine = folder / "genuine.npy"
        np.save(genuine, np.flatnonzero(kinds == 0))
        for label, source, kind_of in (
            ("as made", data.star, np.zeros(len(kinds), dtype=np.int64)),
            ("with junk", star, kinds),
        ):
            work = args.out / "runs" / spec.name / label.replace(" ", "_")
            labels = (spec.name, label)
            out = work / "cryosplat_all"
            maps.append(_row(labels, "all", run_cryosplat(source, out), data, out))
            named, line = score(source, out / "run", work / "scores")
            print(f"{spec.name} {label}: {line}", flush=True)
            detection.append(detection_row(spec.name, label, named, kind_of))
            kept = work / "scores" / "kept.npy"
            out = work / "cryosplat_kept"
            made = run_cryosplat(source, out, ["--ind", str(kept)])
            maps.append(_row(labels, "kept", made, data, out))
            # a second round: the kept particles scored against the map made from them alone
            again, line = score(source, out / "run", work / "scores_again", kept)
            print(f"{spec.name} {label}, kept, scored again: {line}", flush=True)
            detection.append(
                detection_row(spec.name, f"{label}, kept, scored again", again, kind_of)
            )
            # the junk weighed by its chance of being junk (score's weights.npy), none left out
            out = work / "cryosplat_weighted"
            made = run_cryosplat(source, out, ["--weights", str(work / "scores" / "weights.npy")])
            maps.append(_row(labels, "weighted", made, data, out))
            if label == "as made":
                continue
            out = work / "relion_all"
            maps.append(_row(labels, "all", run_relion(source, out, pixel), data, out))
            kept_star = folder / "kept.star"  # for RELION: the rows cryosplat kept
            write_star_rows(source, np.load(kept), kept_star)
            out = work / "relion_kept"
            maps.append(_row(labels, "kept", run_relion(kept_star, out, pixel), data, out))
            out = work / "cryosplat_genuine"
            made = run_cryosplat(source, out, ["--ind", str(genuine)])
            maps.append(_row(labels, "genuine", made, data, out))
    print("\n| set | particles | named | named of each kind |\n|---|---|---|---|")
    print("\n".join(detection))
    print_table("set | particles | reconstructed", maps)
    print(
        "\n| set | method | kept − all, mean | lowest (shell) | weighted − all, mean "
        "| genuine − all, mean |"
    )
    print("|---|---|---|---|---|---|")
    for spec in selected_specs(args.datasets.split(","), quick=False):
        work = args.out / "runs" / spec.name / "with_junk"
        for method in ("cryosplat", "relion"):
            print(curve_row(spec.name, method, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
