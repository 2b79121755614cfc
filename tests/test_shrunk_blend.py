"""The shrunk inversion in the blend (cryosplat.validation.shrunk_blend), on synthetic half sets.

A truth ``T``; each half's data ``D = T + n / √W`` with ``W`` (a frequency's summed CTF²) spread
over one to two decades, and its shrunk inversion ``S = W / (W + mean W) · D``; half models that
hold ``T`` to shell 6 and less or nothing beyond.
"""

from __future__ import annotations

import numpy as np
import pytest

import cryosplat.validation.tail_hedge as tail_hedge
from cryosplat.reconstruct.engine_result import EngineResult
from cryosplat.reconstruct.map_composition import compose_map
from cryosplat.validation.data_blend import blend_halves
from cryosplat.validation.fsc import fsc
from cryosplat.validation.masks import spherical_mask


def _blended(*maps, **options):
    """``(half A, half B, model weight)`` of :func:`blend_halves`."""
    blend = blend_halves(*maps, **options)
    return *blend.halves, blend.model_weight


BOX = 32


def _halves(seed: int, signal: float, noise: float, decades: float, partial: float):
    """``truth, (M_A, M_B, D_A, D_B), (S_A, S_B)`` as real maps."""
    rng = np.random.default_rng(seed)
    axes = [np.fft.fftfreq(BOX) * BOX] * 2 + [np.fft.rfftfreq(BOX) * BOX]
    k = np.sqrt(sum(f**2 for f in np.meshgrid(*axes, indexing="ij")))
    envelope = (1 + (k / 4) ** 2) ** -0.5

    def field():
        return np.fft.rfftn(rng.standard_normal((BOX,) * 3))

    truth = signal * envelope * field()
    weight = 10 ** (rng.random(k.shape) * decades - decades + 0.5)

    def half():
        data = truth + 0.3 * noise * envelope * field() / np.sqrt(weight)
        return data, weight / (weight + weight.mean()) * data

    (data_a, shrunk_a), (data_b, shrunk_b) = half(), half()
    model = np.where(k <= 6, truth, partial * truth * (k < 12)) + 0.02 * field()

    def real(x):
        return np.fft.irfftn(x, s=(BOX,) * 3, axes=(0, 1, 2))

    maps = [real(x) for x in (model, model, data_a, data_b)]
    return real(truth), maps, (real(shrunk_a), real(shrunk_b))


def _map_fsc(blend, truth, mask):
    return np.asarray(fsc((blend.halves[0] + blend.halves[1]) / 2 * mask, truth * mask))


def test_shrunk_inversion_taken_where_the_models_hold_nothing():
    truth, maps, shrunk = _halves(1, signal=1.0, noise=4.0, decades=2.0, partial=0.3)
    mask = spherical_mask(BOX)
    new = blend_halves(*maps, mask=mask, shrunk=shrunk)
    old = blend_halves(*maps, mask=mask)
    gain = _map_fsc(new, truth, mask) - _map_fsc(old, truth, mask)
    taken = np.flatnonzero(new.shrunk_shells)
    assert set(range(12, 17)) <= set(taken), taken
    assert gain[12:17].mean() > 0.1
    assert gain[1:].min() > -0.005
    # the model's weight reported there is β, the α against D kept for the mean correction
    assert np.array_equal(new.alpha, old.alpha)
    assert not np.array_equal(new.model_weight[taken], old.model_weight[taken])


def test_nothing_taken_from_pure_noise():
    truth, maps, shrunk = _halves(1, signal=0.0, noise=4.0, decades=2.0, partial=0.3)
    mask = spherical_mask(BOX)
    new = blend_halves(*maps, mask=mask, shrunk=shrunk)
    old = blend_halves(*maps, mask=mask)
    assert not new.shrunk_shells.any()
    for a, b in zip(new.halves, old.halves, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_pooled_window_across_a_sharp_change_does_not_decide_alone():
    # The models hold 0.3 T over shells 7-11 and nothing beyond: a window about shell 9 or 10
    # reaches shells where S gains much; the shells' own means say it loses there.
    truth, maps, shrunk = _halves(1, signal=1.0, noise=6.0, decades=1.5, partial=0.3)
    mask = spherical_mask(BOX)
    new = blend_halves(*maps, mask=mask, shrunk=shrunk)
    old = blend_halves(*maps, mask=mask)
    assert not new.shrunk_shells[:12].any(), np.flatnonzero(new.shrunk_shells)
    gain = _map_fsc(new, truth, mask) - _map_fsc(old, truth, mask)
    assert gain[1:].min() > -0.005
    assert gain[15:17].min() > 0.05


def test_blend_halves_returns_the_models_weight_with_shrunk_maps():
    truth, maps, shrunk = _halves(1, signal=1.0, noise=4.0, decades=2.0, partial=0.3)
    a, b, weight = _blended(*maps, shrunk=shrunk)
    blend = blend_halves(*maps, shrunk=shrunk)
    np.testing.assert_array_equal(weight, blend.model_weight)
    np.testing.assert_array_equal(a, blend.halves[0])


def test_shrunk_maps_of_another_shape_are_refused():
    _, maps, shrunk = _halves(1, signal=1.0, noise=4.0, decades=2.0, partial=0.3)
    with pytest.raises(ValueError, match="one shape"):
        blend_halves(*maps, shrunk=(shrunk[0], shrunk[1][:-1]))


def _composed(maps, shrunk, sigma: float = 1.5):
    result = EngineResult((None, None), blend_maps=(maps[2], maps[3]), shrunk_maps=shrunk)
    return compose_map(list(maps[:2]), result, spherical_mask(BOX), sigma, "cpu")


def test_the_written_map_keeps_shrunk_shells_where_it_gains_by_them(monkeypatch):
    # the shrunk shells alone: the quarter share of S in the models' other shells
    # (tail_hedge.MODEL_SHELLS_SHRUNK_SHARE) costs these models, which hold the truth's shape
    # exactly, up to 0.02; it is tested in test_tail_hedge
    monkeypatch.setattr(tail_hedge, "MODEL_SHELLS_SHRUNK_SHARE", 0.0)
    truth, maps, shrunk = _halves(1, signal=1.0, noise=4.0, decades=2.0, partial=0.3)
    mask = spherical_mask(BOX)
    new, old = _composed(maps, shrunk), _composed(maps, None)

    def curve(composed):
        return np.asarray(fsc((composed.halves[0] + composed.halves[1]) / 2 * mask, truth * mask))

    gain = curve(new) - curve(old)
    assert "shrunk inversion" in new.text and "shrunk" not in old.text
    assert gain[12:17].mean() > 0.05
    assert gain[1:].min() > -0.005
    assert not np.array_equal(new.alpha, old.alpha)
    np.testing.assert_array_equal(new.weight, old.weight)  # the plain blend's local weight


def test_the_written_map_without_a_local_weight_takes_the_offered_shells(monkeypatch):
    monkeypatch.setattr(tail_hedge, "MODEL_SHELLS_SHRUNK_SHARE", 0.0)  # the shrunk shells alone
    _, maps, shrunk = _halves(1, signal=1.0, noise=4.0, decades=2.0, partial=0.3)
    composed = _composed(maps, shrunk, sigma=0.0)
    blend = blend_halves(*maps, mask=spherical_mask(BOX), shrunk=shrunk)
    np.testing.assert_allclose(
        composed.halves[0] - composed.halves[0].mean(),
        blend.halves[0] - blend.halves[0].mean(),
        atol=1e-9,
    )
    np.testing.assert_array_equal(composed.alpha, blend.model_weight)


def test_pure_noise_leaves_the_written_map_as_without_shrunk_maps():
    _, maps, shrunk = _halves(1, signal=0.0, noise=4.0, decades=2.0, partial=0.3)
    new, old = _composed(maps, shrunk), _composed(maps, None)
    for a, b in zip(new.halves, old.halves, strict=True):
        np.testing.assert_array_equal(a, b)
