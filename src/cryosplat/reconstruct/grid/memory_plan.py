"""Peak memory of a grid-engine reconstruction, predicted before it starts, and a plan to bound it.

The model
---------
Nearly all the memory of ``cryosplat reconstruct --engine grid`` is in grids over the padded half
Fourier grid of ``V = P² (P/2 + 1)`` voxels, ``P = pad · D``. A set of Fourier statistics
(:class:`~cryosplat.reconstruct.grid.statistics.FourierStatistics`: ``W`` float32 and ``B``
complex64) is 12 bytes per voxel, and a run holds two (one per half), or four when a held-out
part of each half is gathered apart (``--heldout-fraction``; the constants below were measured so).
Counting bytes per half-grid voxel, with held-out parts:

* statistics pass: the three sets already gathered (36), the totals and partial sums of the one
  being gathered (24), plus the batch in flight, ``BATCH_BYTES_PER_PIXEL · batch · D²`` (image
  spectra, CTF, and the trilinear stencil of every inserted frequency);
* fit: the four sets (48), the loss grids of the training and held-out statistics of the half
  being fitted with their construction temporaries (36), the padded transform of the map and its
  gradient, autograd buffers and the cross-validation data maps (``D³``): ``FIT_BYTES_PER_VOXEL``
  plus the voxeliser, ``VOXELISER_BYTES_PER_VALUE`` per footprint value (the Gaussians
  times the mean footprint of the fit's default populations, kept for the backward pass);
* ``BASE_BYTES``: Python, PyTorch, NumPy and the particle metadata.

Without held-out parts (the default) the two sets not gathered (24) and the held-out loss grid
(18 padded, ``18/8`` on an unpadded grid) are taken off (:func:`estimate_memory`).
``peak = BASE_BYTES + max(statistics pass, fit)``. On a CPU the two halves are gathered and fitted
side by side (a thread each) when that fits in half the memory available (and under the bound): the set
being gathered and the fit's per-half grids and voxeliser are then held twice, and each thread's
allocator keeps its own free memory, ``CONCURRENT_FIT_BYTES_PER_VOXEL`` per half instead of
``FIT_BYTES_PER_VOXEL − 48`` (:meth:`MemoryEstimate.concurrent_peak_bytes`); with the largest
stages unpadded and nothing held out, ``CONCURRENT_FIT_UNPADDED_BYTES_PER_VOXEL`` per half
(measured: the scaled padded figure predicted 8.1 GB at box 256 where 4.9 GB were used), plus
each half's held-out loss grid when there is one (box 96, 40 particles, both halves side by side:
0.88 GB measured, 0.93 GB predicted; the scaled padded figure said 1.12 GB).
Without held-out parts the two halves' statistics passes side by side hold no finished set, each
its totals and partial sums and its batch (box 256: 4.5 GB measured, 5.3 GB predicted; 6.1 GB
before). A fit whose largest stages run on the unpadded grid (box above the fit's
``unpadded_above_box``) needs ``FIT_UNPADDED_BYTES_PER_VOXEL`` instead of ``FIT_BYTES_PER_VOXEL``.
Measured with ``/usr/bin/time`` at box 256, 50,000 particles, 30,000 Gaussians, halves side by
side: every stage padded 18.0 GB, the largest stages unpadded 10.0 GB (the constants are set from
these two runs). The constants were measured on blob-and-noise sets
(:mod:`cryosplat.simulate.noise_stacks`) with ``/usr/bin/time -f %M`` (box 96/128/192, pad 2,
torch 2.13 CPU); ``tests/test_memory_plan.py`` checks a small run against the prediction.

The plan
--------
:func:`plan_memory` takes the box the images are used at (the original box, or the smaller box a
``--max-resolution`` or ``--downsample`` asks for: the images are Fourier-cropped to it by
:func:`cryosplat.particles.downsample.downsample_particles`, with no loss below its Nyquist
frequency), a smaller statistics batch when that is enough, and otherwise refuses before any work
with a one-line :class:`InputError` naming the largest box, and the ``--max-resolution``, that
would fit. It never lowers the resolution on its own.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryosplat.core.conventions import cropped_map_origin_angstrom
from cryosplat.core.device import peak_memory_gb, peak_resident_gb
from cryosplat.core.errors import InputError
from cryosplat.model.voxelize import footprint_voxels
from cryosplat.particles.downsample import box_for_resolution, even_box
from cryosplat.reconstruct.grid.fit import GridFitConfig

if TYPE_CHECKING:
    import torch

__all__ = [
    "MemoryConfig",
    "MemoryEstimate",
    "MemoryPlan",
    "PlanRequest",
    "estimate_memory",
    "plan_memory",
    "available_memory_bytes",
    "half_grid_voxels",
    "format_bytes",
    "measured_peak_memory",
]

log = logging.getLogger("cryosplat")

BASE_BYTES = 600 * 2**20
STATISTICS_BYTES_PER_VOXEL = 60
BATCH_BYTES_PER_PIXEL = 84
FIT_BYTES_PER_VOXEL = 125
VOXELISER_BYTES_PER_VALUE = 8  # the profile kept for the backward pass, and chunk temporaries

DEFAULT_FRACTION = 0.8  # of the available memory, when no --max-memory is given
LEANEST_BATCH = 16
STATISTICS_SET_BYTES_PER_VOXEL = 12  # W float32 + B complex64
# the four gathered sets (fit and held-out parts of both halves) the constants were measured with
HELD_STATISTICS_BYTES_PER_VOXEL = 4 * STATISTICS_SET_BYTES_PER_VOXEL
HELD_OUT_LOSS_BYTES_PER_VOXEL = 18  # the held-out loss grid and its construction temporaries
CONCURRENT_FIT_BYTES_PER_VOXEL = 102  # per half fitted side by side (measured at box 256)
FIT_UNPADDED_BYTES_PER_VOXEL = (
    81  # fit whose largest stages are unpadded (box 256: 10.0 GB measured)
)
# per half fitted side by side when the largest stages are unpadded and nothing is held out: what
# each half holds beyond the shared statistics (box 256, 40,000 particles, 30,000 Gaussians: 4.9 GB
# measured, replaying the fit from the run's statistics; the scaled padded constant said 8.1 GB)
CONCURRENT_FIT_UNPADDED_BYTES_PER_VOXEL = 15
CONCURRENT_SHARE = 0.5  # of the available memory that side-by-side halves may plan to use


def _footprint_values_per_gaussian(fit: GridFitConfig) -> float:
    """Mean footprint of a fit's Gaussians at their largest scales: the positive population's
    (``⌈n_sigma · max_scale_pixels⌉``) and the negative one's (its largest scale)."""
    positive = footprint_voxels(math.ceil(fit.n_sigma * fit.max_scale_pixels))
    negative = footprint_voxels(math.ceil(fit.n_sigma * fit.negative_scale_pixels[1]))
    return (1.0 - fit.negative_fraction) * positive + fit.negative_fraction * negative


def format_bytes(n: float) -> str:
    """``1.23 GB`` (10⁹ bytes) or ``456 MB``."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def half_grid_voxels(box: int, pad: int) -> int:
    """``P² (P/2 + 1)`` with ``P = pad · box``: voxels of one padded half Fourier grid."""
    size = pad * box
    return size * size * (size // 2 + 1)


@dataclass
class MemoryConfig:
    """How ``reconstruct`` bounds its memory.

    Attributes
    ----------
    max_memory_bytes : int or None
        Bound on the predicted peak; None: ``DEFAULT_FRACTION`` of the available memory
        (``MemAvailable`` of ``/proc/meminfo``, or a cgroup limit when lower).
    downsample_box : int or None
        Fourier-crop the images to this even box (pixel ``pixel · D / box``); None: to the box
        ``max_resolution_angstrom`` needs, or not at all (an odd box ``D``: to ``D − 1``, the
        engines' grids and transforms being laid out for even boxes).
    crop_to_resolution : bool
        With a ``max_resolution_angstrom``, Fourier-crop the images to the box it needs (maps are
        then written at that box, with its voxel size in the header).
    """

    max_memory_bytes: int | None = None
    downsample_box: int | None = None
    crop_to_resolution: bool = True

    def validate(self) -> None:
        if self.max_memory_bytes is not None and self.max_memory_bytes <= 0:
            raise InputError(f"max memory must be positive, got {self.max_memory_bytes} bytes")
        if self.downsample_box is not None and (self.downsample_box < 8 or self.downsample_box % 2):
            raise InputError(
                f"downsample box must be even and at least 8, got {self.downsample_box}"
            )


@dataclass
class MemoryEstimate:
    """Predicted peak resident memory (bytes) of a grid-engine run and its parts."""

    box: int
    pad: int
    n_gaussians: int
    batch_size: int
    statistics_bytes: int
    fit_bytes: int
    fit_bytes_per_voxel: int = FIT_BYTES_PER_VOXEL
    held_out: bool = False
    unpadded: bool = False

    @property
    def _sets_bytes_per_voxel(self) -> int:
        """The gathered statistics sets, shared by both halves' fits."""
        return (4 if self.held_out else 2) * STATISTICS_SET_BYTES_PER_VOXEL

    @property
    def peak_bytes(self) -> int:
        return BASE_BYTES + max(self.statistics_bytes, self.fit_bytes)

    @property
    def concurrent_peak_bytes(self) -> int:
        """The peak with both halves gathered and fitted at once: everything but the finished
        statistics sets twice."""
        voxels = half_grid_voxels(self.box, self.pad)
        sets = self._sets_bytes_per_voxel
        if self.held_out:
            statistics = (
                2 * self.statistics_bytes - (sets - STATISTICS_SET_BYTES_PER_VOXEL) * voxels
            )
        else:  # both halves gathered at once: no set finished yet, each its totals and partial sums
            statistics = 2 * (self.statistics_bytes - STATISTICS_SET_BYTES_PER_VOXEL * voxels)
        voxeliser = self.fit_bytes - self.fit_bytes_per_voxel * voxels
        if self.unpadded:  # with held-out parts, each half's held-out loss grid (unpadded) too
            per_half = CONCURRENT_FIT_UNPADDED_BYTES_PER_VOXEL
            if self.held_out:
                per_half += HELD_OUT_LOSS_BYTES_PER_VOXEL / self.pad**3
        else:
            per_half = self.fit_bytes_per_voxel - sets
            per_half *= CONCURRENT_FIT_BYTES_PER_VOXEL / (
                FIT_BYTES_PER_VOXEL - HELD_STATISTICS_BYTES_PER_VOXEL
            )
        fit = (sets + 2 * per_half) * voxels
        return BASE_BYTES + int(max(statistics, fit + 2 * voxeliser))

    def describe(self, side_by_side: bool = False) -> str:
        """The predicted peak of the run, with the halves ``side_by_side``
        (:meth:`concurrent_peak_bytes`) or one after the other (:attr:`peak_bytes`, whose parts
        are given)."""
        parts = (
            f"statistics pass {format_bytes(BASE_BYTES + self.statistics_bytes)}, "
            f"fit {format_bytes(BASE_BYTES + self.fit_bytes)}, {self.n_gaussians} Gaussians"
        )
        where = f"at box {self.box}, pad {self.pad}"
        if side_by_side:
            return (
                f"predicted peak memory {format_bytes(self.concurrent_peak_bytes)} {where}, the "
                f"halves side by side (one after the other {format_bytes(self.peak_bytes)}: "
                f"{parts})"
            )
        return f"predicted peak memory {format_bytes(self.peak_bytes)} {where} ({parts})"


def estimate_memory(
    box: int,
    pad: int,
    n_gaussians: int,
    batch_size: int,
    unpadded_above_box: int | None = None,
    held_out: bool = False,
) -> MemoryEstimate:
    """The model of the module docstring for one run.

    Parameters
    ----------
    box : int
        Box the images are used at (after any Fourier crop).
    pad : int
        Padding factor of the 3D grid.
    n_gaussians : int
        Gaussians per half model.
    batch_size : int
        Images per batch of the statistics pass.
    unpadded_above_box : int or None
        The fit's ``unpadded_above_box``: a box above it fits its last stages on the unpadded
        grid, ``FIT_UNPADDED_BYTES_PER_VOXEL`` instead of ``FIT_BYTES_PER_VOXEL``.
    held_out : bool
        Whether a held-out part of each half is gathered apart (``heldout_fraction > 0``).
    """
    voxels = half_grid_voxels(box, pad)
    unpadded = unpadded_above_box is not None and box > unpadded_above_box and pad > 1
    per_voxel = FIT_UNPADDED_BYTES_PER_VOXEL if unpadded else FIT_BYTES_PER_VOXEL
    statistics_per_voxel = STATISTICS_BYTES_PER_VOXEL
    if not held_out:
        loss = HELD_OUT_LOSS_BYTES_PER_VOXEL / (pad**3 if unpadded else 1)
        per_voxel -= 2 * STATISTICS_SET_BYTES_PER_VOXEL + int(round(loss))
        statistics_per_voxel -= 2 * STATISTICS_SET_BYTES_PER_VOXEL
    footprint = _footprint_values_per_gaussian(GridFitConfig())
    return MemoryEstimate(
        box,
        pad,
        n_gaussians,
        batch_size,
        statistics_per_voxel * voxels + BATCH_BYTES_PER_PIXEL * batch_size * box * box,
        per_voxel * voxels + int(VOXELISER_BYTES_PER_VALUE * n_gaussians * footprint),
        per_voxel,
        held_out,
        unpadded,
    )


def available_memory_bytes(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """``MemAvailable`` (bytes), or the cgroup v2 limit ``memory.max`` when lower; None if unknown."""
    found = None
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        found = None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            found = int(limit) if found is None else min(found, int(limit))
    except OSError:
        pass
    if found is None and hasattr(os, "sysconf"):
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            found = None
    return found


@dataclass
class MemoryPlan:
    """The box and batch a run uses, and why.

    Attributes
    ----------
    box : int
        Box the images are used at (Fourier-cropped when smaller than ``source_box``).
    source_box : int
    pixel_size_angstrom : float
        Pixel size at ``box``.
    batch_size : int
    estimate : MemoryEstimate
    max_memory_bytes : int or None
    """

    box: int
    source_box: int
    pixel_size_angstrom: float
    batch_size: int
    estimate: MemoryEstimate
    max_memory_bytes: int | None
    available_bytes: int | None = None

    @property
    def concurrent_halves(self) -> bool:
        """Whether both halves may be gathered and fitted at once: under the bound and in
        ``CONCURRENT_SHARE`` of the available memory (side by side is a speed-up, not worth
        most of the machine; at box 256 the halves go one after the other on a 24 GB machine)."""
        peak = self.estimate.concurrent_peak_bytes
        if self.max_memory_bytes is not None and peak > self.max_memory_bytes:
            return False
        return self.available_bytes is None or peak <= CONCURRENT_SHARE * self.available_bytes

    @property
    def map_origin_angstrom(self) -> float:
        """Header origin of the maps (Å, each axis): 0 unless an odd source box was cropped
        (:func:`~cryosplat.core.conventions.cropped_map_origin_angstrom`)."""
        source_pixel = self.pixel_size_angstrom * self.box / self.source_box
        return cropped_map_origin_angstrom(
            self.source_box, source_pixel, self.box, self.pixel_size_angstrom
        )

    def peak_bytes(self, side_by_side: bool) -> int:
        """The predicted peak of the run as it goes: the halves ``side_by_side`` (a CPU thread
        each, where :attr:`concurrent_halves` allowed it and the device has the threads) or one
        after the other. The log and ``config.json`` used to give the latter for a run that went
        side by side (beta-galactosidase at box 200: 2.53 GB logged, 3.03 GB side by side, 2.93 GB
        measured; round 2, session 35)."""
        return self.estimate.concurrent_peak_bytes if side_by_side else self.estimate.peak_bytes

    def describe(self, side_by_side: bool = False) -> str:
        """One line for the log: the crop, the predicted peak (:meth:`peak_bytes`) and the bound."""
        crop = (
            f"images Fourier-cropped {self.source_box} → {self.box} px "
            f"({self.pixel_size_angstrom:.4g} Å/px); "
            if self.box != self.source_box
            else ""
        )
        bound = (
            "no bound (available memory unknown)"
            if self.max_memory_bytes is None
            else f"bound {format_bytes(self.max_memory_bytes)}"
        )
        side = "" if self.concurrent_halves else "; halves one after the other to fit the bound"
        return f"memory plan: {crop}{self.estimate.describe(side_by_side)}; {bound}{side}"


@dataclass
class PlanRequest:
    """What :func:`plan_memory` plans for.

    Attributes
    ----------
    box : int
        The images' box D.
    pixel_size_angstrom : float
    pad, batch_size : int
        The statistics pass's padding and batch.
    n_gaussians : callable(box) -> int
        Gaussians per half model for a box (the user's number, or the default for that box).
    max_resolution_angstrom : float or None
    unpadded_above_box : int or None
        The fit's ``unpadded_above_box`` (:func:`estimate_memory`).
    held_out : bool
        Whether held-out parts are gathered apart (``heldout_fraction > 0``).
    """

    box: int
    pixel_size_angstrom: float
    pad: int
    batch_size: int
    n_gaussians: Callable[[int], int]
    max_resolution_angstrom: float | None = None
    unpadded_above_box: int | None = None
    held_out: bool = False


def plan_memory(request: PlanRequest, config: MemoryConfig) -> MemoryPlan:
    """Choose the box and batch that keep the predicted peak under the bound, or refuse.

    Raises
    ------
    InputError
        When even the leanest plan at the requested box does not fit: the message names the
        predicted peak, the bound, and the largest box (and its resolution) that would fit.
    """
    config.validate()
    source = request.box
    box = source
    if config.downsample_box is not None:
        if config.downsample_box > source:
            raise InputError(
                f"downsample box {config.downsample_box} is larger than the images' box {source}"
            )
        box = config.downsample_box
    elif request.max_resolution_angstrom is not None and config.crop_to_resolution:
        box = box_for_resolution(
            source, request.pixel_size_angstrom, request.max_resolution_angstrom
        )
    box = even_box(box)
    pixel = request.pixel_size_angstrom * source / box
    bound = config.max_memory_bytes
    available = available_memory_bytes()
    if bound is None:
        bound = None if available is None else int(DEFAULT_FRACTION * available)

    best = _estimate(request, box, request.batch_size)
    batch = request.batch_size
    if bound is not None and best.peak_bytes > bound:
        lean = _estimate(request, box, min(batch, LEANEST_BATCH))
        if lean.peak_bytes <= bound:
            # A smaller batch is enough: halve it until it fits.
            while batch > LEANEST_BATCH and _estimate(request, box, batch).peak_bytes > bound:
                batch //= 2
            batch = max(batch, LEANEST_BATCH)
            best = _estimate(request, box, batch)
        else:
            raise InputError(_refusal(request, box, lean, bound))
    return MemoryPlan(box, source, pixel, batch, best, bound, available)


def _estimate(request: PlanRequest, box: int, batch: int) -> MemoryEstimate:
    """:func:`estimate_memory` of ``request``'s run at ``box`` with ``batch`` images per batch."""
    return estimate_memory(
        box,
        request.pad,
        request.n_gaussians(box),
        batch,
        request.unpadded_above_box,
        request.held_out,
    )


def _refusal(request: PlanRequest, box: int, lean: MemoryEstimate, bound: int) -> str:
    fits = [
        d for d in range(box - 2, 7, -2) if _estimate(request, d, LEANEST_BATCH).peak_bytes <= bound
    ]
    pixel = request.pixel_size_angstrom * request.box
    if fits:
        d = fits[0]
        # The finest resolution box d gathers: (d/2 − 1) pixels of the D grid.
        resolution = pixel / (d / 2 - 1.0)
        advice = (
            f"box {d} would fit: pass --max-resolution {math.ceil(resolution * 100) / 100:g} "
            f"(Å) or --downsample {d}, or a larger --max-memory"
        )
    else:
        advice = "even box 8 would not: raise --max-memory"
    return (
        f"not enough memory: {lean.describe()} exceeds the bound of {format_bytes(bound)}; "
        + advice
    )


def measured_peak_memory(device: torch.device | str, predicted_bytes: int) -> dict:
    """A finished run's peaks, logged beside the plan's ``predicted_bytes``
    (:meth:`MemoryPlan.peak_bytes`): ``peak_gpu_memory_gb`` on a CUDA device
    (``torch.cuda.max_memory_allocated``), and where the platform tells it
    ``peak_resident_memory_gb`` (this process's, as ``/usr/bin/time`` reports it) with
    ``predicted_peak_memory_gb``; for the run's summary."""
    out = {}
    gpu = peak_memory_gb(device)
    if gpu is not None:
        out["peak_gpu_memory_gb"] = gpu
        log.info("peak GPU memory: %.2f GB (torch.cuda.max_memory_allocated)", gpu)
    resident = peak_resident_gb()
    if resident is not None:
        out["peak_resident_memory_gb"] = resident
        out["predicted_peak_memory_gb"] = predicted_bytes / 1e9
        log.info(
            "peak memory: %.2f GB resident (this process; the memory plan predicted %s)",
            resident,
            format_bytes(predicted_bytes),
        )
    return out
