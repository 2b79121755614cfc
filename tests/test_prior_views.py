"""The prior's signal power read from the halves' FSC where the views are uneven (issue 11).

Two direct inversions ``D = B / (W + c)`` of independent halves hold the signal times
``W / (W + c)`` and a noise of variance ``W / (W + c)²`` at each point; over a shell whose points
are sampled unevenly the FSC's noise is that of the thinly sampled points, and the signal power it
implies is ``FSC / (1 − FSC) / W_F`` with ``W_F = Σ W² / (W + c)² / Σ W / (W + c)²``, not the mean
``W`` (RELION's ``τ²`` from a shell where every direction is sampled alike).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.reconstruct.grid.fit import GridFitConfig
from cryosplat.reconstruct.grid.loss import shell_prior_ratios
from cryosplat.reconstruct.grid.prior import fit_prior_ratios, fsc_weight_ratio, prior_ratios
from cryosplat.reconstruct.grid.statistics import (
    DEFAULT_WIENER_REGULARIZATION,
    FourierStatistics,
    shell_of,
)

BOX, PAD = 16, 2


def statistics_with_weights(weights: torch.Tensor) -> FourierStatistics:
    size = BOX * PAD
    max_radius = BOX / 2 - 1.0
    return FourierStatistics(
        weights=weights,
        data=torch.zeros((size, size, size // 2 + 1), dtype=torch.complex64),
        box=BOX,
        pad=PAD,
        pixel_size_angstrom=2.0,
        n_particles=100,
        power=torch.zeros(int(max_radius**2) + 1, dtype=torch.float64),
        max_radius=max_radius,
    )


def half_grid_shells() -> torch.Tensor:
    size = BOX * PAD
    k = torch.arange(size, dtype=torch.float64) - size // 2
    kx = torch.arange(size // 2 + 1, dtype=torch.float64)
    r2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2
    return shell_of(r2, PAD)


def uneven_weights(seed: int) -> torch.Tensor:
    """Most of the weight on the points near the z axis, as when most views look down one axis:
    a central slice perpendicular to a view's axis holds the points at right angles to it, so
    views near z fill the points with small ``K_z``."""
    size = BOX * PAD
    k = torch.arange(size, dtype=torch.float64) - size // 2
    kx = torch.arange(size // 2 + 1, dtype=torch.float64)
    kz = k[:, None, None].expand(size, size, size // 2 + 1)
    r = (kz**2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2).sqrt().clamp_min(1.0)
    near_plane = (kz.abs() / r < 0.3).double()
    rng = np.random.default_rng(seed)
    jitter = torch.from_numpy(rng.uniform(0.8, 1.2, size=kz.shape))
    return (20.0 * near_plane + 0.5) * jitter


def test_fsc_weight_of_even_sampling_is_the_mean_weight():
    stats = statistics_with_weights(torch.full((32, 32, 17), 3.5, dtype=torch.float32))
    torch.testing.assert_close(
        stats.fsc_weight_by_shell(), stats.mean_weight_by_shell(), rtol=1e-6, atol=0.0
    )
    torch.testing.assert_close(fsc_weight_ratio(stats), torch.ones(BOX // 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="regularization must be non-negative, got -1"):
        stats.fsc_weight_by_shell(-1.0)


def test_fsc_weight_is_the_ratio_of_sums_per_shell():
    weights = uneven_weights(seed=1)
    stats = statistics_with_weights(weights.float())
    w = stats.weights.double()
    c = DEFAULT_WIENER_REGULARIZATION * float(w.sum()) / int(torch.count_nonzero(w))
    shells = half_grid_shells()
    seen = stats.fsc_weight_by_shell()
    for shell in (1, 3, 7):
        points = w[shells == shell]
        expected = (points**2 / (points + c) ** 2).sum() / (points / (points + c) ** 2).sum()
        assert float(seen[shell]) == pytest.approx(float(expected), rel=1e-9)
        assert float(seen[shell]) < 0.5 * float(points.mean())  # uneven: far under the mean


def test_signal_power_from_the_fsc_of_unevenly_sampled_halves():
    """Simulated halves on an uneven shell: ``FSC / (1 − FSC) / W_F`` recovers the signal's
    power; with the mean ``W`` in its place it is low by the factor ``W̄ / W_F``."""
    rng = np.random.default_rng(7)
    n = 400_000
    weights = np.where(rng.uniform(size=n) < 0.15, 20.0, 0.3) * rng.uniform(0.8, 1.2, size=n)
    c = DEFAULT_WIENER_REGULARIZATION * weights.mean()
    signal_power = 0.5

    def complex_normal(variance):
        return np.sqrt(variance / 2) * (rng.normal(size=n) + 1j * rng.normal(size=n))

    truth = complex_normal(signal_power)
    halves = [(weights * truth + complex_normal(weights)) / (weights + c) for _ in range(2)]
    a, b = halves
    fsc = np.real(np.vdot(b, a)) / np.sqrt(np.vdot(a, a).real * np.vdot(b, b).real)
    seen = np.sum(weights**2 / (weights + c) ** 2) / np.sum(weights / (weights + c) ** 2)
    assert fsc / (1 - fsc) / seen == pytest.approx(signal_power, rel=0.05)
    assert fsc / (1 - fsc) / weights.mean() < 0.3 * signal_power


def test_prior_ratios_scale_with_the_fsc_weight_ratio():
    curve = np.array([1.0, 0.9, 0.5, 0.2, 0.01])
    ratio = np.array([1.0, 0.5, 0.25])  # past its end: its last value
    scaled = shell_prior_ratios(curve, 6, strength=0.5, cap=2.0, weight_ratio=ratio)
    fsc = np.clip(np.array([1.0, 0.9, 0.5, 0.2, 0.01, 0.01]), 1e-3, 0.999)
    per_shell = np.array([1.0, 0.5, 0.25, 0.25, 0.25, 0.25])
    # the cap applies after the ratio: FSC 0.01 gives 0.25 · 0.5 · 99 = 12.4, capped at 2
    np.testing.assert_allclose(
        scaled, np.minimum(0.5 * (1 - fsc) / fsc * per_shell, 2.0), rtol=1e-12
    )
    assert float(scaled[4]) == 2.0
    for bad in ([], [1.0, 0.0], [np.nan]):
        with pytest.raises(ValueError, match="weight_ratio must hold positive values"):
            shell_prior_ratios(curve, 6, strength=0.5, cap=2.0, weight_ratio=bad)


def test_the_fit_prior_reads_the_statistics_views():
    stats = statistics_with_weights(uneven_weights(seed=2).float())
    curve = np.linspace(0.99, 0.05, BOX // 2 + 1)
    config = GridFitConfig()
    n_shells = BOX // 2
    used = fit_prior_ratios(stats, config, curve)
    torch.testing.assert_close(used, prior_ratios(curve, n_shells, config, stats))
    even = prior_ratios(curve, n_shells, config)
    # uneven views: a weaker prior wherever the cap does not bind
    free = even < config.prior_cap
    assert bool((used[free] < 0.6 * even[free]).all())
    assert fit_prior_ratios(stats, GridFitConfig(prior_strength=0.0), curve) is None
    assert fit_prior_ratios(stats, config, None) is None
