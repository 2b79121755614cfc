"""The map's share of the data where the data hold much (cryosplat.validation.map_blend_weights)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryosplat.validation import map_blend_weights
from cryosplat.validation.map_blend_weights import (
    MAP_POOL_SHELLS,
    POOLED_MAP_DATA_SIGMAS,
    MapTerms,
    weights_for_the_map,
)

SHELLS, COUNT = 24, 2000.0


def _terms(data_fsc: float, gain: float = 0.5, shared_error: float = 0.05) -> MapTerms:
    """Shell means for models ``gain·T + e`` (``e`` shared by both halves, independent of the
    data) and data ``T + n`` of unit noise per half, the two inversions' FSC ``data_fsc`` in every
    shell of ``COUNT`` coefficients."""
    signal = data_fsc / (1.0 - data_fsc)
    full = torch.ones(SHELLS, dtype=torch.float64)
    return MapTerms(
        with_truth_model=gain * signal * full,
        with_truth_data=signal * full,
        model_power=(gain**2 * signal + shared_error) * full,
        data_power=(signal + 0.5) * full,
        between=gain * signal * full,
        data_power_a=(signal + 1.0) * full,
        data_power_b=(signal + 1.0) * full,
        own=((gain - 1.0) ** 2 * signal + shared_error + 1.0) * full,
        noise=full.clone(),
        counts=COUNT * full,
    )


def _map_optimum(terms: MapTerms) -> float:
    """The ``α`` in [0, 1] where the map's FSC with the truth is highest (the formula, by search)."""
    best = max(
        (
            (a * terms.with_truth_model[5] + (1 - a) * terms.with_truth_data[5])
            / math.sqrt(
                a * a * terms.model_power[5]
                + (1 - a) ** 2 * terms.data_power[5]
                + 2 * a * (1 - a) * terms.between[5]
            ),
            a,
        )
        for a in np.linspace(0, 1, 1001)
    )
    return float(best[1])


def test_pooled_shells_move_alpha_where_each_shell_alone_cannot():
    # 4.2 chance's standard errors a shell: under the per-shell gate (5), over the pooled one
    # (8 over five shells, 3.6 a shell)
    terms = _terms(4.2 / math.sqrt(COUNT))
    alpha = torch.ones(SHELLS, dtype=torch.float64)
    moved = weights_for_the_map(alpha, terms).numpy()
    inner = slice(MAP_POOL_SHELLS + 1, SHELLS - MAP_POOL_SHELLS)
    assert np.allclose(moved[inner], _map_optimum(terms), atol=0.011)
    assert moved[inner].max() < 0.9
    assert np.all(moved[: MAP_POOL_SHELLS + 1] == 1.0)  # a window cut by the zero frequency
    assert np.all(moved[-1] == 1.0)  # three shells pooled at the last: under the gate
    # only ever down: halves that already take more of the data keep it
    low = torch.full((SHELLS,), 0.1, dtype=torch.float64)
    assert torch.equal(weights_for_the_map(low, terms), low)


def test_pooled_shells_keep_alpha_under_their_gate(monkeypatch):
    alpha = torch.ones(SHELLS, dtype=torch.float64)
    weak = _terms(3.0 / math.sqrt(COUNT))  # 3.0 a shell: 6.7 over five, under 8
    assert torch.equal(weights_for_the_map(alpha, weak), alpha)
    steady = _terms(4.2 / math.sqrt(COUNT))
    monkeypatch.setattr(map_blend_weights, "POOLED_MAP_DATA_SIGMAS", math.inf)
    assert torch.equal(weights_for_the_map(alpha, steady), alpha)
    assert POOLED_MAP_DATA_SIGMAS > 5.0


def test_shells_that_read_alone_are_left_to_their_own_reading(monkeypatch):
    # a clear signal in every shell: the per-shell choice decides, and with no gain asked of it
    # each shell takes the map's optimum whether or not the pooled gate would move it
    terms = _terms(20.0 / math.sqrt(COUNT))
    alpha = torch.ones(SHELLS, dtype=torch.float64)
    monkeypatch.setattr(map_blend_weights, "POOLED_MAP_DATA_SIGMAS", math.inf)
    alone = weights_for_the_map(alpha, terms)
    monkeypatch.setattr(map_blend_weights, "POOLED_MAP_DATA_SIGMAS", 0.0)
    assert torch.equal(weights_for_the_map(alpha, terms), alone)
    assert alone[5] == pytest.approx(_map_optimum(terms), abs=0.011)


def test_pooled_means_weigh_shells_by_their_counts():
    terms = _terms(0.1)
    values = torch.arange(SHELLS, dtype=torch.float64)
    counts = torch.arange(1, SHELLS + 1, dtype=torch.float64)
    uneven = MapTerms(**{**terms.__dict__, "with_truth_data": values, "counts": counts})
    pooled = uneven.pooled(2)
    s = 10
    window = slice(s - 2, s + 3)
    expected = float((values[window] * counts[window]).sum() / counts[window].sum())
    assert float(pooled.with_truth_data[s]) == pytest.approx(expected)
    assert float(pooled.counts[s]) == float(counts[window].sum())
    assert float(pooled.counts[0]) == float(counts[:3].sum())  # cut at the ends
