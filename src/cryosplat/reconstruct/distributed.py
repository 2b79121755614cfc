"""Running ``cryosplat reconstruct`` on several processes with ``torch.distributed`` (``torchrun``).

``torchrun`` (or ``srun`` with the same variables) starts one process per rank and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. :func:`start` reads them and
joins the process group: gloo on CPUs, NCCL with a CUDA device (each process on ``LOCAL_RANK``'s
GPU). Without those variables (or with a world of one) it creates no process group and every helper
here is a no-op, so one process runs exactly as it does without this module.

What is shared, and how:

- statistics: each rank gathers the rows of its shard (:func:`shard_rows`: whole stack files as far
  as the balance allows, each read once and in order), then the grids are summed with an all-reduce
  (:meth:`Distributed.all_reduce_statistics`);
- fits: half ``i`` is fitted by rank ``i % world_size`` (:meth:`Distributed.owner_of_half`), and the
  models are exchanged after each stage (:meth:`Distributed.share_models`);
- decisions that must agree (reuse a checkpoint or not, the run folder's state) are taken on rank 0
  and broadcast (:meth:`Distributed.on_main`); rank 0 alone writes the run folder.

The run folder must be at the same path on every rank (a shared file system on several nodes), as
for RELION's MPI programs: checkpoints are written by the rank that computes them.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as torch_dist
from numpy.typing import ArrayLike

from cryosplat.core.errors import CryosplatError, InputError
from cryosplat.io.atomic import atomic_path
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.background import remove_background
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.grid.gather_checkpoint import gather_key, partial_path
from cryosplat.reconstruct.grid.statistics import FourierStatistics, joined_rows

__all__ = [
    "Distributed",
    "PeerError",
    "start",
    "shard_rows",
    "gather_statistics",
    "cached_statistics",
    "ENV_VARIABLES",
]

ENV_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# A rank waits at a collective while another fits a whole stage or reads its shard: far longer
# than torch's default of 10-30 minutes on a large data set. A rank that dies is seen by torchrun,
# which stops the others, so a long timeout never leaves a job hanging.
COLLECTIVE_TIMEOUT = timedelta(hours=12)
# A shard boundary moves to the nearest stack boundary when that changes the shard by at most this
# fraction of its ideal size (so most stacks are read by one rank); otherwise a stack is split.
SNAP_TOLERANCE = 0.05

T = TypeVar("T")


class PeerError(CryosplatError):
    """An error that rank 0 met and reported; the other ranks stop with it quietly."""

    reported_elsewhere = True


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job, and the collectives the engines use.

    Attributes
    ----------
    rank, world_size, local_rank : int
        From ``torchrun``'s environment; ``(0, 1, 0)`` for a single process.
    backend : str or None
        ``"gloo"`` or ``"nccl"``; None when no process group exists (one process).
    device : torch.device or None
        This rank's device (``cuda:LOCAL_RANK`` with NCCL, the CPU with gloo); None for one process
        (the caller resolves ``--device`` as usual).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device | None = None

    @property
    def active(self) -> bool:
        """Whether a process group with more than one rank exists."""
        return self.backend is not None and self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run folder, the log and the progress bar."""
        return self.rank == 0

    def owner_of_half(self, half: int) -> int:
        """The rank that fits half ``half`` (0 for A, 1 for B): rank ``half % world_size``."""
        return half % self.world_size

    def barrier(self) -> None:
        if self.active:
            torch_dist.barrier()

    def stop(self, wait: bool = True) -> None:
        """Leave the process group (no-op for one process).

        ``wait``: first wait for every rank to get here (the end of a successful run), so that no
        rank tears its connections down while another still uses them (gloo then aborts). After an
        error, pass False: the other ranks may be inside a collective that would never match.
        With ``wait``, a rank other than 0 ends its process here, after the barrier.
        """
        if self.active and torch_dist.is_initialized():
            if wait:
                torch_dist.barrier()
                if not self.is_main:
                    # Nothing is left for this rank to do or write. Tearing gloo down while rank 0
                    # tears down its side can abort the process at exit ("terminate called
                    # without an active exception", seen after a resumed run): leave at once,
                    # after the barrier, and let the kernel close the connections.
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(0)
            torch_dist.destroy_process_group()

    def all_reduce_sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place (complex as pairs of reals); returns it."""
        if not self.active:
            return tensor
        work = torch.view_as_real(tensor) if tensor.is_complex() else tensor
        if self.backend == "nccl" and work.device.type != "cuda":
            moved = work.to(self.device)
            torch_dist.all_reduce(moved, op=torch_dist.ReduceOp.SUM)
            work.copy_(moved.cpu())
        else:
            torch_dist.all_reduce(work, op=torch_dist.ReduceOp.SUM)
        return tensor

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """``obj`` of rank ``src`` on every rank (pickled; for small objects)."""
        if not self.active:
            return obj
        box = [obj]
        torch_dist.broadcast_object_list(box, src=src, device=self.device)
        return box[0]

    def all_gather_object(self, obj: Any) -> list:
        """Every rank's ``obj``, in rank order (pickled; for small objects)."""
        if not self.active:
            return [obj]
        out: list = [None] * self.world_size
        torch_dist.all_gather_object(out, obj)
        return out

    def all_agree(self, flag: bool) -> bool:
        """True when ``flag`` is true on every rank."""
        if not self.active:
            return flag
        value = torch.tensor([0 if flag else 1], dtype=torch.int64)
        return int(self.all_reduce_sum_(value)) == 0

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 and broadcast its result; its :class:`CryosplatError` stops all ranks.

        Rank 0 raises the error itself (and the command line reports it); the other ranks raise
        :class:`PeerError` with the same message, which the command line does not print again.
        """
        if not self.active:
            return fn()
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except CryosplatError as exc:
                error = exc
        payload = self.broadcast_object((result, None if error is None else str(error)))
        if error is not None:
            raise error
        if payload[1] is not None:
            raise PeerError(payload[1])
        return payload[0]

    def all_reduce_statistics(self, stats: FourierStatistics) -> FourierStatistics:
        """The sum over the ranks of each rank's statistics (of disjoint particle sets)."""
        if not self.active:
            return stats
        count = torch.tensor([stats.n_particles], dtype=torch.int64)
        self.all_reduce_sum_(count)
        return replace(
            stats,
            weights=self.all_reduce_sum_(stats.weights.contiguous()),
            data=self.all_reduce_sum_(stats.data.contiguous()),
            power=self.all_reduce_sum_(stats.power.contiguous()),
            n_particles=int(count),
            background_sums=None
            if stats.background_sums is None
            else self.all_reduce_sum_(stats.background_sums.contiguous()),
            left_out_rows=joined_rows(self.all_gather_object(stats.left_out_rows)),
        )

    def share_models(
        self, models: list[GaussianModel | None], device: torch.device | str
    ) -> list[GaussianModel]:
        """Every half model on every rank, each from the rank that fits it."""
        if not self.active:
            return models
        shared = []
        for half, model in enumerate(models):
            owner = self.owner_of_half(half)
            payload = copy.deepcopy(model).cpu() if self.rank == owner else None
            shared.append(self.broadcast_object(payload, src=owner).to(device))
        return shared

    def broadcast_parameters_(self, module: torch.nn.Module) -> None:
        """Make ``module``'s parameters on every rank equal to rank 0's, in place."""
        if not self.active:
            return
        with torch.no_grad():
            for param in module.parameters():
                torch_dist.broadcast(param.data, src=0)

    def all_reduce_gradients_(self, params: list[torch.Tensor], loss: torch.Tensor) -> float:
        """Sum the gradients of ``params`` and ``loss`` over the ranks in one all-reduce.

        Each rank's loss is its shard's share of the batch's mean loss, so the sum is the gradient
        of the whole batch's mean. Missing gradients count as zeros. Returns the summed loss.
        """
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1).to(grads[0])])
        if self.active:
            self.all_reduce_sum_(flat)
        offset = 0
        for param, grad in zip(params, grads, strict=True):
            n = grad.numel()
            param.grad = flat[offset : offset + n].view_as(grad).clone()
            offset += n
        return float(flat[-1])


def _environment_int(name: str, value: str | None) -> int:
    try:
        return int(value if value is not None else "")
    except ValueError:
        raise InputError(
            f"environment variable {name}='{value}' is not an integer (set by torchrun)"
        ) from None


def start(device: torch.device) -> Distributed:
    """Join the ``torchrun`` job this process belongs to, if any.

    Parameters
    ----------
    device : torch.device
        The device asked for (``--device``, resolved). A CUDA device selects NCCL on
        ``cuda:LOCAL_RANK``; the CPU selects gloo.

    Returns
    -------
    Distributed
        Inactive (no process group) without ``WORLD_SIZE`` or with a world of one.
    """
    if os.environ.get("WORLD_SIZE") is None:
        return Distributed()
    world_size = _environment_int("WORLD_SIZE", os.environ.get("WORLD_SIZE"))
    if world_size <= 1:
        return Distributed()
    rank = _environment_int("RANK", os.environ.get("RANK"))
    local_rank = _environment_int("LOCAL_RANK", os.environ.get("LOCAL_RANK", "0"))
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise InputError(
            f"WORLD_SIZE={world_size} but {' and '.join(missing)} not set: launch with torchrun "
            "(or set all of RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)"
        )
    if not 0 <= rank < world_size:
        raise InputError(f"RANK={rank} is outside 0..{world_size - 1}")
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise InputError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s): "
                "start at most one process per GPU (--nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    torch_dist.init_process_group(
        backend,
        init_method="env://",
        rank=rank,
        world_size=world_size,
        timeout=COLLECTIVE_TIMEOUT,
        device_id=device if backend == "nccl" else None,
    )
    return Distributed(rank, world_size, local_rank, backend, device)


def shard_rows(particles: ParticleSet, rows: ArrayLike, rank: int, world_size: int) -> np.ndarray:
    """The part of ``rows`` that rank ``rank`` of ``world_size`` reads.

    The rows are ordered by stack file and position in it, then cut into ``world_size`` contiguous
    pieces of (nearly) equal particle counts. A cut moves to the nearest stack boundary when that
    keeps the piece within ``SNAP_TOLERANCE`` of the ideal count, so a rank reads whole files, each
    once and in order; only where the balance needs it is a file split between two ranks (each
    reading its own contiguous part). Every row is in exactly one shard.

    Parameters
    ----------
    particles : ParticleSet
    rows : array_like of int
        Particle rows to share (e.g. one half set).
    rank, world_size : int

    Returns
    -------
    np.ndarray of int, the rank's rows in stack order.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    order = np.lexsort((particles.image_index[rows], particles.stack_index[rows]))
    ordered = rows[order]
    n = ordered.size
    stacks = particles.stack_index[ordered]
    boundaries = np.flatnonzero(np.diff(stacks)) + 1  # where a new stack starts
    ideal = n / world_size
    cuts = [0]
    for k in range(1, world_size):
        target = int(round(k * ideal))
        cut = target
        if boundaries.size:
            nearest = int(boundaries[np.argmin(np.abs(boundaries - target))])
            if abs(nearest - target) <= SNAP_TOLERANCE * ideal:
                cut = nearest
        cuts.append(min(max(cut, cuts[-1]), n))
    cuts.append(n)
    return ordered[cuts[rank] : cuts[rank + 1]]


def gather_statistics(
    particles: ParticleSet,
    rows: ArrayLike,
    config: AccumulateConfig,
    dist: Distributed,
    progress: Callable[..., None] | None = None,
    partial: Path | None = None,
    label: str = "",
) -> FourierStatistics:
    """The statistics of ``rows``: each rank gathers its shard, then they are summed over ranks.

    ``progress(done, total[, resumed=True])`` counts this rank's shard; ``partial``: where this
    rank's pass is saved part way; ``label``: which images these are, named where their
    background level is logged (:func:`~cryosplat.reconstruct.grid.gather.accumulate`).
    """
    if not dist.active:
        return accumulate(particles, rows, config, progress=progress, partial=partial, label=label)
    mine = shard_rows(particles, rows, dist.rank, dist.world_size)
    stats = accumulate(
        particles, mine, config, progress=progress, partial=partial, take_off_background=False
    )
    return remove_background(dist.all_reduce_statistics(stats), label)


def cached_statistics(
    particles: ParticleSet,
    rows: ArrayLike,
    config: AccumulateConfig,
    path: Path,
    dist: Distributed,
    progress: Callable[..., None] | None = None,
    label: str = "",
) -> tuple[FourierStatistics, bool]:
    """The statistics of ``rows`` from the checkpoint ``path``, or gathered and saved there
    (``label``: which images these are, as :func:`gather_statistics` takes it).

    Every rank reuses the checkpoint only if every rank can read it for these rows (else all
    gather again); rank 0 writes it. Returns ``(statistics on config.device, whether reused)``.
    """
    key = checkpoint_key(rows, config)
    stats = None
    if path.is_file() and _read_key(path) == key:
        stats = FourierStatistics.load(path)
    if dist.all_agree(stats is not None):
        return stats.to(config.device), True
    partial = partial_path(path, dist.rank)  # this rank's pass, saved part way
    stats = gather_statistics(particles, rows, config, dist, progress, partial, label)
    if dist.is_main:
        stats.save(path)
        with atomic_path(key_path(path), suffix=".key") as tmp:
            Path(tmp).write_text(key + "\n")
    partial.unlink(missing_ok=True)
    return stats, False


def checkpoint_key(rows: ArrayLike, config: AccumulateConfig) -> str:
    """What a complete statistics checkpoint holds beyond the run's settings (which a resumed
    run must share): its rows and each image's noise-level weight. A checkpoint of other rows
    (the half sets drawn otherwise) or other weights is gathered again, not reused."""
    rows = np.sort(np.asarray(rows, dtype=np.int64).reshape(-1))
    levels = config.noise_levels
    return gather_key(rows, noise_levels=None if levels is None else asdict(levels))


def key_path(path: Path) -> Path:
    """The file beside a statistics checkpoint that holds its :func:`checkpoint_key`."""
    return path.with_suffix(".key")


def _read_key(path: Path) -> str | None:
    try:
        return key_path(path).read_text().strip()
    except OSError:  # none: written by an older version, gathered again
        return None
