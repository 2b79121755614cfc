"""The benchmark's yardstick for a negative FSC with the truth: the scatter of the masked FSC of
unrelated maps (``benchmarks/bench_report.chance_fsc_sd``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_report import chance_fsc_sd, compare_curves  # noqa: E402

from cryosplat.validation.fsc import fsc  # noqa: E402
from cryosplat.validation.masks import spherical_mask  # noqa: E402


def test_chance_sd_matches_the_scatter_of_unrelated_masked_maps():
    box, n_pairs = 32, 40
    rng = np.random.default_rng(7)
    mask = spherical_mask(box)
    curves = np.array(
        [
            fsc(rng.standard_normal((box,) * 3) * mask, rng.standard_normal((box,) * 3) * mask)
            for _ in range(n_pairs)
        ]
    )
    predicted = chance_fsc_sd(box)  # from its own 8 pairs (another seed)
    assert predicted.shape == (box // 2 + 1,)
    shells = slice(6, box // 2)  # enough voxels per shell for a stable spread over 40 pairs
    ratio = np.sqrt(np.mean(curves[:, shells] ** 2, axis=0)) / predicted[shells]
    assert np.all(np.abs(ratio - 1.0) < 0.35), ratio  # 40 pairs of few independent samples
    assert abs(float(ratio.mean()) - 1.0) < 0.08, ratio.mean()
    # the mask raises chance's scatter above the unmasked 1 / sqrt(N) (the voxels per shell)
    k = np.arange(box // 2 + 1)
    assert np.all(predicted[6:] * np.sqrt(4 * np.pi * k[6:] ** 2) > 1.3)


def test_compare_curves_names_the_lowest_shell_and_chance_there():
    box = 32
    ours = np.linspace(1.0, -0.2, box // 2 + 1)
    peer = np.linspace(0.9, 0.0, box // 2 + 1)
    text = compare_curves({"cryosplat": ours, "relion": peer}, box, 2.0)
    chance = 3.0 * chance_fsc_sd(box)[box // 2]
    assert f"lowest FSC cryosplat -0.200 (shell {box // 2}, chance's 3σ there {chance:.3f})" in text
