"""The particles' scores read as a mixture: images of noise alone and the molecule at its pose.

:class:`~cryosplat.reconstruct.grid.particle_scores.ParticleScores` fits it once
(:attr:`~cryosplat.reconstruct.grid.particle_scores.ParticleScores.mixture`); see that module's
docstring for the scores themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_SPREAD", "MIXTURE_STEPS", "ScoreMixture", "fit_mixture"]

MIXTURE_STEPS = 500  # expectation-maximisation steps at most (:func:`fit_mixture`)
MAX_SPREAD = 3.0  # the molecule's scores spread at most three times as wide as noise's


@dataclass(frozen=True)
class ScoreMixture:
    """Scores read as ``z_i ~ π₀ N(0, 1) + (1 − π₀) N(κ m_i, τ²)``: images of noise alone, and
    the molecule at its pose scoring ``κ`` times its expected score ``m_i``
    (:attr:`ParticleScores.amplitude`) give or take ``τ ≥ 1`` (the map's own errors widen it).

    Attributes
    ----------
    null_fraction : float
        ``π₀``.
    gain : float
        ``κ``.
    spread : float
        ``τ``.
    junk_probability : np.ndarray, (N,)
        Each image's posterior chance of being noise alone (1 where its score is NaN).
    """

    null_fraction: float
    gain: float
    spread: float
    junk_probability: np.ndarray


def _normal(x: np.ndarray, spread: float = 1.0) -> np.ndarray:
    return np.exp(-0.5 * (x / spread) ** 2) / (math.sqrt(2.0 * math.pi) * spread)


def fit_mixture(z: np.ndarray, expected: np.ndarray) -> ScoreMixture:
    """Fit :class:`ScoreMixture` to scores ``z`` (N,) with expected scores ``expected`` (N,)
    by expectation-maximisation.

    The noise component is fixed (``N(0, 1)``: what a score is under noise alone), so where the
    molecule's scores stand clear of zero the share of noise is read without a threshold; where
    they overlap (a weak signal), the images scoring near zero are explained by the molecule's
    own spread as well, and the share of noise goes to zero when nothing else calls for it.
    """
    z, expected = np.asarray(z, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    good = np.isfinite(z) & np.isfinite(expected)
    probability = np.ones(len(z))
    if good.sum() < 2:
        return ScoreMixture(1.0, 0.0, 1.0, probability)
    x, m = z[good], np.maximum(expected[good], 0.0)
    null = float(np.clip(2.0 * np.mean(x < 0), 0.01, 0.9))
    gain = float(max(np.sum(x * m) / max(np.sum(m * m), 1e-300), 1e-3))
    spread = 1.0
    for _ in range(MIXTURE_STEPS):
        noise = null * _normal(x)
        molecule = (1.0 - null) * _normal(x - gain * m, spread)
        r = noise / np.maximum(noise + molecule, 1e-300)
        kept = 1.0 - r
        new_null = float(np.clip(r.mean(), 1e-6, 1.0 - 1e-6))
        gain = float(max(np.sum(kept * x * m) / max(np.sum(kept * m * m), 1e-300), 1e-3))
        variance = np.sum(kept * (x - gain * m) ** 2) / max(kept.sum(), 1e-300)
        spread = float(np.clip(math.sqrt(variance), 1.0, MAX_SPREAD))
        converged = abs(new_null - null) < 1e-7
        null = new_null
        if converged:
            break
    noise = null * _normal(x)
    molecule = (1.0 - null) * _normal(x - gain * m, spread)
    probability[good] = noise / np.maximum(noise + molecule, 1e-300)
    return ScoreMixture(null, gain, spread, probability)
