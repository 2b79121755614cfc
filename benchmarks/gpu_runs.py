"""The cryosplat commands of the GPU check (:mod:`bench_gpu`), each in a subprocess with this
checkout's ``src`` first on the path: simulate, reconstruct, a rounding-perturbed copy of a set,
and ``nvidia-smi``'s memory sampled while a command runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mrcfile
import numpy as np
import torch
from gpu_kernels import PARTICLE_EXTENT_ANGSTROM

ROOT = Path(__file__).resolve().parents[1]


def env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return env


def cli(args_list: list[str], timeout: float, log_path: Path) -> tuple[bool, float, str]:
    """Run ``cryosplat ARGS``; ``(ok, wall seconds, last error line)``."""
    cmd = [sys.executable, "-m", "cryosplat.cli.main", *args_list]
    start = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            code = subprocess.run(
                cmd, cwd=ROOT, env=env(), stdout=log, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            return False, time.perf_counter() - start, f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - start
    tail = log_path.read_text().strip().splitlines()
    return code == 0, wall, (tail[-1][:150] if tail else f"exit code {code}")


def simulate(folder: Path, n: int, box: int, device: torch.device, timeout: float):
    """``cryosplat simulate`` of 8ZPM into ``folder`` (reused when already there)."""
    star = folder / "particles.star"
    if star.is_file() and (folder / "simulated.json").is_file():
        return True, 0.0, "reused"
    if folder.exists():
        shutil.rmtree(folder)
    model = ROOT / "src" / "cryosplat" / "data" / "8zpm.cif"
    pixel = PARTICLE_EXTENT_ANGSTROM / box
    args_list = ["simulate", str(model), "-o", str(folder), "-n", str(n), "--box", str(box)]
    args_list += ["--pixel-size", f"{pixel:.4f}", "--snr", "0.01", "--shift-sd", "2.0"]
    args_list += ["--astigmatism", "300", "--projection", "fourier", "--device", str(device)]
    args_list += ["--batch-size", "512" if device.type == "cuda" else "128", "--quiet"]
    log = folder.parent / f"{folder.name}_simulate.log"
    folder.parent.mkdir(parents=True, exist_ok=True)
    ok, wall, last = cli(args_list, timeout, log)
    if ok:
        (folder / "simulated.json").write_text(json.dumps({"n": n, "box": box}))
    return ok, wall, last


class SmiSampler:
    """``nvidia-smi`` memory.used sampled every 200 ms while a command runs (MiB)."""

    def __init__(self, path: Path) -> None:
        self.path, self.proc = path, None
        smi = shutil.which("nvidia-smi")
        if smi:
            self.file = open(path, "w")
            self.proc = subprocess.Popen(
                [smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=self.file,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> float | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.file.close()
        values = [float(v) for v in self.path.read_text().split() if v.replace(".", "").isdigit()]
        return max(values) if values else None


def reconstruct(star: Path, out: Path, device: str, timeout: float, args, extra=()):
    """``cryosplat reconstruct`` into a fresh ``out``; ``(ok, wall, last line, run.json)``."""
    if out.exists():
        shutil.rmtree(out)
    args_list = ["reconstruct", str(star), "-o", str(out), "--device", device, "--no-progress"]
    args_list += list(args.sizes.reconstruct_args) + list(extra)
    if args.threads:
        args_list += ["--threads", str(args.threads)]
    ok, wall, last = cli(args_list, timeout, out.parent / f"{out.name}.log")
    run = out / "run.json"
    summary = json.loads(run.read_text()) if ok and run.is_file() else {}
    return ok, wall, last, summary.get("summary", summary)


def perturbed_copy(folder: Path, relative: float, seed: int = 0) -> Path:
    """A copy of a simulated set whose images carry noise of ``relative`` × their s.d. (rounding)."""
    copy = folder.parent / f"{folder.name}_perturbed"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(folder, copy)
    rng = np.random.default_rng(seed)
    for stack in sorted(copy.glob("*.mrcs")):
        with mrcfile.mmap(stack, mode="r+") as mrc:
            data = mrc.data
            scale = relative * float(data[: min(len(data), 256)].std())
            for start in range(0, len(data), 256):
                block = data[start : start + 256]
                block += (scale * rng.standard_normal(block.shape)).astype(block.dtype)
    return copy
