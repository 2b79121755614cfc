"""The hedge past the map's 0.5 crossing (cryosplat.validation.tail_hedge), on synthetic halves.

The halves of ``test_shrunk_blend``: a truth ``T``, each half's data ``D = T + n / √W`` and its
shrunk inversion ``S``, half models that hold ``T`` to shell 6 and a share of it to shell 11.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from test_shrunk_blend import BOX, _halves

import cryosplat.validation.tail_hedge as tail_hedge
from cryosplat.validation.data_blend import Blend, blend_halves
from cryosplat.validation.fsc import fsc, half_grid_shells, resolution_at
from cryosplat.validation.masks import spherical_mask
from cryosplat.validation.tail_hedge import (
    HEDGE_MODEL_SHARE,
    HEDGE_START_SHELLS,
    MODEL_SHELLS_SHRUNK_SHARE,
    hedge_shells,
    hedge_tail,
    shrunk_shares,
)

N = BOX // 2 + 1


def _blend(model_weight, shrunk_shells=()) -> Blend:
    taken = np.zeros(N, dtype=bool)
    taken[list(shrunk_shells)] = True
    halves = (np.zeros((BOX,) * 3), np.zeros((BOX,) * 3))
    weight = np.asarray(model_weight, dtype=np.float64)
    return Blend(halves, weight, weight, taken, halves)


def _estimate(first_under: int) -> np.ndarray:
    curve = np.ones(N)
    curve[first_under:] = 0.3
    return curve


def test_hedged_shells_are_past_the_crossing_where_the_data_read_nothing():
    counts = np.full(N, 400.0)  # chance's threshold 3/√n = 0.15
    data_fsc = np.full(N, 0.05)
    data_fsc[14] = 0.4  # this shell's data read signal
    weight = np.ones(N)
    weight[12] = 0.8  # the blend took the data here
    blend = _blend(weight, shrunk_shells=[15])
    hedged = hedge_shells(blend, data_fsc, counts, _estimate(8), np.ones(N, dtype=bool))
    start = 8 + HEDGE_START_SHELLS
    expected = {k for k in range(start, N)} - {12, 14, 15}
    assert set(np.flatnonzero(hedged)) == expected


@pytest.mark.parametrize("first_under", [1, 2, N])
def test_no_hedge_without_a_crossing_the_data_vouch_for(first_under):
    blend = _blend(np.ones(N))
    estimate = _estimate(first_under)
    hedged = hedge_shells(blend, np.zeros(N), np.full(N, 400.0), estimate, np.ones(N, dtype=bool))
    assert not hedged.any()


def test_no_hedge_where_the_estimate_holds_past_the_data_s_cut():
    # the data vouch for shells 0-9; the estimate's lower bound stays over 0.5 to shell 13
    blend, counts = _blend(np.ones(N)), np.full(N, 400.0)
    readable = np.arange(N) < 10
    hedged = hedge_shells(blend, np.zeros(N), counts, _estimate(14), readable, vouched=10)
    assert not hedged.any()
    at_cut = hedge_shells(blend, np.zeros(N), counts, _estimate(10), readable, vouched=10)
    assert np.flatnonzero(at_cut)[0] == 10 + HEDGE_START_SHELLS


def test_an_unreadable_dip_under_half_is_no_crossing():
    # the estimate dips under 0.5 at shells 5-6, which the data cannot read, and the next
    # readable shell reads 0.8: the crossing is at 10 (crossval_result.reading_curve)
    estimate = _estimate(10)
    estimate[5:7] = 0.2
    readable = np.ones(N, dtype=bool)
    readable[5:7] = False
    hedged = hedge_shells(_blend(np.ones(N)), np.zeros(N), np.full(N, 400.0), estimate, readable)
    assert np.flatnonzero(hedged)[0] == 10 + HEDGE_START_SHELLS


def _reading_crossing_at(monkeypatch, first_under: int) -> None:
    """Make the hedge read the map's estimate as crossing 0.5 at ``first_under`` (the data's own
    FSC as the cross-validation reads it)."""
    real = tail_hedge.cross_validated_fsc

    def estimate(*args):
        return replace(
            real(*args),
            model_vs_truth_estimate=_estimate(first_under),
            readable_shells=np.ones(N, dtype=bool),
            vouched_shells=None,
        )

    monkeypatch.setattr(tail_hedge, "cross_validated_fsc", estimate)


def _spectrum(x, mask):
    return np.fft.rfftn(np.asarray(x) * mask)


def test_shares_are_a_half_where_hedged_a_quarter_in_the_other_model_shells():
    weight = np.ones(N)
    weight[2:4] = 0.5  # blended with the data
    weight[4] = 0.995  # the models' alone
    hedged = np.zeros(N, dtype=bool)
    hedged[9:] = True
    shares = shrunk_shares(_blend(weight, shrunk_shells=[5]), hedged)
    assert shares[0] == 0.0  # the mean: the blend's zero-frequency correction
    assert MODEL_SHELLS_SHRUNK_SHARE == 0.25
    np.testing.assert_array_equal(shares[[1, 4, 6, 7, 8]], MODEL_SHELLS_SHRUNK_SHARE)
    np.testing.assert_array_equal(shares[[2, 3, 5]], 0.0)  # the data's, or the shrunk one's
    np.testing.assert_array_equal(shares[9:], 1.0 - HEDGE_MODEL_SHARE)


def test_each_shell_holds_the_shrunk_inversion_at_its_share(monkeypatch):
    _, maps, shrunk = _halves(1, signal=1.0, noise=4.0, decades=2.0, partial=0.3)
    mask = spherical_mask(BOX)
    blend = blend_halves(*maps, mask=mask, shrunk=shrunk)
    crossing = 7
    _reading_crossing_at(monkeypatch, crossing)
    hedged_blend, shares = hedge_tail(blend, maps[:2], maps[2:], shrunk, mask)
    shells = np.flatnonzero(shares == 1.0 - HEDGE_MODEL_SHARE)
    assert shells.size and shells[0] >= crossing + HEDGE_START_SHELLS
    assert (shares == MODEL_SHELLS_SHRUNK_SHARE).any()
    shell, multiplicity = (g.numpy() for g in half_grid_shells(BOX, "cpu"))
    for half in (0, 1):
        model, inversion = _spectrum(maps[half], mask), _spectrum(shrunk[half], mask)
        change = np.fft.rfftn(hedged_blend.halves[half] - blend.halves[half])
        plain = np.fft.rfftn(hedged_blend.plain[half] - blend.plain[half])
        np.testing.assert_allclose(change, plain, atol=1e-9)
        for k in range(1, N):
            at = shell == k
            if shares[k] == 0.0:
                assert np.abs(change[at]).max() < 1e-9, k
                continue
            weights = multiplicity[at]
            model_power = (weights * np.abs(model[at]) ** 2).sum()
            ratio = np.sqrt(model_power / (weights * np.abs(inversion[at]) ** 2).sum())
            expected = shares[k] * (ratio * inversion[at] - model[at])
            np.testing.assert_allclose(change[at], expected, rtol=1e-7, atol=1e-9)


def test_the_hedge_leaves_frequencies_no_view_samples(monkeypatch):
    _, maps, shrunk = _halves(1, signal=1.0, noise=4.0, decades=2.0, partial=0.3)
    mask = spherical_mask(BOX)
    sampled = torch.ones((BOX, BOX, N), dtype=torch.bool)
    sampled[:, :, 3:] = False
    blend = blend_halves(*maps, mask=mask, shrunk=shrunk, sampled=sampled)
    _reading_crossing_at(monkeypatch, 5)
    hedged_blend, shares = hedge_tail(blend, maps[:2], maps[2:], shrunk, mask, sampled)
    assert (shares == 1.0 - HEDGE_MODEL_SHARE).any()
    change = np.fft.rfftn(hedged_blend.halves[0] - blend.halves[0])
    assert np.abs(change[:, :, 3:]).max() < 1e-9
    assert np.abs(change[:, :, :3]).max() > 1e-6


def _shared_content(seed: int, own: float, noise: float):
    """``truth, (M_A, M_B, D_A, D_B), (S_A, S_B)``: data whose FSC falls to chance past shell 9;
    models that hold the truth to shell 6 and past it ``1 - own`` of it plus ``own`` of a content
    both halves share (a mixture's own, not the truth's)."""
    rng = np.random.default_rng(seed)
    axes = [np.fft.fftfreq(BOX) * BOX] * 2 + [np.fft.rfftfreq(BOX) * BOX]
    k = np.sqrt(sum(f**2 for f in np.meshgrid(*axes, indexing="ij")))
    envelope = 1.0 / (1.0 + (k / 3.0) ** 2)

    def field():
        return np.fft.rfftn(rng.standard_normal((BOX,) * 3))

    truth = envelope * field()
    weight = 10 ** (rng.random(k.shape) * 1.5 - 1.0)
    data = [truth + noise * field() / np.sqrt(weight) for _ in range(2)]
    shrunk = [weight / (weight + weight.mean()) * d for d in data]
    shared = envelope * field()
    beyond = (1.0 - own) * truth + own * shared
    models = [np.where(k <= 6, truth, beyond) + 0.01 * envelope * field() for _ in range(2)]

    def real(x):
        return np.fft.irfftn(x, s=(BOX,) * 3, axes=(0, 1, 2))

    return real(truth), [real(x) for x in models + data], tuple(real(x) for x in shrunk)


def test_the_hedge_gains_where_the_models_hold_their_own_content(monkeypatch):
    # the map's estimate read as crossing 0.5 at shell 7, where the models' truth content drops
    truth, maps, shrunk = _shared_content(3, own=0.9, noise=0.3)
    mask = spherical_mask(BOX)
    blend = blend_halves(*maps, mask=mask, shrunk=shrunk)
    _reading_crossing_at(monkeypatch, 7)
    hedged_blend, shares = hedge_tail(blend, maps[:2], maps[2:], shrunk, mask)

    def curve(b):
        return np.asarray(fsc((b.halves[0] + b.halves[1]) / 2 * mask, truth * mask))

    before, after = curve(blend), curve(hedged_blend)
    shells = np.flatnonzero(shares == 1.0 - HEDGE_MODEL_SHARE)
    assert shells.size >= 3, shells
    # below the hedge the quarter share of a noisier inversion costs models that hold the
    # truth almost exactly (shells 1-6 here) a little, never as much as 0.01
    low = shells[0] - 1
    assert (before[:low] - after[:low]).max() < 0.01
    crossing_after, crossing_before = (resolution_at(c, 0.5, BOX, 1.0) for c in (after, before))
    assert crossing_after <= crossing_before * (1 + 1e-3)  # the hedge starts past it
    assert (after - before)[shells].mean() > 0.02
