"""Each micrograph's astigmatism read from its particles' images, against maps without their share.

A micrograph's CTF estimate errs in its astigmatism as in its defocus, and its particles share
that error (their heights in the ice move their defocus, not its astigmatism). The defocus along
the direction at ``θ`` is ``mean + a cos 2θ + b sin 2θ``
(:meth:`~cryosplat.core.ctf.CTFParams.astigmatism_components`); a move ``(δa, δb)`` turns the
CTF's phase by ``π λ k² (δa cos 2θ + δb sin 2θ)``, so an image says which astigmatism it was
taken with as it says its defocus (:mod:`cryosplat.reconstruct.grid.defocus_fit`), only more
faintly: each image's log-likelihood on a grid of moves (:class:`AstigmatismGrid`), summed over
its micrograph's images, is the micrograph's (:func:`astigmatism_log_likelihood`).

The moves are read as posterior means under a normal prior ``N(μ, τ² I)`` on ``(δa, δb)``
fitted to every micrograph (empirical Bayes, :func:`fit_astigmatism`), and applied only where
that prior explains the images better than none (every move 0) by
:data:`~cryosplat.reconstruct.grid.defocus_fit.SIGNIFICANT_GAIN` nats. Coarse to fine: a coarse grid
(steps :data:`COARSE_FACTOR` times wider, the shells read to half the radius, reaching
``±range``) finds each micrograph's move, a fine grid about it reads it, and where the data
say more than its step resolves, up to :data:`REFINEMENTS` grids of a quarter of the step each
about the moves so far.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

from cryosplat.core.ctf import CTFParams, electron_wavelength_angstrom
from cryosplat.core.progress import Progress
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.ctf_likelihood import CTFCandidates, ctf_log_likelihood
from cryosplat.reconstruct.grid.defocus_fit import (
    CENTRE_STEPS,
    EVIDENCE_TIE,
    SIGNIFICANT_GAIN,
    normalised_rows,
    row_log_sums,
)
from cryosplat.reconstruct.grid.particle_scores import ParticleScores, SampleReading
from cryosplat.reconstruct.grid.row_store import PassCheckpoints, RowStore, pass_progress

__all__ = [
    "COARSE_FACTOR",
    "DEFAULT_ASTIGMATISM_RANGE_ANGSTROM",
    "FINE_PHASE_STEP",
    "AstigmatismFit",
    "AstigmatismGrid",
    "astigmatism_log_likelihood",
    "centres_per_micrograph",
    "fit_astigmatism",
    "read_astigmatism",
]

log = logging.getLogger("cryosplat")

GRID_SIDE = 4  # moves on each side of the fine grid's centre, along each component: 9 × 9
FINE_PHASE_STEP = 0.5
"""rad: the CTF's phase at the finest shell read turns by at most this from one move of the fine
grid to the next (its moves are summed over a micrograph's images, whose likelihood is smoother
than one image's)."""
COARSE_FACTOR = 2
"""The coarse pass's step in fine steps; it reads the shells to half the radius, where ``k²`` is
four times smaller, so that the phase turns half as far per step as in the fine pass, and the
fine grid reaches two coarse steps about the coarse pass's move."""
DEFAULT_ASTIGMATISM_RANGE_ANGSTROM = 1000.0
"""The coarse grid reaches ± this (Å) along each component: a CTF estimate's astigmatism seldom
errs by more."""
PRIOR_SPREADS = 48  # the prior's spreads tried (:func:`fit_astigmatism`)
REFINEMENTS = 2
"""Passes at most after the fine one, each with a quarter of the step about the moves so far,
while the micrographs' posteriors (median spread) are narrower than half a step."""


@dataclass(frozen=True)
class AstigmatismGrid:
    """Moves ``(δa, δb)`` of the astigmatism's components (Å): ``2 side + 1`` values a
    component, ``step_angstrom`` apart, about 0.

    Attributes
    ----------
    step_angstrom : float
    side : int
    """

    step_angstrom: float
    side: int = GRID_SIDE

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_angstrom) and self.step_angstrom > 0):
            raise ValueError(f"step_angstrom must be positive, got {self.step_angstrom}")
        if self.side < 1:
            raise ValueError(f"side must be at least 1, got {self.side}")

    @property
    def axis(self) -> np.ndarray:
        """The values of one component, (2 side + 1,)."""
        return self.step_angstrom * np.arange(-self.side, self.side + 1, dtype=np.float64)

    @property
    def moves(self) -> np.ndarray:
        """Every move, ``(G, 2)`` with ``G = (2 side + 1)²``, ``δb`` fastest."""
        a, b = np.meshgrid(self.axis, self.axis, indexing="ij")
        return np.stack([a.reshape(-1), b.reshape(-1)], axis=1)

    @classmethod
    def fine_for_shells(
        cls, finest_angstrom: float, voltage_kv: float, range_angstrom: float
    ) -> AstigmatismGrid:
        """The fine grid for shells read to ``finest_angstrom`` (Å) at ``voltage_kv``: steps over
        which the phase at that shell turns by :data:`FINE_PHASE_STEP`, :data:`GRID_SIDE` a
        side, and no wider than lets the coarse grid (:meth:`coarse`) keep within
        ``±range_angstrom`` (coarse data, where the phase hardly turns)."""
        if not finest_angstrom > 0:
            raise ValueError(f"finest_angstrom must be positive, got {finest_angstrom}")
        if not (math.isfinite(range_angstrom) and range_angstrom > 0):
            raise ValueError(f"range_angstrom must be positive, got {range_angstrom}")
        wavelength = float(electron_wavelength_angstrom(voltage_kv))
        turn = math.pi * wavelength / finest_angstrom**2  # rad per Å of a component
        widest = range_angstrom / (COARSE_FACTOR * GRID_SIDE)
        return cls(min(FINE_PHASE_STEP / turn, widest))

    def coarse(self, range_angstrom: float) -> AstigmatismGrid:
        """The coarse pass's grid: :data:`COARSE_FACTOR` times the step, as many a side as reach
        ``range_angstrom`` (at least as many as this grid's: for a grid from
        :meth:`fine_for_shells` with the same range, its reach is then at most the range plus a
        step)."""
        if not (math.isfinite(range_angstrom) and range_angstrom > 0):
            raise ValueError(f"range_angstrom must be positive, got {range_angstrom}")
        step = COARSE_FACTOR * self.step_angstrom
        return AstigmatismGrid(step, max(self.side, math.ceil(range_angstrom / step - 1e-9)))


def astigmatism_log_likelihood(
    particles: ParticleSet,
    rows: ArrayLike,
    volume: ArrayLike,
    scores: ParticleScores,
    ctf: CTFParams,
    centres_angstrom: np.ndarray,
    grid: AstigmatismGrid,
    reading: SampleReading | None = None,
    progress: Callable[[int], None] | None = None,
    store: RowStore | None = None,
) -> np.ndarray:
    """Each image's log-likelihood with its CTF ``ctf`` (the particle set's rows, e.g. with its
    defocus refined) moved by ``centres_angstrom`` (the set's rows, (N_set, 2)) plus each of
    ``grid.moves``, and last unmoved: (N, G + 1) float64, following ``rows``. Other parameters
    as :func:`~cryosplat.reconstruct.grid.defocus_fit.defocus_log_likelihood`'s."""
    if len(ctf) != len(particles) or len(centres_angstrom) != len(particles):
        raise ValueError(
            f"ctf and centres_angstrom have {len(ctf)} and {len(centres_angstrom)} rows, "
            f"the particles {len(particles)}"
        )
    moves = np.concatenate([np.zeros((len(grid.moves), 1)), grid.moves], axis=1)
    candidates = CTFCandidates(ctf.moved(0.0, centres_angstrom), moves, last=ctf)
    return ctf_log_likelihood(particles, rows, volume, scores, candidates, reading, progress, store)


def read_astigmatism(
    particles: ParticleSet,
    parts: Sequence[tuple[np.ndarray, np.ndarray, ParticleScores, np.ndarray | None]],
    ctf: CTFParams,
    grid: AstigmatismGrid,
    range_angstrom: float,
    reading: SampleReading,
    bar: Progress | None = None,
    checkpoints: PassCheckpoints | None = None,
) -> AstigmatismFit:
    """Each micrograph's astigmatism, coarse to fine (the module's docstring): ``parts`` are
    ``(rows, map, scores, own share)``, each set of rows read against its map (with its scores
    there; without the images' own share in it where that is given:
    :attr:`~cryosplat.reconstruct.grid.particle_scores.SampleReading.own_share`),
    ``ctf`` the particle set's CTF to move (e.g. its defocus refined), ``grid`` the fine grid
    (the coarse one reaches ``±range_angstrom``); the fine pass reads the shells to
    ``reading.max_radius_px``, the coarse one to half of it.
    ``bar`` counts a reading of each image a pass: two, and one more for each finer pass
    (:meth:`~cryosplat.core.progress.Progress.extend`). ``checkpoints``, where given, keep each
    pass as it goes (:mod:`~cryosplat.reconstruct.grid.row_store`)."""
    if particles.micrographs is None:
        raise ValueError("the particles' micrographs are not recorded")
    if reading.max_radius_px is None:
        raise ValueError("reading.max_radius_px must say how far the shells are read")

    checkpoints = PassCheckpoints(None) if checkpoints is None else checkpoints
    passes = itertools.count()  # each pass's checkpoints by its place in the sequence

    def read(pass_grid: AstigmatismGrid, radius: float, centres: np.ndarray) -> np.ndarray:
        log.info(
            "astigmatism moves tried: %d² every %.1f Å about each micrograph's, shells to %.2f Å",
            len(pass_grid.axis),
            pass_grid.step_angstrom,
            particles.box * particles.pixel_size_angstrom / radius,
        )
        values = np.full((len(particles), len(pass_grid.moves) + 1), np.nan)
        index = next(passes)
        for half, (rows, volume, scores, share) in enumerate(parts):
            own = None if share is None else tuple(float(v) for v in share)
            pass_reading = replace(reading, max_radius_px=radius, own_share=own)
            name = f"astigmatism{index}_{half}"
            store = checkpoints.store(
                name, rows, pass_grid.moves, centres[rows], radius, ctf, share
            )
            progress = pass_progress(bar, store)
            values[rows] = astigmatism_log_likelihood(
                particles,
                rows,
                volume,
                scores,
                ctf,
                centres,
                pass_grid,
                pass_reading,
                progress,
                store,
            )
        return values

    coarse, radius, micrographs = (
        grid.coarse(range_angstrom),
        reading.max_radius_px,
        particles.micrographs,
    )
    start = np.zeros((len(particles), 2))
    centres = centres_per_micrograph(read(coarse, 0.5 * radius, start), coarse, start, micrographs)
    for _ in range(REFINEMENTS):
        posterior = _posterior(read(grid, radius, centres), grid, centres, micrographs)
        if not (posterior.count and np.median(posterior.sd) < 0.5 * grid.step_angstrom):
            return _fit_from(posterior)
        centres = _centres(posterior)
        grid = AstigmatismGrid(grid.step_angstrom / 4.0, grid.side)
        if bar is not None:
            bar.extend(len(particles))
    return _fit_from(_posterior(read(grid, radius, centres), grid, centres, micrographs))


@dataclass(frozen=True)
class AstigmatismFit:
    """Each micrograph's astigmatism move, given to each of its particles.

    Attributes
    ----------
    offset_angstrom : np.ndarray, (N, 2)
        The move ``(δa, δb)`` of each particle's astigmatism components (Å; its micrograph's
        posterior mean, 0 where not applied or not read).
    sd_angstrom : np.ndarray, (N,)
        How well its micrograph's move is known (Å, the posterior's spread along one
        component; NaN where not read).
    prior_mean_angstrom : tuple of float
        The recorded astigmatism's error on average, ``(a, b)`` (Å).
    prior_sd_angstrom : float
        Its spread per micrograph along each component (Å).
    evidence_gain : float
        How much better the fitted prior explains the images than none (nats).
    micrographs : int
        Micrographs read.
    """

    offset_angstrom: np.ndarray
    sd_angstrom: np.ndarray
    prior_mean_angstrom: tuple[float, float]
    prior_sd_angstrom: float
    evidence_gain: float
    micrographs: int

    @property
    def applied(self) -> bool:
        """Whether the images showed their recorded astigmatism to be off."""
        return self.evidence_gain >= SIGNIFICANT_GAIN

    @property
    def move_rms_angstrom(self) -> float:
        """The moves' rms length over the images read (Å; 0 where none)."""
        moves = self.offset_angstrom[np.isfinite(self.sd_angstrom)]
        return float(np.sqrt(np.mean((moves**2).sum(1)))) if len(moves) else 0.0

    @property
    def sd_median_angstrom(self) -> float | None:
        """The median of the images' micrographs' posterior spreads (Å; None where none read)."""
        read = np.isfinite(self.sd_angstrom)
        return float(np.median(self.sd_angstrom[read])) if read.any() else None

    def describe(self) -> str:
        if not self.applied:
            return (
                f"{self.micrographs:,} micrographs' astigmatism read: the images do not show it "
                f"to be off (the best prior gains {self.evidence_gain:.1f} of the "
                f"{SIGNIFICANT_GAIN:g} nats asked); not changed"
            )
        sd = self.sd_median_angstrom
        return (
            f"{self.micrographs:,} micrographs' astigmatism read: off by "
            f"{self.prior_sd_angstrom:.0f} Å along each component (fitted); moves applied "
            f"{self.move_rms_angstrom:.0f} Å rms, each known to ±"
            f"{float('nan') if sd is None else sd:.0f} Å (median)"
        )


def fit_astigmatism(
    log_likelihood: np.ndarray,
    grid: AstigmatismGrid,
    centres_angstrom: np.ndarray,
    micrographs: ArrayLike,
) -> AstigmatismFit:
    """Each micrograph's move under a normal prior ``N(μ, τ² I)`` fitted to all of them.

    Parameters
    ----------
    log_likelihood : np.ndarray, (N, G + 1)
        From :func:`astigmatism_log_likelihood`: each image at ``grid.moves`` about its centre,
        then unmoved (NaN rows: not read).
    grid : AstigmatismGrid
    centres_angstrom : np.ndarray, (N, 2)
        The move about which each image's grid was read (the same for a micrograph's images).
    micrographs : array_like of int, (N,)

    ``τ`` is the value on a log-spaced grid (:data:`PRIOR_SPREADS`, from the grid's step to its
    reach) that makes the micrographs' marginal likelihood largest, ``μ`` at each
    fitted by expectation-maximisation; among spreads that explain the images equally the
    narrowest is kept. The moves are applied only where the prior explains the images better
    than none (each image unmoved, the last column) by ``SIGNIFICANT_GAIN``.
    """
    return _fit_from(_posterior(log_likelihood, grid, centres_angstrom, micrographs))


def _fit_from(posterior: _Posterior) -> AstigmatismFit:
    """The :class:`AstigmatismFit` the micrographs' ``posterior`` gives each of its images."""
    n = len(posterior.good)
    offset_out, sd_out = np.zeros((n, 2)), np.full(n, np.nan)
    rows = np.flatnonzero(posterior.good)
    sd_out[rows] = posterior.sd[posterior.inverse]
    if posterior.gain < SIGNIFICANT_GAIN:
        return AstigmatismFit(offset_out, sd_out, (0.0, 0.0), 0.0, posterior.gain, posterior.count)
    offset_out[rows] = posterior.mean[posterior.inverse]
    centre = (float(posterior.centre[0]), float(posterior.centre[1]))
    return AstigmatismFit(
        offset_out, sd_out, centre, posterior.spread, posterior.gain, posterior.count
    )


def centres_per_micrograph(
    log_likelihood: np.ndarray,
    grid: AstigmatismGrid,
    centres_angstrom: np.ndarray,
    micrographs: ArrayLike,
) -> np.ndarray:
    """(N, 2): each image's micrograph's posterior mean move under the fitted prior, applied or
    not (the centres of a finer pass; parameters as :func:`fit_astigmatism`'s). Where the images
    say little the prior narrows, and the means stay near its centre."""
    return _centres(_posterior(log_likelihood, grid, centres_angstrom, micrographs))


def _centres(posterior: _Posterior) -> np.ndarray:
    """(N, 2): each image's micrograph's posterior mean (0 where not read)."""
    out = np.zeros((len(posterior.good), 2))
    out[posterior.good] = posterior.mean[posterior.inverse]
    return out


@dataclass(frozen=True)
class _Posterior:
    """The micrographs' posteriors under the fitted prior: ``mean`` (M, 2), ``sd`` (M,), the
    prior's ``centre`` (2,) and ``spread``, the ``gain`` over none, the rows read (``good``) and
    each one's micrograph (``inverse``), ``count`` micrographs."""

    mean: np.ndarray
    sd: np.ndarray
    centre: np.ndarray
    spread: float
    gain: float
    good: np.ndarray
    inverse: np.ndarray
    count: int


def _posterior(
    log_likelihood: np.ndarray,
    grid: AstigmatismGrid,
    centres_angstrom: np.ndarray,
    micrographs: ArrayLike,
) -> _Posterior:
    values = np.asarray(log_likelihood, dtype=np.float64)
    count = len(grid.moves)
    if values.ndim != 2 or values.shape[1] != count + 1:
        raise ValueError(f"log_likelihood has shape {values.shape}, expected (N, {count + 1})")
    centres = np.asarray(centres_angstrom, dtype=np.float64).reshape(len(values), 2)
    groups = np.asarray(micrographs, dtype=np.int64).reshape(-1)
    if len(groups) != len(values):
        raise ValueError(f"micrographs has {len(groups)} rows, expected {len(values)}")
    good = np.isfinite(values).all(1)
    if not good.any():
        empty = np.zeros(0, dtype=np.int64)
        return _Posterior(np.zeros((0, 2)), np.zeros(0), np.zeros(2), 0.0, 0.0, good, empty, 0)
    labels, inverse = np.unique(groups[good], return_inverse=True)
    inverse = inverse.reshape(-1)
    sums = np.zeros((len(labels), values.shape[1]))
    np.add.at(sums, inverse, values[good])
    sums = sums - sums.max(1, keepdims=True)  # each micrograph's largest 0
    none, sums = float(sums[:, -1].sum()), sums[:, :-1]
    grid_centres = np.zeros((len(labels), 2))
    grid_centres[inverse] = centres[good]  # a micrograph's images share its grid's centre
    points = grid_centres[:, None, :] + grid.moves[None, :, :]  # (M, G, 2) absolute moves
    reach = float(np.abs(points).max()) + grid.step_angstrom
    spreads = np.geomspace(grid.step_angstrom, reach, PRIOR_SPREADS)
    best, centre = (-np.inf, np.zeros(2), float(spreads[0])), np.zeros(2)
    for spread in spreads:
        for _ in range(CENTRE_STEPS):
            post = normalised_rows(sums + _log_prior(points, centre, spread, grid.step_angstrom))
            centre = np.einsum("mg,mgc->c", post, points) / len(post)
        joint = sums + _log_prior(points, centre, spread, grid.step_angstrom)
        evidence = float(np.sum(row_log_sums(joint)))
        if evidence > best[0] + EVIDENCE_TIE:
            best = (evidence, centre.copy(), float(spread))
    evidence, centre, spread = best
    post = normalised_rows(sums + _log_prior(points, centre, spread, grid.step_angstrom))
    mean = np.einsum("mg,mgc->mc", post, points)
    second = np.einsum("mg,mgc->mc", post, points**2)
    sd = np.sqrt(np.maximum(second - mean**2, 0.0).mean(1))
    gain = max(evidence - none, 0.0)
    return _Posterior(mean, sd, centre, spread, gain, good, inverse, len(labels))


def _log_prior(points: np.ndarray, centre: np.ndarray, spread: float, step: float) -> np.ndarray:
    """``log N(centre, spread² I)`` at ``points`` (M, G, 2), each micrograph's row normalised over
    the whole lattice its grid lies on (spacing ``step``, through its points): the prior's mass
    at each point, however narrow the prior and wherever the grid lies in it (its part outside
    the grid is left out, as the likelihood there is)."""
    log_prior = -0.5 * (((points - centre) / spread) ** 2).sum(-1)
    reach = math.ceil(8.0 * spread / step) + 1
    k = np.arange(-reach, reach + 1, dtype=np.float64)
    fraction = np.mod((points[:, 0, :] - centre) / step, 1.0)  # (M, 2): the lattice's offset
    terms = -0.5 * (((fraction[:, :, None] + k) * step / spread) ** 2)  # (M, 2, 2 reach + 1)
    top = terms.max(-1, keepdims=True)
    log_norm = (top[..., 0] + np.log(np.exp(terms - top).sum(-1))).sum(-1)  # (M,)
    return log_prior - log_norm[:, None]
