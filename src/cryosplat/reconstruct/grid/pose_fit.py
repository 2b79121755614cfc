"""Each particle's pose read from its own image, against its own half set's map.

Poses come from a refinement against noisy images and are never exact: a view turned by a
degree or two and a shift out by an ångström or two blur the map, more the further from the
centre and the finer the detail. With a map, each image says where its pose lies: the map's
central slice at a nearby pose, times the image's CTF, shifted by a nearby shift, predicts it
better at the right one.

Per image ``i``, candidate rotation ``c`` (a small turn ``ΔR_c = exp([ω_c]×)`` in the image's
frame, the pose ``A`` becoming ``ΔR_c A``) and candidate shift ``t`` (``Δs_t``, Å, added to the
recorded shift), the log-likelihood under coloured Gaussian noise is (:func:`pose_evidence`)

    ``L_ict = Σ_s Σ_(j ∈ s) w_j [Re(X̄_j e^{iθ_jt} C_j P_jc) − ½ a_s |C_j P_jc|²] a_s / (σ²_s c_i)``

with ``X`` the image's spectrum placed at its recorded shift, ``θ_jt`` the phase of the shift's
move at sample ``j``, ``P_jc`` the map's slice at the turned pose, ``C`` the CTF, ``w_j`` the
sample's Friedel weight over two (the half plane's samples stand for their mates), and the map's
scale ``a_s``, the noise power ``σ²_s`` and the image's relative noise ``c_i`` those
:mod:`cryosplat.reconstruct.grid.particle_scores` fits at the recorded poses.

One image holds little about its pose where the signal is weak, and the best of a hundred
candidates is then the one its noise favours. The moves are read as posterior means under a
normal prior (each rotation vector's components and each shift's with spreads ``σ_r`` and
``σ_t``) fitted to the whole set (empirical Bayes, as :mod:`.defocus_fit` reads defocus):
where the data say the recorded poses are right, the prior narrows and the moves go to zero;
where they err, it widens to their spread.

The images are read twice (:class:`PoseLevel`). First over lattices about the recorded poses
that span the ranges searched (:meth:`PoseSearch.for_shells`): each prior's evidence and
posterior means are summed image by image as the images are read (:func:`pose_evidence`), and
the set's prior is chosen after (:func:`fit_poses`). A posterior narrower than these lattices'
steps (strong signal) is then read as the lattice point nearest its peak; so, where the prior is
applied, each image is read again over finer lattices centred on its first reading, one coarse
step each way (:meth:`PoseSearch.finer`), under the prior chosen. On 200 images of a small
blob at SNR 3 whose views were turned by 3° (rms) and shifts moved by 2.1 Å, the first reading
left 1.75° and 0.52 Å, the second 1.65° and 0.23 Å (round 2, session 78: a small particle's
views are read less sharply than its shifts, and their moves are shrunk toward the prior).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.conventions import rotvec_to_matrix
from cryosplat.core.fourier_slice import SliceReader
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.ctf_likelihood import image_noise, shell_weights
from cryosplat.reconstruct.grid.particle_scores import (
    SCORE_PAD,
    GroupSamples,
    ParticleScores,
    SampleReading,
    read_samples,
)
from cryosplat.reconstruct.grid.pose_posterior import posterior_sums
from cryosplat.reconstruct.grid.row_store import RowStore

__all__ = [
    "DEFAULT_ANGLE_RANGE_DEGREES",
    "DEFAULT_SHIFT_RANGE_PX",
    "PoseLevel",
    "PoseFit",
    "PoseSearch",
    "fit_poses",
    "pose_evidence",
]

DEFAULT_ANGLE_RANGE_DEGREES = 6.0
"""Turns searched up to this angle (degrees, about any axis: a ball of rotation vectors)."""
DEFAULT_SHIFT_RANGE_PX = 2.0
"""Shift moves searched up to this length (pixels of the working box: a disc)."""
MAX_ARC_PX = 0.5  # a rotation step moves the finest shell read by at most this (pixels)
MAX_SHIFT_PHASE = 0.5  # rad: a shift step turns the finest shell's phase by at most this
MAX_STEPS_PER_SIDE = 3  # candidates from the centre to the lattice's edge, each way, at most
PRIOR_SPREADS = 12  # each prior spread tried on this many values
FINE_SCALE = 0.4  # the second reading's finest steps, as a share of the first's
FINE_STEPS_PER_SIDE = 2  # the second reading's lattices: this many steps each way at most
SIGNIFICANT_GAIN = 5.0
"""The moves are applied only where the fitted prior explains the images better than none (every
pose as recorded) by this much log-likelihood (nats), as :data:`.defocus_fit.SIGNIFICANT_GAIN`."""
SLICE_BUDGET = 2**24  # complex slice samples held at once (per chunk of images × turns)


@dataclass(frozen=True)
class PoseSearch:
    """The candidate moves: small turns and shift moves, each on a lattice centred on zero.

    Attributes
    ----------
    rotvecs : np.ndarray, (C, 3)
        Rotation vectors (radians) of the turns ``ΔR``, applied in the image's frame.
    shifts_angstrom : np.ndarray, (T, 2)
        Shift moves ``(Δx, Δy)`` (Å), added to the recorded shifts.
    """

    rotvecs: np.ndarray
    shifts_angstrom: np.ndarray

    @classmethod
    def for_shells(
        cls,
        angle_range_degrees: float,
        shift_range_angstrom: float,
        radius_px: float,
        box: int,
        pixel_size_angstrom: float,
    ) -> PoseSearch:
        """Lattices over a ball of radius ``angle_range_degrees`` (turns) and a disc of radius
        ``shift_range_angstrom`` (shifts), spaced so that a step moves the finest shell read
        (``radius_px``, pixels of ``box``) by at most :data:`MAX_ARC_PX` pixels or turns its
        phase by at most :data:`MAX_SHIFT_PHASE`, and at most :data:`MAX_STEPS_PER_SIDE` steps
        from the centre each way (the steps widened where the ranges ask for more). A range of 0
        searches that part not at all."""
        for name, value in (
            ("angle_range_degrees", angle_range_degrees),
            ("shift_range_angstrom", shift_range_angstrom),
            ("radius_px", radius_px),
        ):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if radius_px <= 0:
            raise ValueError(f"radius_px must be positive, got {radius_px}")
        angle_step, shift_step = _finest_steps(radius_px, box, pixel_size_angstrom, 1.0)
        rotvecs = _lattice(math.radians(angle_range_degrees), angle_step, 3)
        shifts = _lattice(shift_range_angstrom, shift_step, 2)
        return cls(rotvecs, shifts)

    def finer(self, radius_px: float, box: int, pixel_size_angstrom: float) -> PoseSearch:
        """The second reading's lattices, to be centred on each image's first reading: one of
        these lattices' steps each way, in steps that move the finest shell read (``radius_px``)
        by at most :data:`FINE_SCALE` times :data:`MAX_ARC_PX` pixels or turn its phase by at
        most that share of :data:`MAX_SHIFT_PHASE` (at most :data:`FINE_STEPS_PER_SIDE` of
        them)."""
        angle_step, shift_step = _finest_steps(radius_px, box, pixel_size_angstrom, FINE_SCALE)
        rotvecs = _lattice(_step(self.rotvecs, float), angle_step, 3, FINE_STEPS_PER_SIDE)
        shifts = _lattice(_step(self.shifts_angstrom, float), shift_step, 2, FINE_STEPS_PER_SIDE)
        return PoseSearch(rotvecs, shifts)

    @property
    def angle_step_degrees(self) -> float:
        return _step(self.rotvecs, math.degrees)

    @property
    def shift_step_angstrom(self) -> float:
        return _step(self.shifts_angstrom, float)


def _finest_steps(
    radius_px: float, box: int, pixel_size_angstrom: float, scale: float
) -> tuple[float, float]:
    """The finest turn (radians) and shift (Å) steps a lattice needs: ``scale`` times those that
    move the shell of ``radius_px`` by :data:`MAX_ARC_PX` or turn its phase by
    :data:`MAX_SHIFT_PHASE`."""
    angle = scale * MAX_ARC_PX / radius_px
    shift = scale * MAX_SHIFT_PHASE * box * pixel_size_angstrom / (2 * math.pi * radius_px)
    return angle, shift


def _lattice(
    extent: float, finest_step: float, dims: int, most: int = MAX_STEPS_PER_SIDE
) -> np.ndarray:
    """Points ``v · step`` of the integer lattice within ``|v| ≤ n`` (``n`` steps from the centre,
    ``step ≥ finest_step``, ``n · step ≥ extent``, ``n ≤ most``): (K, dims), the centre first."""
    if extent <= 0:
        return np.zeros((1, dims))
    n = min(most, max(1, math.ceil(extent / finest_step)))
    step = extent / n
    axis = np.arange(-n, n + 1)
    points = np.stack(np.meshgrid(*([axis] * dims), indexing="ij"), -1).reshape(-1, dims)
    points = points[(points**2).sum(1) <= n * n + 1e-9]
    order = np.argsort((points**2).sum(1), kind="stable")
    return points[order] * step


def _step(points: np.ndarray, unit: Callable[[float], float]) -> float:
    nonzero = np.abs(points[points != 0])
    return unit(float(nonzero.min())) if nonzero.size else 0.0


def prior_spreads(points: np.ndarray) -> np.ndarray:
    """The spreads tried for a lattice's prior (per component): from a quarter of its step (all
    but the centre weighed next to nothing) to its extent, :data:`PRIOR_SPREADS` values spaced
    evenly in their logarithm; ``[0]`` for a lattice of the centre alone."""
    step = _step(points, float)
    if step == 0:
        return np.zeros(1)
    extent = float(np.abs(points).max())
    return np.geomspace(step / 4, extent, PRIOR_SPREADS)


def _log_priors(points: np.ndarray, spreads: np.ndarray) -> np.ndarray:
    """Each spread's normal prior (zero mean, ``spreads`` per component) at each image's
    candidates' total moves ``points`` (n, K, d), normalised over them: (n, K, P). A lattice of
    one point (a part not searched) weighs it 1."""
    if points.shape[1] == 1:
        return np.zeros((points.shape[0], 1, len(spreads)))
    square = (points**2).sum(-1)[..., None]
    log = -square / (2 * spreads**2)
    return log - np.logaddexp.reduce(log, axis=1, keepdims=True)


@dataclass(frozen=True)
class PoseLevel:
    """One reading of the candidates: the lattices, where they are centred, and the priors.

    Attributes
    ----------
    search : PoseSearch
    centres : np.ndarray or None, (N, 5)
        Each image's move the lattices are centred on (rotation vector, radians; shift move,
        Å), in the order of the rows read; None: the recorded poses.
    spreads : tuple[float, float] or None
        The prior's spreads (radians, Å per component) where they are known; None: every pair
        of :func:`prior_spreads` of the lattices (centred on the recorded poses).
    """

    search: PoseSearch
    centres: np.ndarray | None = None
    spreads: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if (self.centres is None) != (self.spreads is None):
            raise ValueError("centres and spreads go together (a second reading), or neither")

    def prior_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The spreads tried for the turns (radians) and for the shifts (Å)."""
        if self.spreads is not None:
            return np.array([self.spreads[0]]), np.array([self.spreads[1]])
        return prior_spreads(self.search.rotvecs), prior_spreads(self.search.shifts_angstrom)


def trusted_scores(scores: ParticleScores, trust: np.ndarray) -> ParticleScores:
    """``scores`` whose noise per shell is divided by how far the map is trusted there
    (``trust`` (S,), 0 … 1, the shells of ``scores``): a shell whose map holds content the data
    do not vouch for is read as that much noisier, one trusted 0 is not read at all.

    The map's scale per shell ``a_s`` counts what the images share with the map, not what the
    two half sets' maps share with each other and not with the truth (a Gaussian model's
    extension of its shapes past the data, held alike by both halves); reading poses against
    that content pulls both halves' images towards it (benchmarks/RESULTS.md, round 2, session
    79: on ``u58_emd1832_hisnr_pose`` the reported resolution after the refined poses 23 % finer
    than the truth's crossing, 14 % with the shells so weighed, the poses as near).
    """
    trust = np.asarray(trust, dtype=np.float64)
    if scores.shell_noise is None or trust.shape != scores.shell_noise.shape:
        raise ValueError("trust must have one value per shell of scores made by score_from_sums")
    if not np.all((trust >= 0) & (trust <= 1)):
        raise ValueError(f"trust must lie in [0, 1], got {trust.min()} … {trust.max()}")
    noise = np.where(trust > 0, scores.shell_noise / np.where(trust > 0, trust, 1.0), 0.0)
    return replace(scores, shell_noise=noise)


def pose_evidence(
    particles: ParticleSet,
    rows: ArrayLike,
    volume: ArrayLike,
    scores: ParticleScores,
    level: PoseLevel,
    reading: SampleReading | None = None,
    progress: Callable[[int], None] | None = None,
    store: RowStore | None = None,
) -> dict[str, np.ndarray]:
    """Per image and prior (the turns' spreads × the shifts' spreads,
    :meth:`PoseLevel.prior_grid`): the log evidence and the posterior mean move, summed over
    the candidates (the module's docstring), following ``rows``.

    Parameters
    ----------
    particles, rows, volume, reading, progress
        As :func:`~cryosplat.reconstruct.grid.particle_scores.shell_sums`'s, which made
        ``scores``.
    scores : ParticleScores
        ``rows``' scores against ``volume`` at the recorded poses (their order).
    level : PoseLevel
        The candidates: the lattices about the recorded poses, or about moves read before.
    store : RowStore, optional
        Where the pass is kept as it goes (rows done before are not read again).

    Returns
    -------
    dict
        ``"evidence"``: (N, Pr, Pt) float64, the log evidence of each prior (over the lattices:
        about the recorded poses, the set's; about other centres, within those lattices only);
        ``"mean"``: (N, Pr, Pt, 5), the posterior mean move, rotation vector (radians) and shift
        move (Å); ``"recorded"``: (N,), the log-likelihood at the lattices' centre. NaN for
        images whose noise could not be read.
    """
    terms = torch.as_tensor(np.stack(shell_weights(scores)), dtype=torch.float32)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    search = level.search
    centres = np.zeros((len(rows), 5)) if level.centres is None else level.centres
    if centres.shape != (len(rows), 5):
        raise ValueError(f"centres {centres.shape} do not match {len(rows)} rows")
    reading = SampleReading() if reading is None else reading
    rot_spreads, shift_spreads = level.prior_grid()
    shape = (len(rot_spreads), len(shift_spreads))
    store = RowStore(len(rows)) if store is None else store
    store.column("evidence", shape)
    store.column("mean", (*shape, 5))
    store.column("recorded")
    todo, left, progress = store.pending(rows, progress)
    relative = image_noise(scores)
    device = torch.device(reading.device)
    turns = torch.as_tensor(rotvec_to_matrix(search.rotvecs), dtype=torch.float32, device=device)
    reader = None
    with store.saved_on_exit():
        for samples in read_samples(particles, left, volume, reading, progress):
            if reader is None:
                given = torch.as_tensor(np.asarray(volume), dtype=torch.float32, device=device)
                reader = SliceReader.from_map(given, SCORE_PAD, particles.pixel_size_angstrom)
            at = todo[samples.positions]
            batch = _Batch(samples, centres[at], turns, search.shifts_angstrom)
            log_likelihood = _batch_log_likelihood(particles, batch, reader, terms.to(device))
            log_likelihood = log_likelihood / relative[at, None, None]
            rot_points = centres[at, None, :3] + search.rotvecs[None]
            shift_points = centres[at, None, 3:] + search.shifts_angstrom[None]
            summed = posterior_sums(
                log_likelihood,
                (rot_points, shift_points),
                (_log_priors(rot_points, rot_spreads), _log_priors(shift_points, shift_spreads)),
            )
            store.put(at, **summed)
    return store.finish()


@dataclass(frozen=True)
class _Batch:
    """One batch's images and their candidates: ``centres`` (n, 5) of its images, the lattices'
    ``turns`` (C, 3, 3) and ``shifts`` (T, 2, Å)."""

    samples: GroupSamples
    centres: np.ndarray
    turns: torch.Tensor
    shifts: np.ndarray


def _batch_log_likelihood(
    particles: ParticleSet, batch: _Batch, reader: SliceReader, terms: torch.Tensor
) -> np.ndarray:
    """One batch's ``L_ict · c_i`` (n, C, T) float64, with the shells' ``a_s / σ²_s`` and
    ``a_s² / σ²_s`` (``terms``, (2, S))."""
    samples = batch.samples
    part, box = samples.part, particles.box
    n, n_turns = len(samples.positions), len(batch.turns)
    device, kept = samples.kept.device, samples.kept
    kx, ky = samples.kx.double(), samples.ky.double()
    frequency = part.group.frequency

    def phases(shifts: np.ndarray) -> torch.Tensor:
        """``f (kx Δx + ky Δy)`` at the samples, (len(shifts), M)."""
        moves = torch.as_tensor(shifts, dtype=torch.float64, device=device)
        return frequency * (moves[:, :1] * kx[None] + moves[:, 1:] * ky[None])

    theta = phases(batch.shifts).T  # (M, T)
    cos, sin = torch.cos(theta).float(), torch.sin(theta).float()
    transfer = samples.transfer(part.ctf.reshape(n, -1)[:, kept])
    half_weight = 0.5 * samples.friedel.float()  # the half plane stands for the whole
    cross_weight = 2.0 * half_weight * terms[0, samples.shell]
    model_weight = half_weight * terms[1, samples.shell]
    # each image moved to its centre: its shift's phase, its turn before the lattice's
    data = samples.data * torch.polar(torch.ones_like(kx), -phases(batch.centres[:, 3:])).to(
        samples.data.dtype
    )
    centred = rotvec_to_matrix(batch.centres[:, :3]) @ particles.rotations[part.rows]
    recorded = torch.as_tensor(centred, dtype=torch.float32, device=device)
    out = np.empty((n, n_turns, len(batch.shifts)))
    chunk = max(1, SLICE_BUDGET // (n_turns * box * (box // 2 + 1)))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        m = stop - start
        turned = (batch.turns[None] @ recorded[start:stop, None]).reshape(-1, 3, 3)
        matrices = part.group.slice_matrices(turned.cpu().numpy())
        matrices = torch.as_tensor(matrices, dtype=torch.float32, device=device)
        slices = reader.half_samples(matrices * part.group.scale, kx, ky).reshape(m, n_turns, -1)
        predicted = slices * transfer[start:stop, None]
        g = (data[start:stop, None].conj() * predicted * cross_weight).reshape(m * n_turns, -1)
        cross = g.real @ cos - g.imag @ sin
        model = torch.view_as_real(predicted).square().sum(-1) @ model_weight  # (m, C)
        values = cross.reshape(m, n_turns, -1).double() - model[..., None].double()
        out[start:stop] = values.cpu().numpy()
    return out


@dataclass(frozen=True)
class PoseFit:
    """Each image's move, read under the prior that explains the set best (:func:`fit_poses`).

    Attributes
    ----------
    rotvecs : np.ndarray, (N, 3)
        The turns' rotation vectors (radians, the image's frame); zero where not applied.
    shifts_angstrom : np.ndarray, (N, 2)
        The shift moves (Å); zero where not applied.
    rotation_spread_degrees, shift_spread_angstrom : float
        The fitted prior's spreads (per component).
    gain : float
        Its log evidence over the recorded poses' (nats).
    applied : bool
        Whether the gain reached :data:`SIGNIFICANT_GAIN`.
    read : np.ndarray of bool, (N,)
        The images whose likelihood could be read (the others keep their poses).
    """

    rotvecs: np.ndarray
    shifts_angstrom: np.ndarray
    rotation_spread_degrees: float
    shift_spread_angstrom: float
    gain: float
    applied: bool
    read: np.ndarray

    @property
    def moves(self) -> np.ndarray:
        """Each image's move, rotation vector (radians) then shift move (Å): (N, 5)."""
        return np.concatenate([self.rotvecs, self.shifts_angstrom], 1)

    @property
    def spreads(self) -> tuple[float, float]:
        """The prior's spreads, radians and Å (per component)."""
        return math.radians(self.rotation_spread_degrees), self.shift_spread_angstrom

    def moved_to(self, moves: np.ndarray) -> PoseFit:
        """The fit with the moves ``moves`` (N, 5) where it reads them (applied and read)."""
        moves = np.where((self.read & self.applied)[:, None], moves, self.moves)
        return replace(self, rotvecs=moves[:, :3], shifts_angstrom=moves[:, 3:])

    def spread_over(self, rows: np.ndarray, count: int) -> PoseFit:
        """The fit of ``rows``' images (its order) over a set of ``count``: zero moves and not
        read for the others."""
        rotvecs, shifts = np.zeros((count, 3)), np.zeros((count, 2))
        read = np.zeros(count, dtype=bool)
        rotvecs[rows], shifts[rows], read[rows] = self.rotvecs, self.shifts_angstrom, self.read
        return replace(self, rotvecs=rotvecs, shifts_angstrom=shifts, read=read)


def fit_poses(summed: dict[str, np.ndarray], search: PoseSearch) -> PoseFit:
    """The moves under the prior whose evidence, summed over the images, is largest
    (:func:`pose_evidence`'s ``summed`` over ``search``'s lattices about the recorded poses),
    applied where it beats the recorded poses by :data:`SIGNIFICANT_GAIN`."""
    evidence, mean, recorded = summed["evidence"], summed["mean"], summed["recorded"]
    read = np.isfinite(recorded) & np.isfinite(evidence).all((1, 2))
    total = evidence[read].sum(0)
    k, ell = np.unravel_index(int(np.argmax(total)), total.shape)
    gain = float(total[k, ell] - recorded[read].sum()) if read.any() else 0.0
    applied = gain >= SIGNIFICANT_GAIN
    moves = np.where(read[:, None], mean[:, k, ell], 0.0) if applied else np.zeros((len(read), 5))
    return PoseFit(
        rotvecs=moves[:, :3],
        shifts_angstrom=moves[:, 3:],
        rotation_spread_degrees=math.degrees(float(prior_spreads(search.rotvecs)[k])),
        shift_spread_angstrom=float(prior_spreads(search.shifts_angstrom)[ell]),
        gain=gain,
        applied=applied,
        read=read,
    )
