"""The map's share of the data in the blend, where the data hold much: each shell's ``α`` moved
down to what the halves estimate the map's FSC with the truth best at.

:mod:`cryosplat.validation.data_blend` weighs each half's model against its data's inversion by
that half's squared error. The map is the mean of the two halves, and it is judged by its FSC
with the truth. Where the data hold much signal the two differ: in the mean the data's noise halves
while an error the two models share (what a mixture of that size and shape cannot hold) does not,
so the map wants more of the data than either half. So where the data's FSC exceeds
:data:`MAP_DATA_SIGMAS` ``/√n``, ``α`` moves down to the maximum over ``[0, α]`` of the map's FSC
with the truth as the halves estimate it,

    ``(α ⟨M̄, T⟩ + (1 − α) ⟨D̄, T⟩) / |α M̄ + (1 − α) D̄|``

(``⟨M̄, T⟩`` from each model against the other half's data, ``⟨D̄, T⟩`` as ``⟨D_A, D_B⟩``; the
truth's own power is the same for every ``α``), where that gains more than
:data:`MAP_GAIN_SIGMAS` standard errors (``|Δα| √(⟨|M_A − D_A|²⟩ σ² / 2n)`` over the map's
amplitude). Only down: above each half's optimum the FSC would take models that are the signal
shrunk (the fit's prior shrinks what it holds weakly) as they are, and the halves would then
agree on the models' own content in the solvent, which the local weight, read from their
agreement, keeps (6VXX: 0.016 lower near Nyquist when ``α`` moved both ways). Measured (round 2,
session 54): EMD-5625 and EMD-1832 at a hundred times the benchmark's signal 3.1 % and 7.2 %
finer at 0.5 (0.02–0.07 higher over shells 14–20 of EMD-5625); at ten times the crossings the
same, the shells within ±0.02; on 56 runs at the benchmark's signal (thirteen tuning sets and
fifteen others, two seeds) the same maps to the bit.

Pooled shells. Where the signal is steady but a shell's own coefficients are too few for its data
to clear the gate (a molecule's detail at ten to a hundred times the benchmark's signal, where
the two inversions' FSC is 0.04-0.06 a shell), the same choice is read from the shell's sums pooled
with :data:`MAP_POOL_SHELLS` neighbours on each side, where those clear
:data:`POOLED_MAP_DATA_SIGMAS` of their own standard errors (shells past the first
:data:`MAP_POOL_SHELLS`, whose window is whole). Measured (round 2, session 82, offline on the
blend's inputs of 38 runs): EMD-5625 at SNR 0.03-0.3 and from 40,000 particles 1.8-2.5 % finer at
0.5, the EMD-1832 sets at SNR 0.01-0.1 0-1.0 %, the 70S ribosome at SNR 0.03 1.0 %, the largest
loss at any shell 0.007; the sets at the benchmark's signal the same but two (one shell 0.004
higher; one 0.018 higher and its neighbour 0.002 lower).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

__all__ = [
    "MAP_DATA_SIGMAS",
    "MAP_GAIN_SIGMAS",
    "MAP_POOL_SHELLS",
    "POOLED_MAP_DATA_SIGMAS",
    "MapTerms",
    "map_score",
    "weights_for_the_map",
    "window_means",
]

# Where the data's FSC exceeds MAP_DATA_SIGMAS/√n, ``α`` moves down to the maximum of the map's
# estimated FSC with the truth when that gains more than MAP_GAIN_SIGMAS standard errors
# (module docstring). Measured offline on the blend's inputs of eleven runs (round 2, session
# 54): with the data's gate at 3/√n one shell each of three sets at the benchmark's signal moved
# and lost 0.003-0.055 with the truth; at 5/√n none moved, the gain at a hundred times the signal
# the same.
MAP_DATA_SIGMAS = 5.0
MAP_GAIN_SIGMAS = 3.0

# Where a shell's own data are under MAP_DATA_SIGMAS/√n but its sums pooled with MAP_POOL_SHELLS
# neighbours on each side exceed POOLED_MAP_DATA_SIGMAS/√n_pooled, ``α`` moves down as above, read
# from the pooled sums (module docstring). Measured offline on the blend's inputs of 38 runs
# (round 2, session 82): at 5 of the pooled standard errors the ribosome at the benchmark's
# signal lost 0.038 and EMD-6824 with preferred views 0.036 at a shell; at 8 no set at the
# benchmark's signal moved by more than 0.02 at any shell, and the sets at ten to a hundred times
# it kept their gains (EMD-5625 0.5 crossings 1.8-2.5 % finer).
MAP_POOL_SHELLS = 2
POOLED_MAP_DATA_SIGMAS = 8.0


@dataclass(frozen=True)
class MapTerms:
    """Per shell, the means the map's FSC with the truth is estimated from (module docstring):
    ``⟨M̄, T⟩`` (each model against the other half's data), ``⟨D̄, T⟩`` (as ``⟨D_A, D_B⟩``),
    ``|M̄|²``, ``|D̄|²``, ``⟨M̄, D̄⟩``, ``⟨|D_A|²⟩``, ``⟨|D_B|²⟩``, ``⟨|M_A − D_A|²⟩``, ``σ²``, and the
    count of frequencies behind each mean."""

    with_truth_model: torch.Tensor
    with_truth_data: torch.Tensor
    model_power: torch.Tensor
    data_power: torch.Tensor
    between: torch.Tensor
    data_power_a: torch.Tensor
    data_power_b: torch.Tensor
    own: torch.Tensor
    noise: torch.Tensor
    counts: torch.Tensor

    def data_fsc(self) -> torch.Tensor:
        """The two inversions' FSC per shell."""
        product = (self.data_power_a * self.data_power_b).clamp_min(1e-300)
        return self.with_truth_data / product.sqrt()

    def pooled(self, width: int) -> MapTerms:
        """Every mean taken over its shell and ``width`` neighbours on each side (as far as the
        shells go), weighted by their counts."""
        return window_means(self, width)


def window_means(terms, width: int):
    """``terms`` (a dataclass of per-shell means with a ``counts`` field) with every mean taken
    over its shell and ``width`` neighbours on each side (as far as the shells go), weighted by
    their counts; ``counts`` summed."""
    n = terms.counts.shape[0]
    lows = (torch.arange(n, device=terms.counts.device) - width).clamp_min(0)
    highs = (torch.arange(n, device=terms.counts.device) + width + 1).clamp_max(n)

    def window_sum(values: torch.Tensor) -> torch.Tensor:
        running = torch.cat([values.new_zeros(1), torch.cumsum(values, 0)])
        return running[highs] - running[lows]

    counts = window_sum(terms.counts)
    means = {
        name: window_sum(getattr(terms, name) * terms.counts) / counts.clamp_min(1.0)
        for name in (f.name for f in fields(terms))
        if name != "counts"
    }
    return type(terms)(**means, counts=counts)


def map_score(
    weight: torch.Tensor,
    with_truth: tuple[torch.Tensor, torch.Tensor],
    powers: tuple[torch.Tensor, torch.Tensor],
    between: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The FSC with the truth, up to the truth's power, of ``weight · X + (1 − weight) · Y`` per
    shell, and that map's power, from the shell means ``with_truth`` (``⟨X, T⟩``, ``⟨Y, T⟩``),
    ``powers`` (``|X|²``, ``|Y|²``) and ``between`` (``⟨X, Y⟩``) (module docstring)."""
    power = (
        weight.square() * powers[0]
        + (1.0 - weight).square() * powers[1]
        + 2.0 * weight * (1.0 - weight) * between
    ).clamp_min(1e-300)
    return (weight * with_truth[0] + (1.0 - weight) * with_truth[1]) / power.sqrt(), power


def _reads(terms: MapTerms, data_sigmas: float) -> torch.Tensor:
    """The shells whose data's FSC is over ``data_sigmas`` of chance's standard errors."""
    return terms.data_fsc() > data_sigmas / terms.counts.clamp_min(1.0).sqrt()


def _map_choice(
    alpha: torch.Tensor, terms: MapTerms, reads: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(chosen, moves)``: per shell the ``α`` at most the halves' own that maximises the map's
    estimated FSC with the truth, and where to take it: in the shells that ``reads``
    (:func:`_reads`) where the gain is over :data:`MAP_GAIN_SIGMAS` of its own standard errors."""
    trial = torch.linspace(0.0, 1.0, 101, dtype=alpha.dtype, device=alpha.device)[:, None]

    def score(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return map_score(
            weight,
            (terms.with_truth_model, terms.with_truth_data),
            (terms.model_power, terms.data_power),
            terms.between,
        )

    scores, powers = score(trial)
    best = torch.where(trial <= alpha, scores, -torch.inf).argmax(dim=0)  # only ever down
    columns = torch.arange(alpha.shape[0], device=alpha.device)
    chosen, chosen_power = trial[best, 0], powers[best, columns]
    current, _ = score(alpha)
    root_counts = terms.counts.clamp_min(1.0).sqrt()
    standard_error = (chosen - alpha).abs() * (terms.own * terms.noise / 2.0).clamp_min(0.0).sqrt()
    standard_error = standard_error / root_counts / chosen_power.sqrt()
    moves = reads & (scores[best, columns] - current > MAP_GAIN_SIGMAS * standard_error)
    return chosen, moves & (terms.counts > 0)


def weights_for_the_map(alpha: torch.Tensor, terms: MapTerms) -> torch.Tensor:
    """``α`` per shell moved down to the maximum of the map's estimated FSC with the truth where
    the data hold much signal and the gain is significant (module docstring): read shell by shell
    where a shell's own data hold it, else from the shells pooled about it where they do.

    Parameters
    ----------
    alpha : torch.Tensor (K,)
        Each half's weight of its model per shell.
    terms : MapTerms
        The shell means of the four maps' spectra.
    """
    own_shell_reads = _reads(terms, MAP_DATA_SIGMAS)
    chosen, moves = _map_choice(alpha, terms, own_shell_reads)
    pooled = terms.pooled(MAP_POOL_SHELLS)
    full_window = torch.arange(alpha.shape[0], device=alpha.device) > MAP_POOL_SHELLS
    pooled_reads = _reads(pooled, POOLED_MAP_DATA_SIGMAS) & ~own_shell_reads & full_window
    pooled_chosen, pooled_moves = _map_choice(alpha, pooled, pooled_reads)
    return torch.where(moves, chosen, torch.where(pooled_moves, pooled_chosen, alpha))
