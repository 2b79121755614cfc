"""Each image's log-likelihood with each of a set of candidate CTFs, against a map's slices.

The sums behind :mod:`cryosplat.reconstruct.grid.defocus_fit`'s ``L_ik`` (its docstring) for any
candidate CTF: the image's own CTF moved in mean defocus and in the astigmatism's two components
(:class:`CTFCandidates`), as the defocus and astigmatism reads need them
(:mod:`cryosplat.reconstruct.grid.astigmatism_fit`). Where a batch's images carry no CTF of
their own and share one voltage, every move is a phase the batch shares, and the sums over
moves are four real matrix products (:func:`_moved_log_likelihood`) with the moves' basis made
once a pass (:func:`move_basis`); else each candidate CTF is made and summed in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.ctf import CTFParams
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.particle_scores import (
    GroupSamples,
    ParticleScores,
    SampleReading,
    read_samples,
)
from cryosplat.reconstruct.grid.row_store import RowStore

__all__ = ["image_noise", "shell_weights", "CTFCandidates", "ctf_log_likelihood", "move_basis"]


@dataclass(frozen=True)
class CTFCandidates:
    """The CTFs each image is read with: its ``base`` CTF moved by each of ``moves_angstrom``
    (added to the mean defocus and the astigmatism's components,
    :meth:`~cryosplat.core.ctf_plane.CTFPlane.moved_phases`), then, where given, the ``last``.

    Attributes
    ----------
    base : CTFParams
        The particle set's rows.
    moves_angstrom : np.ndarray, (K, 3)
    last : CTFParams, optional
        The particle set's rows: one column more.
    """

    base: CTFParams
    moves_angstrom: np.ndarray
    last: CTFParams | None = None

    @property
    def count(self) -> int:
        return len(self.moves_angstrom) + (self.last is not None)


def ctf_log_likelihood(
    particles: ParticleSet,
    rows: ArrayLike,
    volume: ArrayLike,
    scores: ParticleScores,
    candidates: CTFCandidates,
    reading: SampleReading | None = None,
    progress: Callable[[int], None] | None = None,
    store: RowStore | None = None,
) -> np.ndarray:
    """Each image's log-likelihood with each of ``candidates``' CTFs (the module's docstring's
    ``L_ik``): (N, candidates.count) float64, following ``rows``; parameters as
    :func:`defocus_log_likelihood`'s; ``store``, where given, keeps the pass as it goes and
    holds the rows done before (:func:`~cryosplat.reconstruct.grid.particle_scores.shell_sums`).

    Where the images carry no CTF of their own and a batch is of one voltage, the moves' sums are
    matrix products (:func:`_moved_log_likelihood`); else each CTF is made and summed in turn."""
    weights = shell_weights(scores)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    moves = np.asarray(candidates.moves_angstrom, dtype=np.float64).reshape(-1, 3)
    store = RowStore(len(rows)) if store is None else store
    store.column("log_likelihood", (candidates.count,))
    todo, left, progress = store.pending(rows, progress)
    cross_weight = cross_scale = None
    bases: dict = {}  # each sampling and voltage's move_basis, made at its first batch
    with store.saved_on_exit():
        for samples in read_samples(particles, left, volume, reading, progress):
            if cross_weight is None:
                device = samples.kept.device
                cross_weight, cross_scale = (torch.as_tensor(w, device=device) for w in weights)
            friedel = samples.friedel.float()
            cross = (samples.data.conj() * samples.slices).real
            cross = cross * (friedel * cross_weight[samples.shell].float())
            model = samples.slices.abs().square() * (friedel * cross_scale[samples.shell].float())
            values = _batch_log_likelihood(samples, cross, model, candidates, moves, bases)
            store.put(todo[samples.positions], log_likelihood=0.5 * values.numpy())
    return store.finish()["log_likelihood"] / image_noise(scores)[:, None]


def shell_weights(scores: ParticleScores) -> tuple[np.ndarray, np.ndarray]:
    """The likelihood's weights per shell, ``a_s / σ²_s`` and ``a_s² / σ²_s`` (S,) (0 where a
    shell was not read), of scores made by
    :func:`~cryosplat.reconstruct.grid.particle_scores.score_from_sums`."""
    if scores.shell_noise is None:
        raise ValueError("scores without the noise per shell (made by score_from_sums)")
    noise = scores.shell_noise
    read = noise > 0
    inverse = np.where(read, 1.0 / np.where(read, noise, 1.0), 0.0)
    return scores.shell_scale * inverse, scores.shell_scale**2 * inverse


def image_noise(scores: ParticleScores) -> np.ndarray:
    """Each image's noise relative to the set's, ``c_i`` (N,), NaN where it could not be read
    (the log-likelihoods are divided by it)."""
    relative = np.asarray(scores.noise_scale, dtype=np.float64)
    return np.where(relative > 0, relative, np.nan)


def _batch_log_likelihood(
    samples: GroupSamples,
    cross: torch.Tensor,
    model: torch.Tensor,
    candidates: CTFCandidates,
    moves: np.ndarray,
    bases: dict,
) -> torch.Tensor:
    """One batch's ``Σ_j [2 X_j C_jk − P_j C_jk²]`` (n, candidates.count) with the weighted
    cross terms ``X`` and model powers ``P`` (n, M) of its ``samples``; ``bases`` keeps each
    sampling and voltage's :func:`move_basis` for the batches after (the moves' phases are the
    same for all of them)."""
    at = samples.part.rows
    params = candidates.base.subset(at)
    values = torch.empty(len(samples.positions), candidates.count, dtype=torch.float64)

    def summed(ctf: torch.Tensor) -> torch.Tensor:
        ctf = samples.transfer(ctf)
        return (2.0 * cross * ctf - model * ctf.square()).double().sum(1).cpu()

    if _moves_as_phases(samples, params):
        chi, factor, phases = samples.plane.moved_phases(params, moves)
        key = (id(samples.plane), float(params.voltage_kv[0]))
        if key not in bases:
            bases[key] = (samples.plane, move_basis(phases))  # held with it: its id names it
        basis = bases[key][1]
        values[:, : len(moves)] = _moved_log_likelihood(cross, model, chi, factor, basis)
    else:
        for k, (mean, a, b) in enumerate(moves):
            values[:, k] = summed(samples.plane(params.moved(mean, np.tile([a, b], (len(at), 1)))))
    if candidates.last is not None:
        values[:, -1] = summed(samples.plane(candidates.last.subset(at)))
    return values


def _moves_as_phases(samples: GroupSamples, params: CTFParams) -> bool:
    """Whether a batch's moves are phases shared by its images (:func:`_moved_log_likelihood`):
    its images carry no CTF of their own, and are of one voltage."""
    return samples.codes is None and np.unique(params.voltage_kv).size == 1


def move_basis(phases: torch.Tensor) -> torch.Tensor:
    """``(cos φ, sin φ, cos 2φ, sin 2φ)`` of the moves' ``phases`` (M, K): (4, M, K) float64."""
    phases = phases.double()
    sin, cos = torch.sin(phases), torch.cos(phases)
    return torch.stack([cos, sin, cos.square() - sin.square(), 2.0 * sin * cos])


def _moved_log_likelihood(
    cross: torch.Tensor,
    model: torch.Tensor,
    chi: torch.Tensor,
    factor: torch.Tensor | None,
    basis: torch.Tensor,
) -> torch.Tensor:
    """``Σ_j [2 X_j C_jk − P_j C_jk²]`` (n, K) for ``C_jk = f_j sin(χ_j + φ_jk)``, with the
    weighted cross terms ``X`` and model powers ``P`` (n, M), the phase ``chi`` (n, M), the
    ``factor`` ``f`` (n, M or None) and the moves' phases as :func:`move_basis` (4, M, K):
    ``2 Im(X f e^{iχ} · e^{iφ}) − ½ Σ P f² + ½ Re(P f² e^{2iχ} · e^{2iφ})``. Only the imaginary
    part of the one complex product and the real part of the other are needed: four real
    products in double precision, ``2Xf sin χ · cos φ + 2Xf cos χ · sin φ + ½Pf² cos 2χ · cos 2φ
    − ½Pf² sin 2χ · sin 2φ`` (half the arithmetic of the complex products; round 2, session 67)."""
    weight = (model if factor is None else model * factor.square()).double()
    signal = (cross if factor is None else cross * factor).double()
    sin_chi, cos_chi = torch.sin(chi).double(), torch.cos(chi).double()
    out = ((2.0 * signal) * sin_chi) @ basis[0]
    out.addmm_((2.0 * signal) * cos_chi, basis[1])
    out.addmm_((0.5 * weight) * (cos_chi.square() - sin_chi.square()), basis[2])
    out.addmm_((-weight) * (sin_chi * cos_chi), basis[3])
    out -= 0.5 * weight.sum(1, keepdim=True)
    return out.cpu()
