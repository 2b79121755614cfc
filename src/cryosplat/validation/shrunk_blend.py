"""A shrunk inversion in the blend, where the halves estimate that the map's FSC gains by it.

:mod:`cryosplat.validation.data_blend` blends each half model with its half set's direct
inversion ``D = B / (W + c)``, ``c`` a hundredth of the mean CTF² (:data:`~cryosplat.validation.
data_blend.BLEND_REGULARIZATION`): nearly unbiased, which its estimate of ``α`` needs, but noisy
where a frequency's summed CTF² is small. Past the shells where that inversion holds a clear
signal the blend keeps the models; where the models hold little of the truth there (a molecule the
mixture cannot hold in detail, at ten to a hundred times the benchmark's signal), an inversion
shrunk by a Wiener constant of the whole mean CTF², ``S = B / (W + mean W)`` (what
``cryodrgn backproject_voxel`` computes), lies closer to the truth than either: on the 70S
ribosome at SNR 0.03 the mean of the two halves' ``S`` had 0.34 with the truth at 14.5 Å where the
models had 0.12 and ``D`` 0.29 (round 2, session 83).

``S`` is biased (it shrinks most where ``W`` is smallest), so it cannot enter ``α``'s estimate,
which takes the data as unbiased. It enters the map's FSC instead, as the halves estimate it
(:mod:`cryosplat.validation.map_blend_weights`): per shell, with ``β`` the model's weight,

    ``(β ⟨M̄, T⟩ + (1 − β) ⟨S̄, T⟩) / |β M̄ + (1 − β) S̄|``

with ``⟨S̄, T⟩`` from each half's ``S`` against the other half's ``D`` (independent noise, no
assumption on ``S``'s bias), against the same estimate for the blend ``α`` already chose. The
shell takes ``β M + (1 − β) S`` where that gains more than :data:`SHRUNK_GAIN_SIGMAS` standard
errors (``√(⟨|X_A − Y_A|²⟩ σ² / 2n)`` over the map's amplitude, ``X − Y`` the two choices'
difference in a half), read from sums pooled over :data:`SHRUNK_POOL_SHELLS` shells on each side
(shells past the first :data:`SHRUNK_POOL_SHELLS`, whose window is whole) where the two halves'
``S`` agree by more than :data:`SHRUNK_DATA_SIGMAS` of chance's standard errors, and where the
shell's own means gain too (a window across a sharp change in what the models hold can favour
``S`` where the shell alone does not: ``tests/test_shrunk_blend.py``).

The map as written is the halves times their local Wiener weight, which takes out much of the
noise a shrunk inversion would; so its shells are kept only where the same estimate, of the
weighted halves with and without them, still gains (:data:`MAP_CHECK_SIGMAS` pooled standard
errors, and the shell's own means): :func:`shells_the_map_keeps`, called by
:func:`cryosplat.reconstruct.map_composition.compose_map`. On 6VXX (from atoms, 10,000
particles, the models 0.9 with the truth at Nyquist) the shrunk shells gained 0.05 before the
weight and lost up to 0.010 after it; with the check none is kept.

Measured offline on the blend's inputs of 40 runs (round 2, session 83; the benchmark's signal
and ten to a hundred times it), through ``compose_map``: the 70S ribosome at SNR 0.03 0.143
crossing 14.33 → 12.83 Å (up to +0.20 a shell), EMD-1832 at SNR 0.03 19.37 → 15.69 Å at 0.5,
EMD-5625 at SNR 0.03-0.1 1.4-3.0 %, β-galactosidase at SNR 0.1 0.9 % and three ribosome sets at
the benchmark's signal up to 1.4 % finer at 0.5; the 13 other sets at the benchmark's signal and
6VXX and 8ZPM from atoms unchanged; no shell of any set lower by more than 0.005. Without the
check of the map as written, the ribosome at SNR 0.03 crossed 0.5 at 20.06 Å (the gain at shells
15-16 read under the check's gate) and 6VXX lost 0.010; with 3 standard errors for
:data:`SHRUNK_GAIN_SIGMAS` two sets lost 0.019 and 0.034 at a shell; with 8 the 0.143 crossings
barely moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from cryosplat.validation.map_blend_weights import MapTerms, map_score, window_means

__all__ = [
    "SHRUNK_DATA_SIGMAS",
    "SHRUNK_GAIN_SIGMAS",
    "SHRUNK_POOL_SHELLS",
    "SHRUNK_REGULARIZATION",
    "MAP_CHECK_SIGMAS",
    "ShrunkTerms",
    "shells_the_map_keeps",
    "shrunk_terms",
    "shrunk_choice",
]

SHRUNK_REGULARIZATION = 1.0
"""The Wiener constant of the shrunk inversion as a fraction of the mean CTF² (as
``cryodrgn backproject_voxel``). 0.1 gained a third as much on the same 38 runs."""
SHRUNK_POOL_SHELLS = 3
SHRUNK_DATA_SIGMAS = 8.0
SHRUNK_GAIN_SIGMAS = 5.0
MAP_CHECK_SIGMAS = 3.0

Spectra = tuple[torch.Tensor, torch.Tensor]
ShellMean = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ShrunkTerms:
    """Per shell, the means of the shrunk inversions ``S_A, S_B`` that the choice reads, with
    the blend's own (:class:`~cryosplat.validation.map_blend_weights.MapTerms`):
    ``⟨S̄, T⟩`` (each against the other half's ``D``), ``|S̄|²``, ``⟨M̄, S̄⟩``, ``⟨S_A, S_B⟩``,
    ``⟨|S_A|²⟩``, ``⟨|S_B|²⟩``, ``⟨|M − S|²⟩`` and ``⟨|D − S|²⟩`` (means of the halves), and the
    blend's terms pooled alike."""

    with_truth: torch.Tensor
    power: torch.Tensor
    with_model: torch.Tensor
    between_halves: torch.Tensor
    power_a: torch.Tensor
    power_b: torch.Tensor
    from_model: torch.Tensor
    from_data: torch.Tensor
    with_truth_model: torch.Tensor
    with_truth_data: torch.Tensor
    model_power: torch.Tensor
    data_power: torch.Tensor
    between: torch.Tensor
    own: torch.Tensor
    noise: torch.Tensor
    counts: torch.Tensor


def shrunk_terms(
    models: Spectra, data: Spectra, shrunk: Spectra, blend: MapTerms, cross: ShellMean
) -> ShrunkTerms:
    """The shell means :func:`shrunk_choice` reads.

    Parameters
    ----------
    models, data, shrunk : (A, B) spectra
        ``M``, ``D`` and ``S`` of the two halves (real FFTs of the masked maps).
    blend : MapTerms
        The blend's own shell means of ``M`` and ``D``.
    cross : callable
        The shell mean of ``Re(x conj y)`` over the frequencies the blend counts.
    """
    (m_a, m_b), (d_a, d_b), (s_a, s_b) = models, data, shrunk
    power_a, power_b, between_halves = cross(s_a, s_a), cross(s_b, s_b), cross(s_a, s_b)

    def difference(x: Spectra) -> torch.Tensor:
        return (cross(x[0] - s_a, x[0] - s_a) + cross(x[1] - s_b, x[1] - s_b)) / 2.0

    return ShrunkTerms(
        with_truth=(cross(s_a, d_b) + cross(s_b, d_a)) / 2.0,
        power=(power_a + power_b) / 4.0 + between_halves / 2.0,
        with_model=(cross(m_a, s_a) + cross(m_a, s_b) + cross(m_b, s_a) + cross(m_b, s_b)) / 4.0,
        between_halves=between_halves,
        power_a=power_a,
        power_b=power_b,
        from_model=difference(models),
        from_data=difference(data),
        with_truth_model=blend.with_truth_model,
        with_truth_data=blend.with_truth_data,
        model_power=blend.model_power,
        data_power=blend.data_power,
        between=blend.between,
        own=blend.own,
        noise=blend.noise,
        counts=blend.counts,
    )


def shrunk_choice(alpha: torch.Tensor, terms: ShrunkTerms) -> tuple[torch.Tensor, torch.Tensor]:
    """``(take, beta)`` per shell: where the map takes ``β M + (1 − β) S`` in place of the
    blend's ``α M + (1 − α) D`` (module docstring), and that ``β``.

    Parameters
    ----------
    alpha : torch.Tensor (K,)
        The blend's model weight per shell (the map's, after
        :func:`~cryosplat.validation.map_blend_weights.weights_for_the_map`).
    terms : ShrunkTerms
        The shell means, unpooled.
    """
    t = window_means(terms, SHRUNK_POOL_SHELLS)
    current, _ = map_score(
        alpha,
        (t.with_truth_model, t.with_truth_data),
        (t.model_power, t.data_power),
        t.between,
    )
    trial = torch.linspace(0.0, 1.0, 101, dtype=alpha.dtype, device=alpha.device)[:, None]
    scores, powers = map_score(
        trial, (t.with_truth_model, t.with_truth), (t.model_power, t.power), t.with_model
    )
    # β at most α, as the map's own choice moves only down (map_blend_weights: a model weight
    # above the halves' own lets the models' shared content in the solvent through the local
    # weight; 6VXX lost 0.019 near Nyquist where β went to 1 over α 0.92)
    best = torch.where(trial <= alpha, scores, -torch.inf).argmax(dim=0)
    columns = torch.arange(alpha.shape[0], device=alpha.device)
    beta, power = trial[best, 0], powers[best, columns]
    # |(1 − α)(D − M) − (1 − β)(S − M)|² in a half, from the three differences' powers
    a, b = 1.0 - alpha, 1.0 - beta
    difference = (
        a.square() * t.own
        + b.square() * t.from_model
        - a * b * (t.own + t.from_model - t.from_data)
    ).clamp_min(0.0)
    root_counts = t.counts.clamp_min(1.0).sqrt()
    standard_error = (difference * t.noise.clamp_min(0.0) / 2.0).sqrt() / root_counts
    standard_error = standard_error / power.sqrt()
    agreement = t.between_halves / (t.power_a * t.power_b).clamp_min(1e-300).sqrt()
    reads = agreement > SHRUNK_DATA_SIGMAS / root_counts
    whole_window = columns > SHRUNK_POOL_SHELLS
    gains = scores[best, columns] - current > SHRUNK_GAIN_SIGMAS * standard_error
    # and the shell's own means agree (a window across a sharp change in the models' content
    # can favour S where the shell alone does not)
    own_current, _ = map_score(
        alpha,
        (terms.with_truth_model, terms.with_truth_data),
        (terms.model_power, terms.data_power),
        terms.between,
    )
    own, _ = map_score(
        beta,
        (terms.with_truth_model, terms.with_truth),
        (terms.model_power, terms.power),
        terms.with_model,
    )
    return reads & gains & (own > own_current) & whole_window & (t.counts > 0), beta


@dataclass(frozen=True)
class _MapPair:
    """Per shell, two candidate maps' means against the data (:func:`shells_the_map_keeps`)."""

    candidate_with_truth: torch.Tensor
    plain_with_truth: torch.Tensor
    candidate_power: torch.Tensor
    plain_power: torch.Tensor
    difference: torch.Tensor
    noise: torch.Tensor
    counts: torch.Tensor

    def gains(self) -> torch.Tensor:
        """The candidate's estimated FSC with the truth over the plain map's, up to the
        truth's power."""
        candidate = self.candidate_with_truth / self.candidate_power.clamp_min(1e-300).sqrt()
        return candidate - self.plain_with_truth / self.plain_power.clamp_min(1e-300).sqrt()


def shells_the_map_keeps(
    candidate: Spectra,
    plain: Spectra,
    data: Spectra,
    grid: tuple[torch.Tensor, torch.Tensor],
    offered: np.ndarray,
) -> np.ndarray:
    """Of the ``offered`` shells, those where the written map's halves with the shrunk
    inversion (``candidate``, after the local weight) are estimated closer to the truth than the
    plain blend's (``plain``): the same estimate and gates as :func:`shrunk_choice`
    (:data:`SHRUNK_POOL_SHELLS`, :data:`MAP_CHECK_SIGMAS`, the shell's own means agreeing), now
    of the maps as written (module docstring).

    Parameters
    ----------
    candidate, plain, data : (A, B) spectra
        Real FFTs of the masked halves of the two maps, and of the data's inversions ``D``.
    grid : (shells, multiplicity)
        :func:`~cryosplat.validation.fsc.half_grid_shells` of the box.
    offered : np.ndarray (D//2 + 1,), bool
        The shells :func:`shrunk_choice` took.
    """
    # Each coefficient of the half grid counted once (the rule was measured so; shell_sums
    # counts the full grid, its Friedel mates twice, and keeps other shells).
    n_shells, shells = len(offered), grid[0]
    inside = shells < n_shells
    index = shells[inside]
    counts = torch.zeros(n_shells, dtype=torch.float64, device=shells.device)
    counts.index_add_(0, index, torch.ones_like(index, dtype=torch.float64))

    def mean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        values = (x * y.conj()).real[inside].to(torch.float64)
        sums = torch.zeros(n_shells, dtype=torch.float64, device=shells.device)
        return sums.index_add_(0, index, values) / counts.clamp_min(1.0)

    (c_a, c_b), (p_a, p_b), (d_a, d_b) = candidate, plain, data
    pair = _MapPair(
        candidate_with_truth=(mean(c_a, d_b) + mean(c_b, d_a)) / 2.0,
        plain_with_truth=(mean(p_a, d_b) + mean(p_b, d_a)) / 2.0,
        candidate_power=(mean(c_a, c_a) + mean(c_b, c_b)) / 4.0 + mean(c_a, c_b) / 2.0,
        plain_power=(mean(p_a, p_a) + mean(p_b, p_b)) / 4.0 + mean(p_a, p_b) / 2.0,
        difference=(mean(c_a - p_a, c_a - p_a) + mean(c_b - p_b, c_b - p_b)) / 2.0,
        noise=mean(d_a - d_b, d_a - d_b) / 2.0,
        counts=counts,
    )
    pooled = window_means(pair, SHRUNK_POOL_SHELLS)
    standard_error = (pooled.difference * pooled.noise / 2.0).clamp_min(0.0).sqrt()
    standard_error = standard_error / pooled.counts.clamp_min(1.0).sqrt()
    standard_error = standard_error / pooled.candidate_power.clamp_min(1e-300).sqrt()
    keeps = (pooled.gains() > MAP_CHECK_SIGMAS * standard_error) & (pair.gains() > 0)
    return keeps.cpu().numpy() & offered
