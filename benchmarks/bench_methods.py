"""The reconstruction methods compared by the benchmark, each run as a separate measured process.

* ``cryosplat``: ``cryosplat reconstruct particles.star -o OUT`` (map, two half maps, FSC);
* ``relion``: ``relion_reconstruct --ctf`` for the full map and for each ``rlnRandomSubset`` half;
* ``cryodrgn``: ``cryodrgn parse_pose_star`` / ``parse_ctf_star`` then ``backproject_voxel`` (which
  writes the full map and two half maps), in its own virtual environment (:func:`ensure_cryodrgn`),
  never a dependency of cryosplat.

Wall time and peak resident memory are taken per process by ``/usr/bin/time -f "%e %M"`` (the
command's own maximum resident set size).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CRYODRGN_VENV = Path("/opt/cryodrgn-venv")
CRYODRGN_TORCH = "torch==2.13.0"


@dataclass
class Measured:
    """Wall time (s), CPU time (s, user + system) and peak resident memory (MiB) of processes.

    On a machine shared with other work the CPU time is the steadier measure of cost.
    """

    wall_s: float = 0.0
    peak_mib: float = 0.0
    cpu_s: float = 0.0

    def add(self, other: Measured) -> None:
        self.wall_s += other.wall_s
        self.cpu_s += other.cpu_s
        self.peak_mib = max(self.peak_mib, other.peak_mib)


@dataclass
class MethodRun:
    """Maps made by one method on one data set, and what making them cost.

    ``measured`` covers every process needed for the full map and the two half maps; ``notes``
    says what else a reader should know (e.g. how the full map alone cost, a map flip).
    """

    method: str
    full_map: Path
    half_maps: tuple[Path, Path] | None
    measured: Measured
    notes: list[str] = field(default_factory=list)
    hand_flip_axes: tuple[int, ...] = ()


def measure(cmd: list[str], cwd: Path, log_path: Path, env: dict | None = None) -> Measured:
    """Run ``cmd`` in ``cwd`` (output to ``log_path``), raising on failure; return its cost.

    The peak memory is ``/usr/bin/time``'s ``%M`` (the command's own maximum resident set). Without
    ``/usr/bin/time`` it is ``os.wait4``'s, which can include the pages of this Python process at
    the fork (the maximum survives ``exec``), so it is then an upper bound.
    """
    timer = Path("/usr/bin/time")
    usage_file = log_path.with_suffix(".time")
    full = (
        [str(timer), "-f", "%e %M", "-o", str(usage_file), *map(str, cmd)]
        if timer.is_file()
        else [str(c) for c in cmd]
    )
    with open(log_path, "w") as log:
        start = time.monotonic()
        proc = subprocess.Popen(full, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(
            f"{Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''} exited with "
            f"{proc.returncode} (log {log_path}): " + " / ".join(tail)
        )
    peak_kib = usage.ru_maxrss
    if timer.is_file():
        fields = usage_file.read_text().split()
        wall, peak_kib = float(fields[-2]), int(fields[-1])
    return Measured(wall, peak_kib / 1024.0, usage.ru_utime + usage.ru_stime)


def ensure_cryodrgn(venv: Path = CRYODRGN_VENV, log=print) -> Path | None:
    """The ``cryodrgn`` program of a virtual environment, created with pip when missing.

    Returns None (after logging why) when it cannot be made, so the caller can skip cryoDRGN.
    """
    exe = venv / "bin" / "cryodrgn"
    if exe.is_file():
        return exe
    log(f"[cryodrgn] creating {venv} (pip install {CRYODRGN_TORCH} cryodrgn)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", CRYODRGN_TORCH, "cryodrgn"],
            check=True,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        log(f"[cryodrgn] could not create the environment: {exc}")
        return None
    return exe if exe.is_file() else None


def _thread_env() -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    return env


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _cryosplat_script() -> str:
    """The console script next to this Python, else the first on ``PATH``. Not ``PATH`` first: a
    version manager's shim there (pyenv's is a shell script that runs ``pyenv exec``) adds 0.1 s
    to every timed run, which is no part of cryosplat (relion's binary is run directly)."""
    beside = Path(sys.executable).with_name("cryosplat")
    return str(beside) if beside.is_file() else (shutil.which("cryosplat") or str(beside))


def run_cryosplat(star: Path, out: Path, extra: list[str] | None = None) -> MethodRun:
    """``cryosplat reconstruct STAR -o OUT/run`` (the console script next to this Python)."""
    exe = _cryosplat_script()
    _fresh(out)
    run = out / "run"
    cost = measure(
        [exe, "reconstruct", str(star), "-o", str(run), "--no-progress", *(extra or [])],
        out,
        out / "cryosplat.log",
        env=_thread_env(),
    )
    return MethodRun(
        "cryosplat", run / "map.mrc", (run / "half_map_A.mrc", run / "half_map_B.mrc"), cost
    )


def relion_command(star: Path, pixel_size_angstrom: float, symmetry: str = "C1") -> list[str]:
    """``relion_reconstruct --ctf`` of the full set (without ``--o``), run in the STAR's folder."""
    return [
        "relion_reconstruct",
        "--i",
        star.name,
        "--ctf",
        "--angpix",
        f"{pixel_size_angstrom}",
        "--sym",
        symmetry,
    ]


def run_relion(
    star: Path, out: Path, pixel_size_angstrom: float, symmetry: str = "C1"
) -> MethodRun:
    """``relion_reconstruct --ctf --sym G`` for the full map, then ``--subset 1`` and ``--subset 2``.

    Run in the STAR's folder, since RELION resolves image names against the working directory.
    """
    _fresh(out)
    base = relion_command(star, pixel_size_angstrom, symmetry)
    total = Measured()
    paths = []
    for label, extra in (("full", []), ("half1", ["--subset", "1"]), ("half2", ["--subset", "2"])):
        path = out / f"relion_{label}.mrc"
        cost = measure([*base, "--o", str(path), *extra], star.parent, out / f"relion_{label}.log")
        if label == "full":
            full_cost = cost
        total.add(cost)
        paths.append(path)
    note = f"full map alone {full_cost.wall_s:.1f} s; halves by --subset 1/2 (single-threaded)"
    return MethodRun("relion", paths[0], (paths[1], paths[2]), total, [note])


def run_cryodrgn(
    exe: Path, star: Path, out: Path, box: int, pixel_size_angstrom: float
) -> MethodRun:
    """Parse poses and CTF from the STAR, then ``backproject_voxel`` (full map and halves)."""
    _fresh(out)
    total = Measured()
    size = ["-D", str(box), "--Apix", f"{pixel_size_angstrom}"]
    total.add(
        measure(
            [str(exe), "parse_pose_star", str(star), "-o", str(out / "poses.pkl"), *size],
            out,
            out / "parse_pose_star.log",
        )
    )
    total.add(
        measure(
            [str(exe), "parse_ctf_star", str(star), "-o", str(out / "ctf.pkl"), *size],
            out,
            out / "parse_ctf_star.log",
        )
    )
    recon = out / "backproject"
    total.add(
        measure(
            [
                str(exe),
                "backproject_voxel",
                str(star),
                "--datadir",
                str(star.parent),
                "--poses",
                str(out / "poses.pkl"),
                "--ctf",
                str(out / "ctf.pkl"),
                "-o",
                str(recon),
            ],
            out,
            out / "backproject_voxel.log",
            env=_thread_env(),
        )
    )
    return MethodRun(
        "cryodrgn",
        recon / "backproject.mrc",
        (recon / "half_map_a.mrc", recon / "half_map_b.mrc"),
        total,
    )
