"""Images whose noise level differs: each weighted by the inverse of its noise variance.

Particles picked from micrographs of thin and thick ice, or recorded with different doses, carry
different noise: where an image's noise variance is ``σᵢ²``, the maximum-likelihood map weighs its
squared error by ``1/σᵢ²``. With every image weighed alike (as ``relion_reconstruct`` and
cryoDRGN's ``backproject_voxel`` do) the noisiest images count as much as the cleanest. With
variances spread log-normally by ``s`` (the variance's log has standard deviation ``s``) the
weights are worth ``exp(s²)`` times the particles (1.43 at ``s = 0.6``).

Each image's noise variance is read in its corners (pixels at least ``D/2`` from the centre
``D//2``, as :mod:`cryosplat.reconstruct.grid.background` reads the level), where a centred
molecule puts little signal. The corner variance of one image is itself an estimate, noisy by
about ``√(2/n)`` for ``n`` corner pixels (more for coloured noise, whose neighbouring pixels are
alike), and a molecule that reaches the corners puts its own view-dependent variance there; so the
spread of the logs is measured on a sample of images and only the part that the two halves of the
corners (left and right: far apart, their noise independent) do not explain is kept:

* ``t = var(log vᵢ)`` over the sample, ``e = var(log vᵢᴸ − log vᵢᴿ) / 4``, the estimation noise of
  ``log vᵢ`` (each half's is twice the whole's, and the difference holds both);
* ``k = 1 − e / t``: the share of the spread that is the images' own (an empirical-Bayes shrinkage
  of each image's log variance toward the mean ``m``);
* weight ``wᵢ = exp(−k (log vᵢ − m))``, divided by its mean over the sample, within
  :data:`WEIGHT_RANGE` of 1.

Where ``k`` is under :data:`MIN_SHARE` (the images' levels alike, as normalised particles'
are: ``relion_preprocess --norm`` sets each background's sd to one), every weight is 1 and the
statistics are those of the unweighted pass to the bit. Where some sampled image has corners that
hold no noise (zeros: a mask, or a particle at the micrograph's edge padded with a constant) the
corners say nothing of the noise and the images are weighed alike, with a note.

Images of several kinds (:meth:`~cryosplat.particles.particle_set.ParticleSet.image_kinds`: optics
groups read at other pixel sizes, or binned and Fourier-padded) hold their noise differently in
their pixels: a binned image's pixels average four, and under coloured noise its corners' variance
says little of its noise per frequency against another kind's. Their logs are then compared
within their own kind (``m`` per kind): each kind weighs as much on average as it would weighed
alike, as ``relion_reconstruct`` weighs them, and the weights only follow the images' own spread
within it. Measured (round 2, session 62; ``benchmarks/bench_mixed_boxes.py``'s EMD-5625 set of
three boxes): the FSC with the truth at 0.5 20.47 Å with one ``m``, 20.10 Å per kind, 20.19 Å
from the same particles at one box.

The same sample sets the limit past which an image's background holds structure far beyond its
noise (:mod:`cryosplat.reconstruct.grid.background_structure`: a support film's edge,
contamination); such images weigh 0. Where the sample holds none, no limit is set.

Measured (round 2, session 43; ``benchmarks/bench_datasets.py``'s ``noise_sd_spread``): EMD-5625,
box 56, 4,000 particles, coloured noise whose s.d. is spread by ``exp(0.3 z)``: FSC with the truth
at 0.5 20.33 Å weighed alike, 17.72 Å with the true levels' weights, 17.99 Å with the corners'.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.background import corner_pixels
from cryosplat.reconstruct.grid.background_structure import structure_limits, structure_ratios

__all__ = [
    "NoiseLevels",
    "corner_variances",
    "measure_noise_levels",
    "MIN_SHARE",
    "SAMPLE_IMAGES",
    "WEIGHT_RANGE",
]

log = logging.getLogger("cryosplat")

# The images' own share of the corner variances' spread under which every image weighs the same
# (the estimation noise at least as large as the levels' own spread).
MIN_SHARE = 0.5
# Images read to measure the spread (spread over the set, first and last included).
SAMPLE_IMAGES = 1000
# Weights are kept within [1/WEIGHT_RANGE, WEIGHT_RANGE] of the sample's mean: one image with
# near-empty corners cannot take over a shell.
WEIGHT_RANGE = 10.0
# A sampled corner variance under this share of the median: the corners hold no noise.
EMPTY_CORNERS = 1e-3


@lru_cache(maxsize=8)
def _corner_halves(box: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat pixel indices of the corners' left (``x < D//2``) and right halves (made once per
    box: the statistics pass asks for them every batch)."""
    corners = corner_pixels(box, device)
    left = (torch.arange(box * box, device=device) % box) < box // 2
    return (corners & left).nonzero().squeeze(1), (corners & ~left).nonzero().squeeze(1)


def corner_variances(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's pixel variance in its corners: ``(left, right)`` halves, float64 (B,) each.

    Parameters
    ----------
    images : torch.Tensor, shape (B, D, D), as stored (before any shift)
    """
    flat = images.reshape(images.shape[0], -1)
    halves = _corner_halves(images.shape[-1], images.device)
    return tuple(flat[:, i].double().var(dim=1, correction=1) for i in halves)


def _pooled(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """The whole corners' variance from its two halves' (equal pixel counts, within 1)."""
    return (left + right) / 2.0


@dataclass(frozen=True)
class NoiseLevels:
    """How the images' corner variances become weights (module docstring).

    Attributes
    ----------
    mean_log : float
        ``m``, the sample's mean log corner variance.
    share : float
        ``k`` in ``[MIN_SHARE, 1]``, the images' own share of the spread.
    norm : float
        The sample's mean of ``exp(−k (log v − m))``: the weights' mean is 1.
    spread : float
        The sample's standard deviation of ``log v`` (for the log).
    kind_means : tuple of float, optional
        ``m`` of each kind of image where the set holds several (NaN for a kind the sample held
        none of); ``log v`` is then read against its own kind's, and ``spread`` is of those.
    structure_limits : tuple of float, optional
        Each kind's limit on the background's structure ratio
        (:func:`~cryosplat.reconstruct.grid.background_structure.structure_limits`): an image
        past it weighs 0. None: none is left out.
    structure_sampled : (int, int), optional
        ``(past the limits, read)`` of the sample, where the limits are set.
    """

    mean_log: float
    share: float
    norm: float
    spread: float
    kind_means: tuple[float, ...] | None = None
    structure_limits: tuple[float, ...] | None = None
    structure_sampled: tuple[int, int] | None = None

    def weights(self, images: torch.Tensor, kinds: np.ndarray | None = None) -> torch.Tensor:
        """Weights (B,) of a batch of images (B, D, D) as stored, in their dtype and device;
        ``kinds`` (B,): their kinds of image where the set holds several (module docstring)."""
        weights = self.weights_of(_pooled(*corner_variances(images)), kinds)
        if self.structure_limits is not None:
            limit = _limit_of_each(self.structure_limits, kinds, images.shape[0])
            structured = structure_ratios(images) > limit.to(images.device)
            weights = torch.where(structured, 0.0, weights)
        return weights.to(images.dtype)

    def weights_of(self, variances: torch.Tensor, kinds: np.ndarray | None = None) -> torch.Tensor:
        """Weights of corner variances (B,), float64; 1 for corners that hold no noise
        (:data:`EMPTY_CORNERS` of the typical variance: they say nothing of the image's), and for
        images of a kind the sample held none of."""
        v = torch.as_tensor(variances, dtype=torch.float64)
        m: float | torch.Tensor = self.mean_log
        if kinds is not None and self.kind_means is not None:
            m = torch.as_tensor(self.kind_means, dtype=torch.float64)[torch.as_tensor(kinds)]
            m = m.to(v.device)
        empty = v <= EMPTY_CORNERS * torch.exp(torch.as_tensor(m, dtype=torch.float64))
        w = torch.exp(-self.share * (v.clamp_min(1e-300).log() - m)) / self.norm
        w = torch.where(torch.isnan(w), 1.0, w)  # a kind the sample held none of
        return torch.where(empty, 1.0, w.clamp(1.0 / WEIGHT_RANGE, WEIGHT_RANGE))

    def structure_summary(self) -> dict | None:
        """What ``run.json`` keeps of the images left out for their background's structure
        (None where none is): the sample's count past the limits, its size and the limits."""
        if self.structure_limits is None or self.structure_sampled is None:
            return None
        past, read = self.structure_sampled
        return {
            "sampled_images_left_out": past,
            "sampled_images": read,
            "limits": list(self.structure_limits),
        }

    @property
    def own_factor(self) -> float:
        """The factor by which the images' own noise variances differ (1 sd of their logs)."""
        return math.exp(math.sqrt(self.share) * self.spread)

    def describe(self) -> str:
        if self.share == 0:
            return "the images' noise levels alike: weighed alike"
        return (
            f"the images' noise variances differ by a factor {self.own_factor:.2f} (1 sd of their own "
            f"spread, {self.share:.0%} of their corners'): each image weighed by the inverse of "
            "its noise variance"
        )


def measure_noise_levels(
    particles: ParticleSet, sample: int = SAMPLE_IMAGES, batch: int = 256, report: bool = True
) -> NoiseLevels | None:
    """:class:`NoiseLevels` from a sample of the images' corners, or None: weigh them alike.

    Parameters
    ----------
    particles : ParticleSet
    sample : int
        Images read, spread over the set (:meth:`ParticleSet.spread_rows`): every process of a
        distributed run reads the same ones, so all weigh alike.
    batch : int
        Images read at once (memory stays that of ``batch`` images at any box).
    report : bool
        Log what was found (a run's log); False for a caller that says it in its own words.
    """
    if len(particles) < 8:
        return None
    picked = particles.spread_rows(sample)
    halves: list[tuple[torch.Tensor, torch.Tensor]] = []
    kinds: list[np.ndarray] = []
    sample_ratios: list[torch.Tensor] = []
    for start in range(0, picked.size, batch):
        rows = picked[start : start + batch]
        images = torch.from_numpy(particles.read_images(rows))
        finite = torch.isfinite(images).all(dim=-1).all(dim=-1)
        halves.append(corner_variances(images[finite]))
        sample_ratios.append(structure_ratios(images[finite]))
        kinds.append(particles.image_kinds(rows)[finite.numpy()])
    left, right = (torch.cat(parts) for parts in zip(*halves, strict=True))
    kind = np.concatenate(kinds)
    ratios = torch.cat(sample_ratios)
    limits, past = _structure_limits(ratios, kind)
    sampled = None
    if limits is not None:  # the levels of the images that stay in
        sampled = (int(past.sum()), len(ratios))
        if report:
            log.warning(
                "warning: background structure: %d of %d sampled images (%.1f%%) hold structure "
                "in their background far beyond their noise (a support film's edge, "
                "contamination): every such image is left out of the map (weight 0)",
                *sampled,
                100.0 * sampled[0] / sampled[1],
            )
        left, right, kind = left[~past], right[~past], kind[~past.numpy()]
    whole = _pooled(left, right)
    if whole.numel() < 8:
        return None
    median = float(whole.median())
    if not median > 0 or bool((torch.minimum(left, right) <= EMPTY_CORNERS * median).any()):
        if report:
            log.info(
                "noise levels: some images' corners hold no noise (a mask, or padding at a "
                "micrograph's edge): the images are weighed alike"
            )
        return None
    logs = whole.log()
    kind_means = None
    n_kinds = int(particles.image_kinds().max()) + 1
    if n_kinds > 1:  # each kind's logs against its own mean (module docstring)
        of_kind = torch.from_numpy(kind)
        sums = torch.zeros(n_kinds, dtype=torch.float64).index_add_(0, of_kind, logs)
        counts = torch.bincount(of_kind, minlength=n_kinds).double()
        means = sums / counts  # NaN for a kind not sampled
        kind_means = tuple(float(x) for x in means)
        logs = logs - means[of_kind]
    total = float(logs.var())
    estimation = float((left.log() - right.log()).var()) / 4.0
    share = 1.0 - estimation / total if total > 0 else 0.0
    if share < MIN_SHARE:
        if report:
            log.info(
                "noise levels: the images' corner variances spread by a factor %.3f (1 sd), as "
                "their estimation noise explains (own share %.2f, under %.2f): weighed alike",
                math.exp(math.sqrt(total)),
                share,
                MIN_SHARE,
            )
        if limits is None:
            return None
        return NoiseLevels(0.0, 0.0, 1.0, math.sqrt(total), None, limits, sampled)
    mean_log = float(logs.mean())
    norm = float(torch.exp(-share * (logs - mean_log)).mean())
    if kind_means is not None:
        mean_log = float(whole.log().mean())
    levels = NoiseLevels(mean_log, share, norm, math.sqrt(total), kind_means, limits, sampled)
    if report:
        log.info("noise levels: %s", levels.describe())
    return levels


def _limit_of_each(limits: tuple[float, ...], kinds: np.ndarray | None, n: int) -> torch.Tensor:
    """Each of ``n`` images' limit on its structure ratio, float64 (n,): its kind's (``kinds``
    (n,), all kind 0 where None), ``inf`` for a kind the sample held none of."""
    table = torch.tensor([*limits, math.inf], dtype=torch.float64)
    if kinds is None:
        return table[0].expand(n)
    kinds = torch.as_tensor(np.asarray(kinds), dtype=torch.int64)
    return table[torch.where(kinds < len(limits), kinds, len(limits))]


def _structure_limits(
    ratios: torch.Tensor, kinds: np.ndarray
) -> tuple[tuple[float, ...] | None, torch.Tensor | None]:
    """:func:`~cryosplat.reconstruct.grid.background_structure.structure_limits` of the sample and
    which sampled images lie past them (None, None: no limit)."""
    limits = structure_limits(ratios, kinds)
    if limits is None:
        return None, None
    return limits, ratios > _limit_of_each(limits, kinds, len(ratios))
