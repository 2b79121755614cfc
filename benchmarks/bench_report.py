"""Scores of a reconstruction against the truth and the results table (``RESULTS.md``).

FSCs are computed with a soft spherical mask (:func:`cryosplat.validation.masks.spherical_mask`, the same for
every method) with :mod:`cryosplat.validation.fsc` (shells of one Fourier pixel). For cryosplat the half-map
column holds the resolution it reports (``fsc.json``: each half model cross-validated against the
other half's data); for the peers, the masked FSC of their half maps at 0.143.
The hand of each map is checked: its correlation with the truth and with the truth mirrored
(``z → -z`` about the box centre) are both computed, and the larger tells the hand.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from cryosplat.io.mrc import read_map
from cryosplat.validation.fsc import fsc, resolution_at
from cryosplat.validation.masks import spherical_mask

COLUMNS = (
    "method",
    "dataset",
    "particles",
    "FSC-truth 0.5 (Å)",
    "FSC-truth 0.143 (Å)",
    "half-map 0.143 (Å)",
    "wall time (s)",
    "peak memory (MiB)",
    "notes",
)


@dataclass
class Score:
    """Resolutions (Å) of one method's maps on one data set."""

    truth_05: float
    truth_0143: float
    half_0143: float | None
    correlation: float
    hand: str
    curve: np.ndarray | None = None


def _mirror(volume: np.ndarray) -> np.ndarray:
    """``v(x, y, -z)`` about the centre voxel ``D // 2`` (index ``i → (D - i) mod D``)."""
    return np.roll(np.flip(volume, axis=0), 1, axis=0)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def score_maps(
    truth_path: Path,
    full_map: Path,
    half_maps: tuple[Path, Path] | None,
    pixel_size_angstrom: float,
) -> Score:
    """FSC of the full map with the truth at 0.5 and 0.143, and of the half maps at 0.143."""
    truth, _ = read_map(truth_path)
    volume, _ = read_map(full_map)
    if volume.shape != truth.shape:
        raise RuntimeError(f"{full_map}: shape {volume.shape}, truth {truth.shape}")
    box = truth.shape[0]
    mask = spherical_mask(box)
    curve = fsc(volume * mask, truth * mask)
    half = None
    reported = full_map.parent / "fsc.json"
    if reported.is_file():
        value = json.loads(reported.read_text())["resolution_angstrom"]
        half = float("inf") if value is None else float(value)  # null: no shell vouched for
    elif half_maps is not None and all(p.is_file() for p in half_maps):
        a, _ = read_map(half_maps[0])
        b, _ = read_map(half_maps[1])
        half = resolution_at(fsc(a * mask, b * mask), 0.143, box, pixel_size_angstrom)
    direct, mirrored = _correlation(volume, truth), _correlation(volume, _mirror(truth))
    hand = "as truth" if abs(direct) >= abs(mirrored) else "MIRRORED"
    return Score(
        resolution_at(curve, 0.5, box, pixel_size_angstrom),
        resolution_at(curve, 0.143, box, pixel_size_angstrom),
        half,
        direct,
        hand,
        curve,
    )


@lru_cache(maxsize=8)
def chance_fsc_sd(box: int, pairs: int = 8, seed: int = 0) -> np.ndarray:
    """Standard deviation per shell (0..D//2) of the masked FSC of two unrelated maps.

    Unmasked, a shell of ``N`` voxels of the full grid scatters by ``1 / sqrt(N)``; the soft
    spherical mask couples neighbouring Fourier voxels and so raises that by a factor that
    depends on the mask and the shell's thickness (no closed form here: 1.55 at box 32). It is
    measured (read only, made once a box): ``pairs`` pairs of masked white-noise maps,
    ``κ² = mean(FSC² · N)`` over the shells from 4 on, and ``σ = κ / sqrt(N)``. A curve below
    ``−3σ`` is more negative than chance explains.
    """
    from cryosplat.validation.crossval import shell_counts
    from cryosplat.validation.fsc import fsc

    counts = shell_counts(box).astype(np.float64)
    mask = spherical_mask(box)
    rng = np.random.default_rng(seed)
    curves = np.array(
        [
            fsc(rng.standard_normal((box,) * 3) * mask, rng.standard_normal((box,) * 3) * mask)
            for _ in range(pairs)
        ]
    )
    kappa = float(np.sqrt(np.mean(curves[:, 4:] ** 2 * counts[4:])))
    sd = kappa / np.sqrt(np.maximum(counts, 1.0))
    sd.setflags(write=False)  # cached: one array shared by every caller
    return sd


def compare_curves(curves: dict[str, np.ndarray], box: int, pixel: float) -> str | None:
    """How cryosplat's FSC-to-truth curve stands against the better peer's, shell by shell.

    Below cryosplat's 0.5 resolution: the largest deficit under the better peer (the issue-11
    criterion: at most 0.02); over all shells: the lowest value of cryosplat's curve (with
    chance's 3σ at that shell, :func:`chance_fsc_sd`: the issue's "nowhere negative beyond what
    noise explains") and of the peers'. None without cryosplat and a peer.
    """
    if "cryosplat" not in curves or len(curves) < 2:
        return None
    ours = np.asarray(curves["cryosplat"])
    peers = np.max([np.asarray(c) for m, c in curves.items() if m != "cryosplat"], axis=0)
    below = np.flatnonzero(ours[1:] < 0.5) + 1  # shell 0 (one voxel) is no resolution
    last = int(below[0]) if below.size else len(ours)
    deficit = peers[1:last] - ours[1:last]
    if not deficit.size:
        deficit = np.zeros(1)
    worst = int(np.argmax(deficit)) + 1
    res = box * pixel / max(worst, 1)
    lowest = int(np.argmin(ours[1:])) + 1
    chance = 3.0 * float(chance_fsc_sd(box)[min(lowest, box // 2)])
    return (
        f"vs better peer below its 0.5 shell: largest deficit {max(float(deficit.max()), 0.0):.3f} "
        f"(shell {worst}, {res:.1f} Å); lowest FSC cryosplat {ours[lowest]:.3f} (shell {lowest}, "
        f"chance's 3σ there {chance:.3f}), better peer {peers[1:].min():.3f}; first shell "
        f"{ours[1]:.3f} vs {peers[1]:.3f}"
    )


def plot_curves(path: Path, title: str, curves: dict[str, np.ndarray], pixel: float) -> None:
    """FSC-to-truth curves of the methods of one data set (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for method, curve in curves.items():
        curve = np.asarray(curve)
        box = 2 * (len(curve) - 1) if len(curve) > 1 else 2
        freq = np.arange(len(curve)) / (box * pixel)
        ax.plot(freq[1:], curve[1:], label=method)
    for level in (0.5, 0.143, 0.0):
        ax.axhline(level, color="0.7", lw=0.8, ls="--" if level else "-")
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC with the truth")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def machine_description() -> str:
    """``nproc``, CPU model and RAM of this machine."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        ram = f"{mem_kib / 2**20:.1f} GiB RAM"
    except (OSError, StopIteration):
        ram = "unknown RAM"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs (nproc), {cpu}, {ram}, {platform.platform()}; load average "
        f"{load} (1/5/15 min) when the results were written"
    )


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}" if np.isfinite(value) else "∞"
    return str(value)


def format_table(rows: list[dict]) -> str:
    """A Markdown table of result rows (dicts keyed by :data:`COLUMNS`)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def write_results(
    path: Path, command: str, rows: list[dict], datasets: list[str], notes: list[str]
) -> None:
    """Write ``RESULTS.md``: the command, the machine, the data sets, the table and notes."""
    text = [
        "# Benchmark results",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_description()}",
        "",
        "FSCs use a soft spherical mask (`cryosplat.validation.masks.spherical_mask`, the same for every "
        "method), against the ground-truth map the images were projected from, with "
        "`cryosplat.validation.fsc`. The half-map column is, for cryosplat, the resolution it reports "
        "(each half model cross-validated against the other half's data, `fsc.json`); for the "
        "peers, the masked FSC of their half maps at 0.143. Wall time and peak memory are per process "
        "(`/usr/bin/time -f '%e %M'`), summed (time) or maximised (memory) over the processes "
        "that make the full map and both half maps. See benchmarks/README.md for the details.",
        "",
        "## Data sets",
        "",
        *[f"- {d}" for d in datasets],
        "",
        "## Results",
        "",
        format_table(rows),
        "",
    ]
    if notes:
        text += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    path.write_text("\n".join(text))
