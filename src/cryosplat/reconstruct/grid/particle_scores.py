"""Each particle's agreement with the half map made without it, in units of the noise.

Real particle sets hold images that are not the molecule at the pose their metadata gives: empty
ice or carbon picked as particles, aggregates, particles whose pose a refinement got wrong. With
known poses, each image can be compared with what the map predicts for it: the central slice of
the map's transform at its pose, times its CTF (:mod:`cryosplat.reconstruct.grid.image_spectra`
places the image exactly as the statistics pass does). Each half set's images are compared with
the *other* half's map, made without them: an image cannot agree with a map by having shaped it.

Per image ``i`` and Fourier shell ``s`` (the zero frequency left out: images are normalised to a
zero background) the pass sums ``x_is = Σ Re(X̄ P)``, ``p_is = Σ |P|²`` and ``e_is = Σ |X|²`` over
the shell's samples (:class:`ShellSums`). From them (:func:`score_from_sums`):

* the map's scale per shell ``a_s = Σ_i x_is / Σ_i p_is`` (a least-squares fit over every image:
  the map's filtering and units, 0 where it is negative) and the noise power per sample
  ``σ²_s = (Σ_i e_is − a_s Σ_i x_is) / Σ_i n_is``, the residual after it;
* each image's noise relative to the set's, ``c_i`` (its residual power over the shells read,
  over what ``σ²`` predicts): images from thicker ice are noisier;
* the score ``z_i = Σ_s a_s x_is / σ²_s / √(c_i Σ_s a_s² p_is / σ²_s)``: the correlation of the
  image with its prediction, weighed shell by shell as a matched filter under coloured Gaussian
  noise. For an image that holds only noise ``z`` is a standard normal variable, whatever the
  signal level; for the molecule at its pose its mean is the image's own signal-to-noise ratio
  (its amplitude ``√(Σ_s a_s² p_is / σ²_s)``).

How many images hold nothing the map predicts, and which, is read from the scores as a mixture
(:mod:`~cryosplat.reconstruct.grid.score_mixture`): noise alone scores ``N(0, 1)``; the molecule
at its pose scores about its expected score times a gain fitted to the set, give or take a spread
at least the noise's. Each image's posterior chance of being noise alone
(:meth:`ParticleScores.junk_probability`) names it where it is above one half. Where the
particles' signal is weak and the two overlap, the images scoring near zero are the molecule's
own spread, and almost none is named.

The map's scale and the noise are fitted again to the images weighed by their chance of holding
the molecule (:data:`REFITS`): where the signal is strong, images of noise would pull the scale
down and the molecule's residual up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.ctf import image_transfer, raw_backprojection_factor
from cryosplat.core.ctf_plane import CTFPlane
from cryosplat.core.fourier_slice import SliceReader, default_max_radius
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.image_spectra import GroupSpectra, SpectraPreparer
from cryosplat.reconstruct.grid.row_store import RowStore
from cryosplat.reconstruct.grid.score_mixture import ScoreMixture, fit_mixture
from cryosplat.reconstruct.grid.slice_cache import SliceCache
from cryosplat.reconstruct.grid.staging import device_batches

__all__ = [
    "JUNK_PROBABILITY",
    "GroupSamples",
    "ParticleScores",
    "SHELL_SUM_NAMES",
    "SampleReading",
    "ShellSums",
    "read_samples",
    "score_radius",
    "score_from_sums",
    "shell_sums",
]

JUNK_PROBABILITY = 0.5
"""An image is named as holding nothing the map predicts where its local false discovery rate
(:meth:`ParticleScores.junk_probability`) is above this: more likely noise than the molecule."""
SCORE_PAD = 2  # the map's transform padded twice, as the statistics pass's grid
RESOLUTION_MARGIN = 1.25  # shells read to this many times the map's resolution's


def score_radius(box: int, pixel_size_angstrom: float, resolution_angstrom: float | None) -> float:
    """The shells worth reading (pixels of the box): to :data:`RESOLUTION_MARGIN` times the
    map's resolution's, at most the padded grid's limit. Past it the map's fitted scale is noise
    about zero (measured on EMD-5625 and EMD-6824: 0–0.14 against 0.7–1.4 within), which adds to
    the molecule's scores' spread and to the time, not to what they tell apart."""
    limit = default_max_radius(box, SCORE_PAD)
    if resolution_angstrom is None or not math.isfinite(resolution_angstrom):
        return limit
    return min(limit, RESOLUTION_MARGIN * box * pixel_size_angstrom / resolution_angstrom)


@dataclass(frozen=True)
class ShellSums:
    """Per image and Fourier shell, the sums the scores are made from, float64 (N, S).

    ``cross``: ``Σ Re(X̄ P)``; ``model``: ``Σ |P|²``; ``data``: ``Σ |X|²``; ``count``: the samples
    (Friedel pairs counted twice, as the full spectrum holds them); ``ctf_data``: ``w Σ C² |X|²``
    with ``w`` the weight the image was inserted with (1 unless the reading knows it:
    :attr:`SampleReading.insertion_weights`; :mod:`~cryosplat.reconstruct.grid.own_share` reads
    the map's own share of an image with it).
    Shell 0 (the zero frequency) is left empty.
    """

    cross: np.ndarray
    model: np.ndarray
    data: np.ndarray
    count: np.ndarray
    ctf_data: np.ndarray

    @staticmethod
    def concatenate(parts: list[ShellSums]) -> ShellSums:
        """``parts``' images one after the other."""
        return ShellSums(*(np.concatenate([getattr(p, f) for p in parts]) for f in SHELL_SUM_NAMES))

    def take(self, order: np.ndarray) -> ShellSums:
        """The images at ``order``."""
        return ShellSums(*(getattr(self, f)[order] for f in SHELL_SUM_NAMES))


SHELL_SUM_NAMES = tuple(f.name for f in fields(ShellSums))  # saved passes are keyed by them


@dataclass(frozen=True)
class GroupSamples:
    """One batch's images of one sampling, against a map's central slices: their samples within
    the shells read (:func:`read_samples`).

    Attributes
    ----------
    positions : np.ndarray of int, (n,)
        Their positions in the ``rows`` that were read.
    part : GroupSpectra
        The images as the statistics pass places them (rows, CTF, rotations).
    plane : CTFPlane
        Their sampling's CTF geometry at the samples read, (M,): the CTF at other parameters
        than :attr:`GroupSpectra.ctf`'s, the rows' own.
    kept : torch.Tensor of int, (M,)
        The samples read, indices into the flattened ``(D, D//2)`` half plane.
    kx, ky : torch.Tensor of int, (M,)
        Their frequencies (pixels of the images' grid; ``0 ≤ kx < D/2``).
    shell : torch.Tensor of int, (M,)
        Each sample's shell where it lands on the map's grid (1 … S − 1).
    friedel : torch.Tensor, float64, (M,)
        2 where the sample stands for its Friedel mate as well, else 1.
    count : np.ndarray, (S,)
        The samples per shell (Friedel pairs counted twice).
    slices : torch.Tensor, complex64, (n, M)
        The map's central slices at the samples (no CTF).
    data : torch.Tensor, complex64, (n, M)
        The images' spectra at the samples.
    codes : np.ndarray or None
        For images that carry their CTF already, how (:func:`~cryosplat.core.ctf.image_transfer`);
        None where none does.
    weight : torch.Tensor or None
        (n,) the weight each image was inserted into its map with
        (:attr:`SampleReading.insertion_weights`); None: all alike.
    """

    positions: np.ndarray
    part: GroupSpectra
    plane: CTFPlane
    kept: torch.Tensor
    kx: torch.Tensor
    ky: torch.Tensor
    shell: torch.Tensor
    friedel: torch.Tensor
    count: np.ndarray
    slices: torch.Tensor
    data: torch.Tensor
    codes: np.ndarray | None
    weight: torch.Tensor | None = None

    def transfer(self, ctf: torch.Tensor) -> torch.Tensor:
        """The CTF at the samples, (n, M) (e.g. from :attr:`plane`), as the images carry it."""
        return ctf if self.codes is None else image_transfer(ctf, self.codes)


@dataclass(frozen=True)
class SampleReading:
    """How images are read against a map's central slices (:func:`read_samples` and all that
    reads through it).

    Attributes
    ----------
    batch_size : int
        Images read at once.
    device : torch device
    data_sign : float
        −1 for images whose protein is dark (``--invert-contrast``).
    max_radius_px : float, optional
        Read the shells up to this radius (pixels of the box) only: past the map's resolution
        it predicts nothing (see :func:`score_radius`). None: up to the padded grid's limit.
    slices : SliceCache, optional
        Where each image's slice is kept for the next pass that reads the same map at the same
        shells (:mod:`~cryosplat.reconstruct.grid.slice_cache`); None: read every time.
    own_share : tuple of float, optional
        Where the images are read against their own half map: the map's response per shell to
        an image's own spectrum, ``κ_s``
        (:func:`~cryosplat.reconstruct.grid.own_share.own_share`); each slice is read as
        ``M − κ_s w C X``, the map without the image's own share (``w`` its insertion weight,
        :attr:`insertion_weights`; ``C`` its CTF as recorded, ``X``
        its spectrum; for images that carry their CTF, ``C`` as they were inserted:
        :func:`~cryosplat.core.ctf.raw_backprojection_factor`). None: the slices as the map holds
        them.
    insertion_weights : callable(rows, images) -> torch.Tensor, optional
        The weight each image was inserted into the map with, from its rows (b,) and images
        (b, D, D) as stored (its noise level's, and the user's ``--weights``;
        :func:`~cryosplat.reconstruct.grid.own_share.insertion_weights`): an image's own share in
        the map scales with it, and ``ctf_data`` is weighed by it. None: all alike.
    """

    batch_size: int = 128
    device: str | torch.device = "cpu"
    data_sign: float = 1.0
    max_radius_px: float | None = None
    slices: SliceCache | None = None
    own_share: tuple[float, ...] | None = None
    insertion_weights: Callable[[np.ndarray, torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.data_sign not in (1.0, -1.0):
            raise ValueError(f"data_sign must be 1 or -1, got {self.data_sign}")


def read_samples(
    particles: ParticleSet,
    rows: ArrayLike,
    volume: ArrayLike,
    reading: SampleReading | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[GroupSamples]:
    """``rows``' images against ``volume``'s central slices, a :class:`GroupSamples` per batch
    and sampling (parameters as :func:`shell_sums`'s). The images are read stack by stack,
    front to back; :attr:`GroupSamples.positions` says where each stands in ``rows``."""
    particles.require_poses_and_ctf()
    reading = SampleReading() if reading is None else reading
    device, max_radius_px = torch.device(reading.device), reading.max_radius_px
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    box, pixel = particles.box, particles.pixel_size_angstrom
    given, volume = volume, torch.as_tensor(np.asarray(volume), dtype=torch.float32)
    if tuple(volume.shape) != (box,) * 3:
        raise ValueError(f"the map's box {tuple(volume.shape)} is not the particles' {box}")
    radius = shells_radius(box, max_radius_px)
    n_shells = int(radius) + 1
    reader = None  # made at the first slice not kept in reading.slices
    prepare = SpectraPreparer(particles, radius, SCORE_PAD, device)
    share = None if reading.own_share is None else torch.tensor(reading.own_share, device=device)
    if share is not None and len(share) < n_shells:
        raise ValueError(f"an own share of {len(share)} shells for {n_shells} read")
    bins: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, np.ndarray]] = {}
    planes: dict[tuple, CTFPlane] = {}
    # read in (stack, image) order, each stack front to back
    stacked = np.lexsort((particles.image_index[rows], particles.stack_index[rows]))
    read = rows[stacked]
    done = 0
    for batch, images in device_batches(particles, read, reading.batch_size, device):
        spectra = prepare.spectra(batch, images * reading.data_sign)
        weights = None
        if reading.insertion_weights is not None:
            weights = reading.insertion_weights(batch, images).to(device, torch.float32)
        for part in prepare.groups(batch, spectra):
            group = part.group
            if part.key not in bins:
                r2 = group.landing_radius2(prepare.plane_kx, prepare.plane_ky).reshape(-1)
                own = (prepare.plane_kx**2 + prepare.plane_ky**2).reshape(-1).float()
                kept = (r2 <= radius**2) & (own <= group.max_radius**2) & (r2 > 0)
                kept = kept.nonzero().squeeze(1)
                shell = torch.round(torch.sqrt(r2[kept])).long().clamp(1, n_shells - 1)
                friedel = prepare.friedel_all[kept]
                # the samples per shell: the group's own, the same for each of its images
                count = torch.zeros(n_shells, dtype=torch.float64, device=device)
                count = count.index_add_(0, shell, friedel.double()).cpu().numpy()
                kx, ky = prepare.plane_kx.reshape(-1)[kept], prepare.plane_ky.reshape(-1)[kept]
                bins[part.key] = (kept, kx, ky, shell, friedel, count)
                planes[part.key] = group.ctf_plane(kx, ky)
            kept, kx, ky, shell, friedel, count = bins[part.key]
            cache = reading.slices
            slices = None if cache is None else cache.get(given, radius, part.key, part.rows, kept)
            if slices is None:
                if reader is None:
                    reader = SliceReader.from_map(volume.to(device), SCORE_PAD, pixel)
                # only the group's own frequencies that land within the radius (its pixel and
                # magnification may differ)
                slices = reader.half_samples(part.rotations * group.scale, kx, ky)
                if cache is not None:
                    cache.put(
                        given, radius, part.key, part.rows, slices, rows, len(particles), kept
                    )
            at = np.arange(len(batch)) if part.picked is None else part.picked.cpu().numpy()
            data = part.spectra.reshape(len(part.rows), -1)[:, kept]
            codes = particles.ctf_in_images_of(part.rows)
            weight = None if weights is None else weights[torch.as_tensor(at, device=device)]
            if share is not None:  # the image's own share taken out: M − κ_s w C X
                ctf = part.ctf.reshape(len(part.rows), -1)[:, kept]
                inserted = ctf if codes is None else raw_backprojection_factor(ctf, codes)
                if weight is not None:
                    inserted = inserted * weight[:, None]
                slices = slices - (share[shell].float() * inserted) * data
            yield GroupSamples(
                positions=stacked[done + at],
                part=part,
                plane=planes[part.key],
                kept=kept,
                kx=kx,
                ky=ky,
                shell=shell,
                friedel=friedel,
                count=count,
                slices=slices,
                data=data,
                codes=codes,
                weight=weight,
            )
        done += len(batch)
        if progress is not None:
            progress(done)
    if done != len(rows):
        raise RuntimeError(f"read {done} of {len(rows)} images")


def shells_radius(box: int, max_radius_px: float | None) -> float:
    """The radius of the shells read (pixels): ``max_radius_px``, at most the padded grid's
    limit (None: that limit)."""
    radius = default_max_radius(box, SCORE_PAD)
    return radius if max_radius_px is None else min(radius, float(max_radius_px))


def shell_sums(
    particles: ParticleSet,
    rows: ArrayLike,
    volume: ArrayLike,
    reading: SampleReading | None = None,
    progress: Callable[[int], None] | None = None,
    store: RowStore | None = None,
) -> ShellSums:
    """The :class:`ShellSums` of ``rows`` against ``volume``'s central slices.

    Parameters
    ----------
    particles : ParticleSet
        With poses and CTF, at the map's box and pixel size.
    rows : array_like of int
        The rows to read; the result follows their order.
    volume : array_like, (D, D, D)
        The map the images are compared with (``[z, y, x]``, density per Å³ in any unit).
    reading : SampleReading, optional
        Batch size, device, the images' sign and the radius read (None: the defaults).
    progress : callable(done), optional
        Called after each batch with the images read so far.
    store : RowStore, optional
        Where the pass is kept as it goes (:mod:`~cryosplat.reconstruct.grid.row_store`): the
        rows it holds done are not read again.
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    reading = SampleReading() if reading is None else reading
    n_shells = int(shells_radius(particles.box, reading.max_radius_px)) + 1
    store = RowStore(len(rows)) if store is None else store
    for name in SHELL_SUM_NAMES:
        store.column(name, (n_shells,), 0.0)
    todo, left, progress = store.pending(rows, progress)
    with store.saved_on_exit():
        for samples in read_samples(particles, left, volume, reading, progress):
            ctf = samples.part.ctf.reshape(len(samples.positions), -1)[:, samples.kept]
            predicted = samples.slices * samples.transfer(ctf)
            data = samples.data
            terms = {
                "cross": (data.conj() * predicted).real,
                "model": predicted.abs().square(),
                "data": data.abs().square(),
                "ctf_data": ctf.square()
                * data.abs().square()
                * (1.0 if samples.weight is None else samples.weight[:, None]),
            }
            at = samples.positions
            summed = {"count": np.broadcast_to(samples.count, (len(at), n_shells))}
            for name, values in terms.items():
                sums = torch.zeros(len(at), n_shells, dtype=torch.float64, device=values.device)
                sums.index_add_(1, samples.shell, values.double() * samples.friedel)
                summed[name] = sums.cpu().numpy()
            store.put(todo[at], **summed)
    out = store.finish()
    return ShellSums(*(out[f] for f in SHELL_SUM_NAMES))


@dataclass(frozen=True)
class ParticleScores:
    """Each image's score against the map made without it (:func:`score_from_sums`).

    Attributes
    ----------
    z : np.ndarray, (N,)
        The score in units of the noise: a standard normal variable for an image of noise alone.
    amplitude : np.ndarray, (N,)
        The score the molecule at its pose is expected to reach, ``√(Σ_s a_s² p_is / σ²_s / c_i)``
        (the image's own signal-to-noise ratio as the map predicts it).
    noise_scale : np.ndarray, (N,)
        Each image's noise power relative to the set's, ``c_i``.
    shell_scale : np.ndarray, (S,)
        The map's fitted scale per shell, ``a_s``.
    shell_noise : np.ndarray, (S,), optional
        The noise power per sample and shell, ``σ²_s`` (0 where a shell was not read).
    """

    z: np.ndarray
    amplitude: np.ndarray
    noise_scale: np.ndarray
    shell_scale: np.ndarray
    shell_noise: np.ndarray | None = None

    @cached_property
    def mixture(self) -> ScoreMixture:
        """The scores as a mixture of noise alone and the molecule (:func:`fit_mixture`), fitted
        once."""
        return fit_mixture(self.z, self.amplitude)

    def null_fraction(self) -> float:
        """The fraction of images that hold nothing the map predicts, ``π₀``."""
        return self.mixture.null_fraction

    def junk_probability(self) -> np.ndarray:
        """Each image's chance of holding noise only given its score, (N,), in [0, 1] (NaN
        scores read 1)."""
        return self.mixture.junk_probability

    def junk(self) -> np.ndarray:
        """The images more likely noise than the molecule, bool (N,)."""
        return self.junk_probability() > JUNK_PROBABILITY


REFITS = 2  # the scale and the noise fitted again to the images weighed as the molecule


def score_from_sums(sums: ShellSums) -> ParticleScores:
    """The scores of :class:`ShellSums` (see the module's docstring).

    The map's scale and the noise per shell are fitted first to every image, then
    :data:`REFITS` times again to the images weighed by their chance of holding the molecule
    (``1 −`` :meth:`ParticleScores.junk_probability`): images that hold none would pull the scale
    down, and the residual of the molecule's images up, where the signal is strong.
    """
    scores = _scores(sums, np.ones(len(sums.cross)))
    for _ in range(REFITS):
        weights = 1.0 - scores.junk_probability()
        if not weights.sum() > 0:
            break
        scores = _scores(sums, weights)
    return scores


def _scores(sums: ShellSums, weights: np.ndarray) -> ParticleScores:
    """The scores with the map's scale and the noise per shell fitted to the images weighed by
    ``weights`` (N,)."""
    finite = np.isfinite(sums.cross).all(1) & np.isfinite(sums.data).all(1)
    w = np.where(finite, weights, 0.0)[:, None]

    def total(values: np.ndarray) -> np.ndarray:
        return (np.where(finite[:, None], values, 0.0) * w).sum(0)

    cross, model = total(sums.cross), total(sums.model)
    data, count = total(sums.data), total(sums.count)
    scale = np.where(model > 0, cross / np.where(model > 0, model, 1.0), 0.0).clip(min=0.0)
    noise = (data - 2 * scale * cross + scale**2 * model) / np.maximum(count, 1e-300)
    read = (count > 0) & (noise > 0)
    inverse = np.where(read, 1.0 / np.where(read, noise, 1.0), 0.0)
    residual = sums.data - 2 * scale * sums.cross + scale**2 * sums.model
    expected = (sums.count * noise * read).sum(1)
    noise_scale = (residual * read).sum(1) / np.maximum(expected, 1e-300)
    signal = (scale**2 * sums.model * inverse).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (scale * sums.cross * inverse).sum(1) / np.sqrt(signal * noise_scale)
        amplitude = np.sqrt(signal / noise_scale)
    z = np.where(finite & (signal > 0), z, np.nan)
    return ParticleScores(z, amplitude, noise_scale, scale, np.where(read, noise, 0.0))
