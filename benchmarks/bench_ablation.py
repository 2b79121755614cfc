"""One grid-fit setting against the truth on a benchmark set, without re-reading the particles.

The statistics of a data set made by ``run_benchmarks.py`` (``OUT/datasets/NAME``) are gathered
once as ``cryosplat reconstruct`` gathers them (its half split; 10 % of each half kept apart) and
cached; each call then fits both half models, to every particle of each half as the engine does by
default, or with those 10 % held out to stop each stage (``heldout=0.1``, the default until round
2, session 7) with the given :class:`GridFitConfig` fields and
prints one JSON line: the map's FSC with the truth at 0.5 and 0.143 (soft spherical mask), its
first shell and lowest value, the largest deficit under the better peer below cryosplat's 0.5
shell (peers' maps from ``OUT/runs/NAME``), the cross-validated resolution cryosplat would report,
and the fit's wall time (one CPU thread per half unless ``threads=``).

Examples::

    python benchmarks/bench_ablation.py emd1832                          # the defaults
    python benchmarks/bench_ablation.py emd1832 low_shell_weighting=False
    python benchmarks/bench_ablation.py emd1832 unpadded_above_box=0 stage_steps=160,40,40,30
    python benchmarks/bench_ablation.py emd1832 prior_strength=0 seed=1    # other seeds
    python benchmarks/bench_ablation.py emd1832 seed=2 shells=22-32        # the curve there too
    python benchmarks/bench_ablation.py emd1832 heldout=0.1                # 10 % held out
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from cryosplat.io.mrc import read_map
from cryosplat.particles.halves import split_halves
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.fit import GridFitConfig, fit_gaussians
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.grid.half_statistics import half_data_fsc, split_heldout
from cryosplat.reconstruct.run import default_n_gaussians
from cryosplat.validation.crossval import cross_validated_fsc, data_half_maps
from cryosplat.validation.fsc import fsc, resolution_at
from cryosplat.validation.masks import spherical_mask

ROOT = Path(__file__).resolve().parents[1] / "bench_out"
PEER_MAPS = {"relion": "relion/relion_full.mrc", "cryodrgn": "cryodrgn/backproject/backproject.mrc"}


def statistics(root: Path, name: str) -> dict:
    """Fit and held-out statistics of both halves (cached in ``root/ablation``)."""
    cache = root / "ablation" / f"{name}.pt"
    if cache.is_file():
        return torch.load(cache, weights_only=False)
    particles = read_particles(root / "datasets" / name / "particles.star")
    half_a, half_b, _ = split_halves(particles, 0)
    out = {"train": [], "held": [], "pixel": particles.pixel_size_angstrom, "box": particles.box}
    for i, rows in enumerate((half_a, half_b)):
        fit_rows, held_rows = split_heldout(np.asarray(rows), 0.1, i)
        out["train"].append(accumulate(particles, fit_rows, AccumulateConfig()))
        out["held"].append(accumulate(particles, held_rows, AccumulateConfig()))
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, cache)
    return out


def _value(text: str):
    if "," in text:
        return tuple(float(x) if "." in x else int(x) for x in text.split(","))
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def data_maps(stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """The direct inversions of both whole halves (fit + held out), made once per set."""
    if "data_maps" not in stats:
        totals = [t + h for t, h in zip(stats["train"], stats["held"], strict=True)]
        stats["data_maps"] = data_half_maps(totals)
    return stats["data_maps"]


def fit_halves(
    stats: dict, config: GridFitConfig, seed: int = 0, held_out: bool = False
) -> list[np.ndarray]:
    """Both half maps, stage by stage as the grid engine runs them (seeds 2·seed + 1, + 2); each
    half fitted to all its particles, or with the cached 10 % held out to stop each stage."""
    curve = half_data_fsc(data_maps(stats))
    maps = []
    for i in range(2):
        train, held = stats["train"][i], stats["held"][i]
        if not held_out:
            train, held = train + held, None
        model = None
        for index in range(len(config.stage_fractions)):
            stage = replace(config.stage(index), seed=2 * seed + i + 1)
            model = fit_gaussians(train, stage, model=model, heldout=held, half_fsc=curve)
        with torch.no_grad():
            maps.append(model.voxelize().double().numpy())
    return maps


def score(
    root: Path, name: str, stats: dict, maps: list[np.ndarray], shells: str | None = None
) -> dict:
    box, pixel = stats["box"], stats["pixel"]
    truth, _ = read_map(root / "datasets" / name / "truth.mrc")
    mask = spherical_mask(box)
    curve = fsc(0.5 * (maps[0] + maps[1]) * mask, truth * mask)
    cv = cross_validated_fsc(*maps, *data_maps(stats), mask, pixel)
    result = {
        "fsc_truth_05": round(resolution_at(curve, 0.5, box, pixel), 2),
        "fsc_truth_0143": round(resolution_at(curve, 0.143, box, pixel), 2),
        "reported": round(cv.resolution_angstrom, 2),
        "first_shell": round(float(curve[1]), 3),
        "lowest": round(float(curve[1:].min()), 3),
    }
    if shells is not None:  # "LO-HI": the curve itself over those shells
        lo, hi = (int(k) for k in shells.split("-"))
        result[f"shells_{lo}_{hi}"] = [round(float(x), 3) for x in curve[lo : hi + 1]]
    peers = {}
    for method, path in PEER_MAPS.items():
        if (root / "runs" / name / path).is_file():
            volume, _ = read_map(root / "runs" / name / path)
            peers[method] = fsc(volume * mask, truth * mask)
            result[method] = [
                round(resolution_at(peers[method], t, box, pixel), 2) for t in (0.5, 0.143)
            ]
    if peers:
        best = np.max(list(peers.values()), axis=0)
        below = np.flatnonzero(curve[1:] < 0.5) + 1
        last = int(below[0]) if below.size else len(curve)
        result["deficit"] = round(float(max(0.0, (best[1:last] - curve[1:last]).max())), 3)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    name, settings = argv[0], dict(a.split("=", 1) for a in argv[1:])
    root = Path(settings.pop("out", ROOT))
    torch.set_num_threads(int(settings.pop("threads", 1)))
    seed = int(settings.pop("seed", 0))
    shells = settings.pop("shells", None)
    heldout = float(settings.pop("heldout", 0))
    if heldout not in (0.0, 0.1):
        print(f"heldout must be 0 or 0.1 (the cached split), got {heldout}", file=sys.stderr)
        return 2
    known = {f.name for f in fields(GridFitConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        print(f"unknown settings {unknown}; GridFitConfig has {sorted(known)}", file=sys.stderr)
        return 2
    stats = statistics(root, name)
    overrides = {k: _value(v) for k, v in settings.items()}
    overrides.setdefault("n_gaussians", default_n_gaussians(stats["box"]))
    config = GridFitConfig(**overrides)
    started = time.perf_counter()
    maps = fit_halves(stats, config, seed, held_out=heldout > 0)
    seconds = time.perf_counter() - started
    if heldout:
        settings["heldout"] = str(heldout)
    result = {"set": name, "settings": settings, "fit_s": round(seconds, 1)}
    result.update(score(root, name, stats, maps, shells))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
