"""What an engine is given to run: :class:`EngineJob`.

The grid engine (:func:`cryosplat.reconstruct.grid.engine.run_grid_engine`), the per-image
engine (:func:`cryosplat.reconstruct.splat.runner.run_splat_engine`) and the statistics pass
both start with (:func:`cryosplat.reconstruct.grid.half_statistics.gather_half_statistics`) take
one; :func:`cryosplat.reconstruct.run.reconstruct` makes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.config import ReconstructConfig
from cryosplat.reconstruct.distributed import Distributed
from cryosplat.reconstruct.run_folder import RunFolder

__all__ = ["EngineJob"]


@dataclass(frozen=True)
class EngineJob:
    """One engine run's inputs.

    Attributes
    ----------
    particles : ParticleSet
        With poses and CTF (at the box the run works at).
    halves : (rows_a, rows_b)
        The rows of the two half sets.
    config : ReconstructConfig
        The run's settings as resolved: ``grid`` or ``splat``, ``n_gaussians``, ``seed``,
        ``invert_contrast``, ``symmetry``, ...
    folder : RunFolder
        Where the checkpoints go.
    device : torch.device
    show_progress : bool
        Draw progress bars (rank 0 alone under ``torchrun``).
    dist : Distributed
        This process's rank under ``torchrun``; by default one process.
    """

    particles: ParticleSet
    halves: tuple[np.ndarray, np.ndarray]
    config: ReconstructConfig
    folder: RunFolder
    device: torch.device
    show_progress: bool = True
    dist: Distributed = field(default_factory=Distributed)
