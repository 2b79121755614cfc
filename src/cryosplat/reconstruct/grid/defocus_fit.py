"""Each particle's defocus read from its own image, against a map without the image's own share.

A CTF estimate per micrograph misses each particle's height in the ice, and errs by tens to
hundreds of ångströms itself. A defocus error ``Δz`` turns the CTF's phase by ``π λ Δz s²``: about
a radian at 3 Å for 200 Å, so the images' finest detail is added with the wrong sign. With the
poses known, the image says which defocus it was taken at: the map's central slice at its pose,
times the CTF at a candidate defocus, predicts it best at the right one.

Per image ``i`` and candidate offset ``δ_k`` (added to both defocus values, the astigmatism kept;
:class:`DefocusSearch`) the log-likelihood under coloured Gaussian noise is
(:func:`defocus_log_likelihood`)

    ``L_ik = ½ Σ_s Σ_(j ∈ s) [2 a_s Re(X̄_j P_j) C_jk − a_s² |P_j|² C_jk²] / (σ²_s c_i)``

with ``X`` the image's spectrum, ``P`` the map's slice, ``C_jk`` the CTF at the offset, and the
map's scale ``a_s``, the noise power ``σ²_s`` and the image's relative noise ``c_i`` those
:mod:`cryosplat.reconstruct.grid.particle_scores` fits at the recorded defocus (the ``½``: the
half plane's samples stand for their Friedel mates, which hold nothing new).

One image holds little about its defocus where the signal is weak; the offsets are read as
posterior means under a normal prior whose centre and spread are fitted to the whole set
(:func:`fit_offsets`, empirical Bayes): where the data say the recorded defoci are right, the
prior narrows and the offsets go to zero; where they err, it widens to their spread. Measured on
a set whose STAR holds defoci 300 Å off (round 2, session 65): against the other half's map the
fitted spread is 260 Å, and the offsets' correlation with the true errors 0.70; the flat
posterior's mean over ±2,000 Å (no prior) correlates 0.47 and leaves the errors larger.

Where each particle's micrograph is known, the prior is hierarchical: a micrograph's estimate
errs once for all its particles, each particle's height adds its own, and a micrograph's images
read its error together (:func:`fit_offsets`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from cryosplat.core.ctf import electron_wavelength_angstrom
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.ctf_likelihood import CTFCandidates, ctf_log_likelihood
from cryosplat.reconstruct.grid.particle_scores import ParticleScores, SampleReading
from cryosplat.reconstruct.grid.row_store import RowStore

__all__ = [
    "DEFAULT_RANGE_ANGSTROM",
    "DefocusFit",
    "DefocusSearch",
    "defocus_log_likelihood",
    "fit_offsets",
]

DEFAULT_RANGE_ANGSTROM = 2000.0
"""Offsets searched to ± this (Å): a micrograph's estimate and a particle's height in the ice
together seldom err by more."""
MAX_PHASE_STEP = 0.25  # rad: the CTF's phase at the finest shell read turns by at most this
MIN_STEPS_PER_SIDE = 25  # candidates on each side of zero at least
PRIOR_SPREADS = 64  # the prior's spreads tried (:func:`fit_offsets`)
MICROGRAPH_SPREADS = 16  # each spread of the hierarchical prior tried on this many values
CENTRE_STEPS = 5  # expectation-maximisation steps for the prior's centre at each spread
EVIDENCE_TIE = 1e-6  # a wider prior is kept only where it explains the images better than this
SIGNIFICANT_GAIN = 5.0
"""The offsets are applied only where the fitted prior explains the images better than none
(every offset 0) by this much log-likelihood (nats; twice it, 10, has a chance below 0.002 under
the null). Where the data are coarse, the CTF's phase at the shells read hardly turns with the
defocus: on EMD-5625 at 14 Å the widest prior gains 0.6 nats over 6,000 images, where 300 Å errors
at 3 Å gain 446 over 5,000 (round 2, session 65)."""


@dataclass(frozen=True)
class DefocusSearch:
    """The defocus offsets tried (Å, added to both defocus values), symmetric about 0.

    Attributes
    ----------
    offsets_angstrom : np.ndarray, (K,)
    """

    offsets_angstrom: np.ndarray

    @classmethod
    def for_shells(
        cls, range_angstrom: float, finest_angstrom: float, voltage_kv: float
    ) -> DefocusSearch:
        """Offsets over ``±range_angstrom``, spaced so that the CTF's phase at the finest shell
        read (``finest_angstrom``, at ``voltage_kv``) turns by at most :data:`MAX_PHASE_STEP`
        between two, and at least :data:`MIN_STEPS_PER_SIDE` a side."""
        if not (math.isfinite(range_angstrom) and range_angstrom > 0):
            raise ValueError(f"range_angstrom must be positive, got {range_angstrom}")
        if not (math.isfinite(finest_angstrom) and finest_angstrom > 0):
            raise ValueError(f"finest_angstrom must be positive, got {finest_angstrom}")
        wavelength = float(electron_wavelength_angstrom(voltage_kv))
        turn = math.pi * wavelength / finest_angstrom**2  # rad per Å of defocus
        step = min(range_angstrom / MIN_STEPS_PER_SIDE, MAX_PHASE_STEP / turn)
        side = math.ceil(range_angstrom / step)
        return cls(np.linspace(-range_angstrom, range_angstrom, 2 * side + 1))


def defocus_log_likelihood(
    particles: ParticleSet,
    rows: ArrayLike,
    volume: ArrayLike,
    scores: ParticleScores,
    search: DefocusSearch,
    reading: SampleReading | None = None,
    progress: Callable[[int], None] | None = None,
    store: RowStore | None = None,
) -> np.ndarray:
    """Each image's log-likelihood at each offset (see the module's docstring): (N, K) float64,
    following ``rows``.

    Parameters
    ----------
    particles, rows, volume, reading, progress
        As :func:`~cryosplat.reconstruct.grid.particle_scores.shell_sums`'s, which made
        ``scores``.
    scores : ParticleScores
        ``rows``' scores against ``volume`` at the recorded defocus (their order): the map's scale,
        the noise per shell and each image's relative noise.
    search : DefocusSearch
    store : RowStore, optional
        As :func:`ctf_log_likelihood`'s.
    """
    offsets = np.asarray(search.offsets_angstrom, dtype=np.float64)
    moves = np.stack([offsets, np.zeros_like(offsets), np.zeros_like(offsets)], 1)
    candidates = CTFCandidates(particles.ctf, moves)
    return ctf_log_likelihood(particles, rows, volume, scores, candidates, reading, progress, store)


@dataclass(frozen=True)
class DefocusFit:
    """Each image's defocus offset, read from its log-likelihood under a prior fitted to the set.

    Attributes
    ----------
    offset_angstrom : np.ndarray, (N,)
        The posterior mean (Å, to add to both defocus values; 0 where the image said nothing).
    sd_angstrom : np.ndarray, (N,)
        The posterior standard deviation (Å; NaN where the image said nothing).
    prior_mean_angstrom, prior_sd_angstrom : float
        The prior's centre and spread, fitted to the set: how far the recorded defoci are off,
        on average and one by one (0 and 0 where the gain is not significant).
    micrograph_sd_angstrom : float
        Where the particles' micrographs are known (:func:`fit_offsets`): the spread of the
        error a micrograph's particles share (its estimate's), ``prior_sd_angstrom`` then that
        of each particle about its micrograph's (its height in the ice); 0 otherwise.
    evidence_gain : float
        How much better the fitted prior explains the images than none (log-likelihood, nats);
        below :data:`SIGNIFICANT_GAIN` no offset is applied.
    """

    offset_angstrom: np.ndarray
    sd_angstrom: np.ndarray
    prior_mean_angstrom: float
    prior_sd_angstrom: float
    evidence_gain: float = 0.0
    micrograph_sd_angstrom: float = 0.0

    @property
    def total_sd_angstrom(self) -> float:
        """The recorded defoci's errors' spread, micrograph and particle together (Å)."""
        return math.hypot(self.prior_sd_angstrom, self.micrograph_sd_angstrom)

    @property
    def applied(self) -> bool:
        """Whether the images showed their recorded defoci to be off (:data:`SIGNIFICANT_GAIN`)."""
        return self.evidence_gain >= SIGNIFICANT_GAIN

    def describe(self) -> str:
        read = np.isfinite(self.sd_angstrom)
        if not self.applied:
            return (
                f"{int(read.sum()):,} particles' defocus read: the images do not show the recorded "
                f"defoci to be off (the best prior gains {self.evidence_gain:.1f} of the "
                f"{SIGNIFICANT_GAIN:g} nats asked); no offset applied"
            )
        moved = self.offset_angstrom[read]
        rms = float(np.sqrt(np.mean(moved**2))) if moved.size else 0.0
        sd = float(np.median(self.sd_angstrom[read])) if read.any() else float("nan")
        shared = (
            f"{self.micrograph_sd_angstrom:.0f} Å per micrograph and "
            if self.micrograph_sd_angstrom > 0
            else ""
        )
        return (
            f"{int(read.sum()):,} particles' defocus read: the recorded defoci are off by "
            f"{self.prior_mean_angstrom:+.0f} Å on average, {shared}"
            f"{self.prior_sd_angstrom:.0f} Å one by one (fitted); offsets applied {rms:.0f} Å "
            f"rms, each known to ±{sd:.0f} Å (median)"
        )


def fit_offsets(
    log_likelihood: np.ndarray, search: DefocusSearch, micrographs: ArrayLike | None = None
) -> DefocusFit:
    """Posterior means of the offsets under a normal prior ``N(μ, τ²)`` fitted to every image
    (empirical Bayes): ``τ`` is the value on a log-spaced grid (:data:`PRIOR_SPREADS`, from a
    quarter of the offsets' spacing to the range searched) that makes the images' marginal
    likelihood largest, ``μ`` at each fitted by expectation-maximisation. Where the images say
    nothing of their defocus the marginal likelihood is flat; among spreads that explain the images
    equally, the narrowest is kept, and unless the fitted prior explains them better than none by
    :data:`SIGNIFICANT_GAIN`, no offset is applied. Rows with NaN are left at 0 (NaN spread).

    ``micrographs`` (N,), int, where known: each image's micrograph. A micrograph's particles
    share its estimate's error; the prior is then hierarchical (:func:`_fit_by_micrograph`), each
    offset the micrograph's ``m ~ N(μ, τ_m²)`` plus the particle's ``e ~ N(0, τ²)``, both spreads
    fitted, so that a micrograph's images read its error together; it is kept only where it
    explains the images better than each particle read alone by :data:`SIGNIFICANT_GAIN`."""
    values = np.asarray(log_likelihood, dtype=np.float64)
    offsets = np.asarray(search.offsets_angstrom, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(offsets):
        raise ValueError(f"log_likelihood has shape {values.shape}, expected (N, {len(offsets)})")
    good = np.isfinite(values).all(1)
    mean_out, sd_out = np.zeros(len(values)), np.full(len(values), np.nan)
    if not good.any():
        return DefocusFit(mean_out, sd_out, 0.0, 0.0)
    ll = values[good] - values[good].max(1, keepdims=True)
    alone = _fit_alone(ll, offsets, good)
    if micrographs is not None:
        groups = np.asarray(micrographs, dtype=np.int64).reshape(-1)
        if len(groups) != len(values):
            raise ValueError(f"micrographs has {len(groups)} rows, expected {len(values)}")
        groups = np.unique(groups[good], return_inverse=True)[1].reshape(-1)
        if np.bincount(groups).max() > 1:
            shared = _fit_by_micrograph(ll, offsets, groups, good)
            if shared.evidence_gain >= alone.evidence_gain + SIGNIFICANT_GAIN:
                return shared
    return alone


def _fit_alone(ll: np.ndarray, offsets: np.ndarray, good: np.ndarray) -> DefocusFit:
    """:func:`fit_offsets` with each particle read alone: ``ll`` (n, K) the rows ``good`` read
    (each row's maximum 0)."""
    likelihood = np.exp(ll)
    spreads = _spreads(offsets, PRIOR_SPREADS)
    best, centre = (-np.inf, 0.0, spreads[0]), 0.0
    for spread in spreads:
        for _ in range(CENTRE_STEPS):
            weights = _posterior(ll, offsets, centre, spread)
            centre = float((weights @ offsets).mean())
        evidence = _log_evidence(likelihood, offsets, centre, spread)
        if evidence > best[0] + EVIDENCE_TIE:
            best = (evidence, centre, spread)
    evidence, centre, spread = best
    weights = _posterior(ll, offsets, centre, spread)
    return _fit_from_posterior(weights, offsets, good, _gain(evidence, ll, offsets), centre, spread)


def _fit_by_micrograph(
    ll: np.ndarray, offsets: np.ndarray, groups: np.ndarray, good: np.ndarray
) -> DefocusFit:
    """:func:`fit_offsets` under the hierarchical prior: ``ll`` (n, K) the rows ``good`` read
    (each row's maximum 0), ``groups`` (n,) their micrographs numbered from 0.

    A micrograph's offset ``m`` is read on the offsets' grid; given it, a particle's likelihood is
    ``c_i(m) = Σ_k L_ik G_mk`` with ``G`` the particle spread's kernel, and the micrograph's
    marginal likelihood ``Σ_m π_m Π_i c_i(m)``. Both spreads are tried on a log-spaced grid
    (:data:`MICROGRAPH_SPREADS` each), the centre fitted at each by expectation-maximisation; the
    narrowest of those that explain the images equally is kept. Each particle's posterior is
    read against its micrograph's offset as the *other* particles of the micrograph show it."""
    likelihood = np.exp(ll)
    spreads = _spreads(offsets, MICROGRAPH_SPREADS)
    order = np.argsort(groups, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(groups[order]) != 0])
    best, centre = (-np.inf, 0.0, spreads[0], spreads[0]), 0.0
    for particle_spread in spreads:
        sums = np.add.reduceat(
            _log_given_micrograph(likelihood, offsets, particle_spread)[order], starts
        )
        for micrograph_spread in spreads:
            for _ in range(CENTRE_STEPS):
                post = normalised_rows(sums + _log_prior(offsets, centre, micrograph_spread))
                centre = float((post @ offsets).mean())
            joint = sums + _log_prior(offsets, centre, micrograph_spread)
            evidence = float(np.sum(row_log_sums(joint)))
            if evidence > best[0] + EVIDENCE_TIE:
                best = (evidence, centre, particle_spread, micrograph_spread)
    evidence, centre, particle_spread, micrograph_spread = best
    log_c = _log_given_micrograph(likelihood, offsets, particle_spread)
    sums = np.add.reduceat(log_c[order], starts)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    group_sums = np.repeat(sums, np.diff(np.r_[starts, len(order)]), axis=0)[inverse]
    others = normalised_rows(group_sums - log_c + _log_prior(offsets, centre, micrograph_spread))
    weights = likelihood * (others @ _kernel(offsets, particle_spread))
    weights = weights / weights.sum(1, keepdims=True)
    gain = _gain(evidence, ll, offsets)
    return _fit_from_posterior(
        weights, offsets, good, gain, centre, particle_spread, micrograph_spread
    )


def _spreads(offsets: np.ndarray, count: int) -> np.ndarray:
    """The prior's spreads tried: ``count`` log-spaced from a quarter of the offsets' spacing to
    the range searched."""
    spacing = float(np.min(np.diff(offsets))) if len(offsets) > 1 else 1.0
    return np.geomspace(0.25 * spacing, float(offsets.max() - offsets.min()), count)


def _gain(evidence: float, ll: np.ndarray, offsets: np.ndarray) -> float:
    """How much better the prior's ``evidence`` explains the images than none (every image at
    offset 0; the grid is symmetric about it); never below 0, none being a prior too."""
    return max(evidence - float(np.sum(ll[:, int(np.argmin(np.abs(offsets)))])), 0.0)


def _fit_from_posterior(
    weights: np.ndarray,
    offsets: np.ndarray,
    good: np.ndarray,
    gain: float,
    centre: float,
    spread: float,
    micrograph_spread: float = 0.0,
) -> DefocusFit:
    """The :class:`DefocusFit` of the rows ``good`` from their posterior ``weights`` (n, K) over
    ``offsets``: their means applied only where ``gain`` is :data:`SIGNIFICANT_GAIN` or more."""
    mean_out, sd_out = np.zeros(len(good)), np.full(len(good), np.nan)
    mean = weights @ offsets
    sd_out[good] = np.sqrt(np.maximum(weights @ offsets**2 - mean**2, 0.0))
    if gain < SIGNIFICANT_GAIN:
        return DefocusFit(mean_out, sd_out, 0.0, 0.0, gain)
    mean_out[good] = mean
    return DefocusFit(mean_out, sd_out, centre, float(spread), gain, float(micrograph_spread))


def _kernel(offsets: np.ndarray, spread: float) -> np.ndarray:
    """(K, K): row ``m`` the normal ``N(δ_m, spread²)`` read on ``offsets``, normalised."""
    kernel = np.exp(-0.5 * ((offsets[None, :] - offsets[:, None]) / spread) ** 2)
    return kernel / kernel.sum(1, keepdims=True)


def _log_given_micrograph(likelihood: np.ndarray, offsets: np.ndarray, spread: float) -> np.ndarray:
    """(n, K): each particle's log-likelihood given its micrograph's offset at each of
    ``offsets``, its own about it ``N(0, spread²)``."""
    return np.log(np.maximum(likelihood @ _kernel(offsets, spread).T, 1e-300))


def _log_prior(offsets: np.ndarray, centre: float, spread: float) -> np.ndarray:
    """``log N(centre, spread²)`` read on ``offsets``, normalised over them."""
    log_prior = -0.5 * ((offsets - centre) / spread) ** 2
    top = log_prior.max()
    return log_prior - (top + math.log(np.exp(log_prior - top).sum()))


def row_log_sums(log_weights: np.ndarray) -> np.ndarray:
    """Each row's ``log Σ exp(log_weights)``, (n,), without overflow."""
    top = log_weights.max(1)
    return top + np.log(np.exp(log_weights - top[:, None]).sum(1))


def normalised_rows(log_weights: np.ndarray) -> np.ndarray:
    """Each row's weights ``exp(log_weights)``, normalised to sum to 1."""
    weights = np.exp(log_weights - log_weights.max(1, keepdims=True))
    return weights / weights.sum(1, keepdims=True)


def _log_evidence(
    likelihood: np.ndarray, offsets: np.ndarray, centre: float, spread: float
) -> float:
    """``Σ_i log Σ_k L_ik π_k``: the images' marginal likelihood under the prior ``N(centre,
    spread²)`` read on the offsets (``π`` normalised over them)."""
    prior = np.exp(-0.5 * ((offsets - centre) / spread) ** 2)
    prior = prior / prior.sum()
    return float(np.sum(np.log(np.maximum(likelihood @ prior, 1e-300))))


def _posterior(ll: np.ndarray, offsets: np.ndarray, centre: float, spread: float) -> np.ndarray:
    """Each row's posterior weights over ``offsets`` under the prior ``N(centre, spread²)``."""
    return normalised_rows(ll - 0.5 * ((offsets - centre) / spread) ** 2)
