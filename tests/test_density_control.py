"""Density control between grid-fit stages: split the heaviest Gaussians, prune the lightest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.core.errors import InputError
from cryosplat.core.optim import Adam
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.grid.density_control import (
    SPLIT_OFFSET_SCALES,
    grow_heaviest,
    split_heaviest,
)
from cryosplat.reconstruct.grid.fit import GridFitConfig, _control_now, _copy_optimizer_rows
from cryosplat.reconstruct.grid.parameters import FitParameters
from cryosplat.validation.fsc import fsc

BOX, PIXEL = 24, 2.0


def _model(n_positive: int = 60, n_negative: int = 8, seed: int = 0) -> GaussianModel:
    """Positive Gaussians of unequal mass and a broad negative population."""
    base = GaussianModel.random(
        n_positive + n_negative, BOX, PIXEL, seed=seed, radius_fraction=0.25, scale_angstrom=2.5
    )
    rng = np.random.default_rng(seed)
    masses = torch.tensor(rng.uniform(0.05, 2.0, n_positive + n_negative))
    masses[n_positive:] *= -0.3
    return GaussianModel(
        base.means.detach(),
        base.scales.detach(),
        base.quaternions.detach(),
        masses,
        BOX,
        PIXEL,
        signed=True,
    )


def _state(params: FitParameters):
    mix = params.activated()
    return [t.detach().clone() for t in (mix.means, mix.scales, mix.quaternions, mix.amplitudes)]


@pytest.mark.parametrize("signed", [False, True])
def test_split_moves_the_lightest_mass_onto_halves_of_the_heaviest(signed):
    params = FitParameters(_model(), "cpu", signed=signed)
    means, scales, quats, amps = _state(params)
    positive = torch.nonzero(amps > 0).flatten()
    order = positive[torch.argsort(amps[positive])]
    light, heavy = split_heaviest(params, 0.1, seed=3)
    k = len(light)
    assert k == 6
    torch.testing.assert_close(light, order[:k])
    torch.testing.assert_close(heavy, order[-k:])
    new_means, new_scales, new_quats, new_amps = _state(params)
    assert len(new_amps) == len(amps)
    # The negative population and the untouched positives are unchanged.
    untouched = torch.ones(len(amps), dtype=torch.bool)
    untouched[light] = untouched[heavy] = False
    assert bool((amps[untouched] < 0).sum() == 8)
    for before, after in ((means, new_means), (scales, new_scales), (amps, new_amps)):
        torch.testing.assert_close(after[untouched], before[untouched])
    # Each pair: half the parent's mass each, same shape, centred on the parent's mean, apart by
    # twice the offset.
    torch.testing.assert_close(new_amps[heavy], 0.5 * amps[heavy], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(new_amps[light], 0.5 * amps[heavy], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(new_scales[light], scales[heavy])
    torch.testing.assert_close(new_quats[light], quats[heavy])
    torch.testing.assert_close(0.5 * (new_means[light] + new_means[heavy]), means[heavy])
    distance = (new_means[heavy] - new_means[light]).norm(dim=1)
    expected = 2 * SPLIT_OFFSET_SCALES * scales[heavy].mean(dim=1)
    torch.testing.assert_close(distance, expected, rtol=1e-5, atol=1e-6)
    # Total mass falls by exactly the pruned Gaussians' mass.
    torch.testing.assert_close(new_amps.sum(), amps.sum() - amps[light].sum(), rtol=1e-5, atol=1e-6)


def test_split_keeps_the_map_at_low_resolution():
    """A split pair is its parent blurred by the offset: the map changes at fine detail only
    (the pruned Gaussians put back for the comparison)."""
    model = _model(seed=1)
    params = FitParameters(model, "cpu")
    amps = params.activated().amplitudes.detach()
    order = torch.argsort(amps)
    k = len(split_heaviest(params, 0.1, seed=0)[0])
    split = params.model(1.0, BOX, PIXEL)
    with torch.no_grad():
        before = model.voxelize().double().numpy()
        pruned = model.subset(order[amps[order] > 0][:k]).voxelize().double().numpy()
        after = split.voxelize().double().numpy()
    curve = fsc(after + pruned, before)
    assert curve[1:4].min() > 0.997
    assert curve[-3:].mean() < curve[1:4].min()


def test_split_is_seeded_and_off_at_zero():
    first, second, other = (FitParameters(_model(), "cpu") for _ in range(3))
    split_heaviest(first, 0.2, seed=5)
    split_heaviest(second, 0.2, seed=5)
    split_heaviest(other, 0.2, seed=6)
    torch.testing.assert_close(first.means, second.means)
    assert not torch.allclose(first.means, other.means)
    untouched = FitParameters(_model(), "cpu")
    reference = _state(untouched)
    assert len(split_heaviest(untouched, 0.0, seed=1)[0]) == 0
    for before, after in zip(reference, _state(untouched), strict=True):
        torch.testing.assert_close(after, before)


def test_bad_fractions_are_refused():
    with pytest.raises(ValueError, match="0.5"):
        split_heaviest(FitParameters(_model(), "cpu"), 0.5, seed=0)
    with pytest.raises(InputError, match="density_control_fraction"):
        GridFitConfig(density_control_fraction=-0.1).validate()


def test_schedule_within_a_stage():
    """Every ``density_control_every`` steps, none in the last half-interval of a stage."""
    config = GridFitConfig(density_control_every=20)
    assert [k for k in range(1, 81) if _control_now(config, k, 80)] == [20, 40, 60]
    assert [k for k in range(1, 31) if _control_now(config, k, 30)] == []
    assert not any(_control_now(GridFitConfig(density_control_every=0), k, 80) for k in range(81))
    off = GridFitConfig(density_control_fraction=0.0)
    assert not any(_control_now(off, k, 80) for k in range(81))
    with pytest.raises(InputError, match="density_control_every"):
        GridFitConfig(density_control_every=-1).validate()


def test_split_pairs_inherit_their_parents_optimiser_moments():
    params = FitParameters(_model(), "cpu")
    optimizer = Adam([{"params": params.tensors(), "lr": 0.01}])
    loss = sum((t**2).sum() for t in params.tensors())
    loss.backward()
    optimizer.step()
    light, heavy = split_heaviest(params, 0.1, seed=2)
    _copy_optimizer_rows(optimizer, light, heavy)
    for state in optimizer.state.values():
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(state[key][light], state[key][heavy])


def _centre_of_mass(model: GaussianModel, rows: torch.Tensor) -> torch.Tensor:
    mass = model.amplitudes.detach()[rows]
    return (model.means.detach()[rows] * mass[:, None]).sum(0) / mass.sum()


def test_growth_splits_the_heaviest_until_the_model_holds_the_count():
    model = _model()  # 60 positive Gaussians, 8 negative
    amps = model.amplitudes.detach()
    for target in (100, 200):  # 200: more than the positives can give at once, split again
        grown = grow_heaviest(model, target, seed=2)
        new = grown.amplitudes.detach()
        assert len(model) == 68 and len(grown) == target and grown.signed
        # The mass and its centre are kept; the negative population is as it was.
        torch.testing.assert_close(new.sum(), amps.sum(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            _centre_of_mass(grown, torch.nonzero(new > 0).flatten()),
            _centre_of_mass(model, torch.nonzero(amps > 0).flatten()),
            rtol=1e-4,
            atol=1e-4,
        )
        torch.testing.assert_close(new[60:68], amps[60:68])
        torch.testing.assert_close(grown.means.detach()[60:68], model.means.detach()[60:68])
        assert int((new < 0).sum()) == 8
    # The heaviest are split first: after one round the lightest 40 keep their mass.
    grown = grow_heaviest(model, 88, seed=2)
    order = torch.argsort(amps[:60])
    torch.testing.assert_close(grown.amplitudes.detach()[order[:40]], amps[order[:40]])
    # The map changes at fine detail only.
    with torch.no_grad():
        curve = fsc(grown.voxelize().double().numpy(), model.voxelize().double().numpy())
    assert curve[1:4].min() > 0.997
    # As given when it already holds as many; seeded.
    assert grow_heaviest(model, 68, seed=0) is model
    torch.testing.assert_close(
        grow_heaviest(model, 90, seed=4).means, grow_heaviest(model, 90, seed=4).means
    )
    negative = GaussianModel(
        model.means.detach(),
        model.scales.detach(),
        model.quaternions.detach(),
        -amps.abs(),
        BOX,
        PIXEL,
        signed=True,
    )
    with pytest.raises(ValueError, match="no positive"):
        grow_heaviest(negative, 80, seed=0)
