"""What the Gaussian model can hold: fit it to noise-free statistics of a truth map (no images).

The statistics are those of perfect data on every frequency (``W = c``, ``B = c · X̂_truth``, the
padded transform of the truth as the loss sees maps), so the fit's FSC with the truth measures the
representation and the optimisation alone: no noise, no CTF, no missing views. Used for issue 11
(the low-frequency deficit and the negative FSC stretch on real-map truths appear here as they do
with noisy particles, so they are not caused by the data).

    python benchmarks/bench_representation.py bench_out/datasets/emd1832/truth.mrc
    python benchmarks/bench_representation.py truth.mrc --set negative_fraction=0 --set stage_steps=40,20,20,15
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields, replace

import numpy as np
import torch

from cryosplat.core.padded_transform import volume_to_padded_ft
from cryosplat.io.mrc import read_map
from cryosplat.reconstruct.grid.fit import GridFitConfig, fit_gaussians
from cryosplat.reconstruct.grid.statistics import FourierStatistics
from cryosplat.reconstruct.run import default_n_gaussians
from cryosplat.validation.fsc import fsc, resolution_at
from cryosplat.validation.masks import spherical_mask


def clean_statistics(truth: np.ndarray, pixel: float, pad: int = 2) -> FourierStatistics:
    """Statistics of noise-free, CTF-free data covering every frequency up to ``D/2 − 1``."""
    box = truth.shape[0]
    data = volume_to_padded_ft(
        torch.tensor(truth, dtype=torch.float32), pad, pixel, gridding_correction=True, half=True
    )
    size = pad * box
    k = torch.arange(size) - size // 2
    kx = torch.arange(size // 2 + 1)
    r2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2
    radius = box / 2 - 1
    inside = r2 <= (pad * radius) ** 2
    count = 100.0
    power = torch.zeros(int(radius**2) + 1, dtype=torch.float64)
    return FourierStatistics(
        torch.full(data.shape, count) * inside,
        data * count * inside,
        box,
        pad,
        pixel,
        int(count),
        power,
        radius,
    )


def _value(text: str, default):
    if isinstance(default, tuple):
        kind = type(default[0])
        return tuple(kind(v) for v in text.split(","))
    if isinstance(default, bool):
        return text.lower() in ("1", "true", "yes", "on")
    return type(default)(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", help="truth map (MRC)")
    parser.add_argument("--n-gaussians", type=int, help="default: cryosplat's for the box")
    parser.add_argument(
        "--set", action="append", default=[], help="GridFitConfig field=value (repeatable)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    truth, pixel = read_map(args.truth)
    box = truth.shape[0]
    config = GridFitConfig(n_gaussians=args.n_gaussians or default_n_gaussians(box))
    defaults = {f.name: getattr(config, f.name) for f in fields(config)}
    changes = {}
    for item in args.set:
        name, text = item.split("=", 1)
        changes[name] = _value(text, defaults[name])
    config = replace(config, **changes)
    start = time.time()
    model = fit_gaussians(clean_statistics(truth, pixel), config)
    with torch.no_grad():
        volume = model.voxelize().double().numpy()
    mask = np.asarray(spherical_mask(box))
    curve = fsc(volume * mask, truth * mask)
    print(
        f"{args.truth} {changes}: {time.time() - start:.0f} s, FSC-truth 0.5 "
        f"{resolution_at(curve, 0.5, box, pixel):.2f} Å, 0.143 "
        f"{resolution_at(curve, 0.143, box, pixel):.2f} Å"
    )
    print("shells 1..: " + " ".join(f"{v:.3f}" for v in curve[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
