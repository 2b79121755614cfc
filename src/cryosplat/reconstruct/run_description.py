"""The line a run's log opens with: what is reconstructed, how, and where."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryosplat.core.symmetry import asymmetric_unit_gaussians, symmetry_operators
from cryosplat.particles.particle_set import ParticleSet

if TYPE_CHECKING:
    import torch

    from cryosplat.reconstruct.config import ReconstructConfig
    from cryosplat.reconstruct.distributed import Distributed

__all__ = ["run_description"]


def run_description(
    particles: ParticleSet,
    config: ReconstructConfig,
    n_gauss: int,
    device: torch.device,
    dist: Distributed,
    resuming: bool,
) -> str:
    """``"cryosplat reconstruct: N particles, box D, ... device cpu"`` for a run of ``config``
    (:class:`~cryosplat.reconstruct.config.ReconstructConfig`) on ``device``, one process or the
    ranks of ``dist``."""
    grid = config.grid
    count = (" (or more, where the data hold more)" if grid.gaussians_from_data else "") + (
        f" in each of {grid.members} members"
        if config.engine == "grid" and grid.members > 1
        else ""
    )
    unit = (
        ""
        if config.symmetry == "C1"
        else f" ({asymmetric_unit_gaussians(n_gauss, config.symmetry)} per asymmetric unit × "
        f"{len(symmetry_operators(config.symmetry))} copies)"
    )
    return (
        f"cryosplat reconstruct: {len(particles)} particles"
        + (f" ({particles.selection})" if particles.selection else "")
        + f", box {particles.box}, "
        f"{particles.pixel_size_angstrom:.4g} Å/px, engine {config.engine}, symmetry "
        f"{config.symmetry}"
        + ("" if config.helical is None else f", helix: {config.helical.describe()}")
        + f", {n_gauss} Gaussians per half{count}{unit}, device {device}"
        + (f", {dist.world_size} processes ({dist.backend})" if dist.active else "")
        + (f", resolution read within the given mask {config.fsc_mask}" if config.fsc_mask else "")
        + (" (resumed)" if resuming else "")
    )
