"""The statistics pass: particle images streamed once into :class:`FourierStatistics`.

Images are read ``batch_size`` at a time (:mod:`cryosplat.reconstruct.grid.staging`), checked for
bad pixels, transformed, shifted back by their origins, multiplied by their CTF and inserted into
the padded half grid with trilinear weights (:mod:`cryosplat.core.fourier_slice`); each optics group
with its own pixel size; symmetric sets once per operator. Memory does not grow with the number of
particles.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.errors import InputError
from cryosplat.core.fourier_slice import default_max_radius
from cryosplat.core.slice_insertion import SliceAccumulator
from cryosplat.core.symmetry import symmetry_operators
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.validate import bad_image_rows, describe_image
from cryosplat.reconstruct.grid.background import (
    BackgroundMeter,
    remove_background,
    scaled_for_expansion,
)
from cryosplat.reconstruct.grid.gather_checkpoint import GatherCheckpoint, GatherState, gather_key
from cryosplat.reconstruct.grid.group_sampling import GroupSampling
from cryosplat.reconstruct.grid.image_spectra import SpectraPreparer
from cryosplat.reconstruct.grid.noise_levels import NoiseLevels
from cryosplat.reconstruct.grid.staging import device_batches
from cryosplat.reconstruct.grid.statistics import FourierStatistics, joined_rows

__all__ = ["AccumulateConfig", "accumulate", "MIN_RADIUS", "MAX_PAD"]

log = logging.getLogger("cryosplat")

INTERPOLATIONS = ("trilinear",)
FLUSH_EVERY = 8  # batches summed into partial grids before the totals are updated
MIN_RADIUS = 4  # shells: fewer leave nothing to fit (and the amplitude factor reads radius 2)
MAX_PAD = 4  # the grid holds (pad·D)³ voxels: beyond 4 it costs memory and buys nothing


@dataclass
class AccumulateConfig:
    """How to gather the statistics.

    Attributes
    ----------
    pad : int
        Padding factor of the 3D grid (2, as RELION).
    batch_size : int
        Images read and inserted at once (memory ∝ batch size, not the particle count).
    device : str
        torch device of the grids and the insertion.
    interpolation : str
        ``"trilinear"`` (the only one): each frequency spreads onto its 8 grid neighbours.
    max_resolution_angstrom : float or None
        Gather frequencies up to this resolution (Å); None: up to ``D/2 − 1/pad`` pixels.
    drop_bad_images : bool
        Leave out (and log) particles whose image holds NaN, infinite or absurd pixels
        (:func:`cryosplat.particles.validate.bad_image_rows`); by default such an image stops the
        pass with an :class:`InputError` naming it.
    symmetry : str
        Point group (:mod:`cryosplat.core.symmetry`) whose operators ``accumulate`` applies when
        it is given no ``operators``; ``"C1"``: none.
    noise_levels : NoiseLevels or None
        Each image weighed by the inverse of its noise variance, read in its corners
        (:mod:`cryosplat.reconstruct.grid.noise_levels`): ``B``, ``W`` and the data power are
        those of the weighed squared error. None: every image weighs 1.
    """

    pad: int = 2
    batch_size: int = 128
    device: str = "cpu"
    interpolation: str = "trilinear"
    max_resolution_angstrom: float | None = None
    drop_bad_images: bool = False
    symmetry: str = "C1"
    noise_levels: NoiseLevels | None = None

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first bad setting."""
        if int(self.pad) != self.pad or not 1 <= self.pad <= MAX_PAD:
            raise InputError(
                f"pad must be an integer from 1 to {MAX_PAD} (RELION pads by 2), got {self.pad}"
            )
        if self.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(
                f"interpolation must be one of {INTERPOLATIONS}, got '{self.interpolation}'"
            )
        if self.max_resolution_angstrom is not None and not self.max_resolution_angstrom > 0:
            raise InputError(
                f"max_resolution_angstrom must be positive, got {self.max_resolution_angstrom}"
            )


def _max_radius(box: int, pixel: float, config: AccumulateConfig) -> float:
    limit = default_max_radius(box, config.pad)
    if config.max_resolution_angstrom is not None:
        limit = min(limit, box * pixel / config.max_resolution_angstrom)
        if limit < MIN_RADIUS:
            raise InputError(
                f"max_resolution_angstrom {config.max_resolution_angstrom:g} Å keeps fewer than "
                f"{MIN_RADIUS} Fourier shells of a {box}-pixel box at {pixel:g} Å: nothing to fit "
                f"(the coarsest useful limit is {box * pixel / MIN_RADIUS:g} Å)"
            )
    return limit


def _check_indices(particles: ParticleSet, indices) -> np.ndarray:
    n = len(particles)
    idx = np.arange(n) if indices is None else np.asarray(indices)
    if idx.dtype == bool and idx.shape != (n,):
        raise InputError(f"{particles.source}: a mask of {idx.size} rows for {n} particles")
    idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64).reshape(-1)
    bad = idx[(idx < 0) | (idx >= n)]
    if bad.size:
        raise InputError(f"{particles.source}: particle index {int(bad[0])} is outside 0..{n - 1}")
    return idx


def accumulate(
    particles: ParticleSet,
    indices: ArrayLike | None = None,
    config: AccumulateConfig | None = None,
    progress: Callable[..., None] | None = None,
    operators: ArrayLike | None = None,
    partial: Path | None = None,
    take_off_background: bool = True,
    label: str = "",
) -> FourierStatistics:
    """Gather ``W`` and ``B`` from particle images in one streamed pass.

    Images are read ``batch_size`` at a time from the memory-mapped stacks (on a GPU, ahead of
    the computation into pinned memory: :mod:`cryosplat.reconstruct.grid.staging`), transformed,
    shifted back by their origins (a phase), multiplied by their CTF
    (:mod:`cryosplat.core.ctf_plane`; images that carry it already by
    :func:`~cryosplat.core.ctf.raw_backprojection_factor`, so that ``B`` and ``W`` are the raw
    images' whichever way they were stored) and inserted with trilinear weights on the half grid; memory
    does not grow with the number of particles. The rows are gathered in (stack, image) order, so
    each stack file is read once, front to back, whatever the order of ``indices`` (a sum does not
    depend on the order). Each optics group uses its own pixel size for its CTF and shifts, and its
    Fourier samples are rescaled to the reconstruction's pixel size
    ``particles.pixel_size_angstrom`` (:class:`~cryosplat.reconstruct.grid.group_sampling.GroupSampling`).

    Parameters
    ----------
    particles : ParticleSet
        With poses and CTF.
    indices : array_like of int or bool mask, optional
        Rows to gather (e.g. one half set); all by default.
    config : AccumulateConfig, optional
    progress : callable(done, total), optional
        Called after each batch with the number of particles gathered so far. With ``partial``
        it must also take ``resumed=True``: a pass that continues one saved part way first calls
        ``progress(done, total, resumed=True)`` with the particles the saved pass covered, work
        not done in this run (:meth:`cryosplat.core.progress.Progress.resumed`).
    operators : array_like (G, 3, 3), optional
        Point-group rotations ``R_g`` (:func:`cryosplat.core.symmetry.symmetry_operators`): the
        statistics of the ``|G|``-fold expanded set, each image counted once per operator with pose
        ``A R_g`` (the pose it also has in a symmetric map): ``W``, ``B`` and the data power
        (``n_particles`` still counts images). Groups whose operators permute the axes (C2, C4,
        D2, D4, T, O) are gathered once and their grids rotated (:meth:`symmetrized`, exact);
        the others (C3, D3, I, ...) insert each image ``|G|`` times (pose expansion).
    partial : Path, optional
        Save the pass part way there every :data:`~cryosplat.reconstruct.grid.gather_checkpoint.
        PARTIAL_EVERY_S` seconds, and continue from what is there when it was saved by a pass of
        the same rows and settings (:mod:`cryosplat.reconstruct.grid.gather_checkpoint`; the
        sums the same to the bit). The caller removes it once the result is kept.
    take_off_background : bool
        Take the images' mean background level (measured in their corners) off their zero
        frequency (:mod:`cryosplat.reconstruct.grid.background`). False: leave it, with its sums
        in ``background_sums`` (a distributed pass's share, taken off once the shares are summed).
    label : str
        Which images these are (e.g. ``"half A"``), named where their background level is logged.

    Returns
    -------
    FourierStatistics on ``config.device``.
    """
    config = AccumulateConfig() if config is None else config
    config.validate()
    particles.require_poses_and_ctf()
    idx = _check_indices(particles, indices)
    idx = idx[np.lexsort((particles.image_index[idx], particles.stack_index[idx]))]
    box, pixel = particles.box, particles.pixel_size_angstrom
    device = torch.device(config.device)
    if operators is None and config.symmetry != "C1":
        operators = symmetry_operators(config.symmetry)
    ops = None  # before any grid is allocated: the axis-permutation path recurses
    if operators is not None and len(operators) > 1:
        operators = np.asarray(operators, dtype=np.float64)
        if np.abs(operators - np.round(operators)).max() < 1e-9:
            # Signed axis permutations (C2, C4, D2, D4, T, O): gather once, rotate the grids.
            stats = accumulate(
                particles,
                idx,
                replace(config, symmetry="C1"),
                progress,
                None,
                partial,
                take_off_background,
                label,
            )
            return _symmetrized(stats, operators)
        ops = torch.as_tensor(operators, device=device, dtype=torch.float32)
    radius = _max_radius(box, pixel, config)
    inserter = _BatchInserter(particles, config, radius, ops)
    n_batches = math.ceil(idx.size / config.batch_size)
    dropped: list[int] = []

    def screen(rows: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bad = bad_image_rows(images)
        if bad.size:
            rows, images = _drop_bad(particles, rows, images, bad, config)
            dropped.append(bad.size)
        return rows, images

    saver, start = None, 0
    if partial is not None:
        key = gather_key(
            idx,
            batch_size=config.batch_size,
            pad=config.pad,
            radius=radius,
            box=box,
            pixel=pixel,
            operators=None if ops is None else ops.cpu().numpy().round(9).tolist(),
            flush=FLUSH_EVERY,
            background="corners",
            noise_levels=None if config.noise_levels is None else asdict(config.noise_levels),
        )
        saver = GatherCheckpoint(partial, key, idx.size, config.batch_size)
        state = saver.resume(device, progress)
        if state is not None:
            inserter.restore(state)
            dropped.append(state.n_dropped)
            start = state.batches
    rest = idx[start * config.batch_size :]
    batches = device_batches(particles, rest, config.batch_size, device, screen=screen)
    for number, (batch, images) in enumerate(batches, start=start):
        if len(batch) == 0 and number + 1 < n_batches:  # every image of the batch left out
            continue
        inserter.add(batch, images)
        if progress is not None:
            progress(min(idx.size, (number + 1) * config.batch_size), idx.size)
        flush = number + 1 < n_batches and inserter.sums.at_flush()
        if saver is not None and flush and saver.due():
            saver.save(inserter.state(number + 1, sum(dropped)))
    n_dropped = sum(dropped)
    notes = [f"left out {n_dropped} particles with bad images"] if n_dropped else []
    total_b, total_w, power = inserter.result()
    stats = FourierStatistics(
        total_w,
        total_b,
        box,
        config.pad,
        pixel,
        int(idx.size) - n_dropped,
        power.cpu(),
        radius,
        notes,
        background_sums=inserter.background.sums.cpu(),
        left_out_rows=None if inserter.left_out is None else inserter.left_out_rows(),
    )
    if not take_off_background:
        return stats
    return remove_background(stats, label)


def _symmetrized(stats: FourierStatistics, operators: np.ndarray) -> FourierStatistics:
    """``stats`` of the C1 pass symmetrized by the signed axis permutations ``operators``, with
    its background sums scaled as the expanded set's."""
    symmetric = stats.symmetrized(operators)
    if stats.background_sums is None:
        return symmetric
    sums = scaled_for_expansion(stats.background_sums, len(operators))
    return replace(symmetric, background_sums=sums)


class _BatchInserter:
    """The pass's running sums, and the insertion of one batch of images into them.

    Each image's rfft (``kx ≥ 0``, ``ky`` centred) is shifted back by its origin (a phase, with
    its centre moved to the origin folded in), multiplied by its CTF (or by the factor of an
    image that carries it already) and inserted once per operator of ``ops`` (pose expansion)
    with trilinear weights; its power per shell is summed in double precision. The geometry of
    each optics group (pixel size) is made once and kept.
    """

    def __init__(self, particles: ParticleSet, config: AccumulateConfig, radius: float, ops):
        box = particles.box
        device = torch.device(config.device)
        self.particles, self.radius, self.box = particles, radius, box
        self.pad, self.device = config.pad, device
        self.prepare = SpectraPreparer(particles, radius, config.pad, device)
        # each image's kind, where pixel sizes or binned groups make several (noise_levels)
        self.kind_of = particles.image_kinds()
        if not self.kind_of.any():
            self.kind_of = None
        # Single precision throughout: partial sums of FLUSH_EVERY batches are added to the
        # totals (pairwise-style summation keeps the relative rounding near 1e-6 for a million
        # particles), and the grids, the bulk of the memory at large boxes, take half the space
        # of double.
        self.sums = SliceAccumulator(box, config.pad, True, device, torch.float32, FLUSH_EVERY)
        self.power = torch.zeros(int(radius**2) + 1, device=device, dtype=torch.float64)
        self.power_bins: dict[tuple[float, int, float], tuple[torch.Tensor, ...]] = {}
        # Pose expansion for the other groups: each image is the projection at A·R_g as well.
        self.expansion = [None] if ops is None else list(ops)
        self.background = BackgroundMeter(box, device)
        self.levels = config.noise_levels
        # the rows weighed 0 for their background's structure (None: no limit set)
        self.left_out: list[np.ndarray] | None = None
        if self.levels is not None and self.levels.structure_limits is not None:
            self.left_out = []

    def restore(self, state: GatherState) -> None:
        """Continue from the sums of a pass saved part way."""
        self.sums.restore(state.data, state.weights, state.insertions)
        self.power.copy_(state.power)
        self.background.sums.copy_(state.background)
        if self.left_out is not None:
            self.left_out = [state.left_out]

    def state(self, batches: int, n_dropped: int) -> GatherState:
        """The sums after ``batches`` batches, to save (at a flush: the partial grids empty)."""
        data, weights = self.sums.total
        return GatherState(
            batches,
            self.sums.insertions,
            data,
            weights,
            self.power,
            n_dropped,
            self.background.sums,
            self.left_out_rows(),
        )

    def left_out_rows(self) -> np.ndarray:
        """The rows weighed 0 for their background's structure so far, sorted."""
        rows = joined_rows(self.left_out or [])
        return np.zeros(0, dtype=np.int64) if rows is None else rows

    def result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, W, power)``: the totals (the accumulator released), the power times ``|G|``."""
        total_b, total_w = self.sums.result()
        del self.sums
        if len(self.expansion) > 1:
            self.power *= len(self.expansion)
        return total_b, total_w, self.power

    def add(self, batch: np.ndarray, images: torch.Tensor) -> None:
        """Insert the images of rows ``batch``, each optics group (pixel size) on its own."""
        box = self.box
        weights = None
        if self.levels is not None:
            kinds = None if self.kind_of is None else self.kind_of[batch]
            weights = self.levels.weights(images, kinds)
            if self.left_out is not None:  # weight 0: structure (the levels' are positive)
                self.left_out.append(batch[(weights == 0).cpu().numpy()])
        self.background.add_images(images, weights)
        if self.particles.weights is not None:  # the user's (cryosplat.particles.weights)
            given = torch.as_tensor(self.particles.weights[batch], dtype=images.dtype)
            given = given.to(images.device)
            weights = given if weights is None else weights * given
        spectra = self.prepare.spectra(batch, images)
        for part in self.prepare.groups(batch, spectra):
            group, group_spectra, ctf, factor = part.group, part.spectra, part.ctf, part.factor
            picked = part.picked
            group_weights = weights if weights is None or picked is None else weights[picked]
            self.background.add_zero_frequency(
                group.amplitude,
                factor[:, box // 2, 0],
                group_spectra[:, box // 2, 0],
                len(self.expansion),
                group_weights,
            )
            ctf2 = ctf * ctf
            if group_weights is not None:  # the weighed squared error's sums
                factor = factor * group_weights[:, None, None]
                ctf2 = ctf2 * group_weights[:, None, None]
            pairs = torch.view_as_real(group_spectra) * factor[..., None]
            weighted = torch.view_as_complex(pairs)
            for op in self.expansion:
                self.sums.insert(
                    weighted,
                    (part.rotations if op is None else part.rotations @ op) * group.scale,
                    ctf2,
                    max_radius=group.max_radius,
                )
            n_rows = len(part.rows)
            self._add_power(part.key, group, group_spectra.reshape(n_rows, -1), group_weights)

    def _add_power(
        self,
        key: tuple[float, int, float],
        group: GroupSampling,
        spectra: torch.Tensor,
        weights: torch.Tensor | None = None,
    ) -> None:
        """Sum the shifted spectra's power by the shell each sample lands in (both halves of
        the rfft counted), each image's times its weight."""
        if key not in self.power_bins:
            r2 = group.landing_radius2(self.prepare.plane_kx, self.prepare.plane_ky).reshape(-1)
            kept = (r2 <= self.radius * self.radius).nonzero().squeeze(1)
            bins = torch.round(r2[kept]).long().clamp_max(self.power.numel() - 1)
            self.power_bins[key] = (kept, bins, self.prepare.friedel_all[kept])
        kept, bins, friedel = self.power_bins[key]
        picked = torch.view_as_real(spectra[:, kept]).square().sum(-1)
        if weights is not None:
            picked = picked * weights[:, None]
        magnitude2 = picked.sum(0, dtype=torch.float64)
        self.power.index_add_(0, bins, magnitude2 * friedel)


def _drop_bad(particles: ParticleSet, rows, images, bad, config: AccumulateConfig):
    """Rows and images without the ``bad`` ones (logged), or InputError naming the first."""
    first = describe_image(particles, int(rows[bad[0]]), images[bad[0]])
    if not config.drop_bad_images:
        more = f" ({bad.size} such images in this batch of {len(rows)})" if bad.size > 1 else ""
        raise InputError(
            f"{particles.source}: particle {first}{more}: the map would be NaN or garbage; "
            "fix or remove the image, or pass --drop-bad-images to leave such particles out"
        )
    for b in bad:
        log.warning("left out particle %s", describe_image(particles, int(rows[b]), images[b]))
    keep = np.ones(len(rows), dtype=bool)
    keep[bad] = False
    return rows[keep], images[keep]
