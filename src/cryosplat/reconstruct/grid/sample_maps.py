"""Half maps of a sample of the particles at a small box: what the data checks compare.

The checks that read the data before a run (the poses' conventions,
:mod:`cryosplat.reconstruct.pose_check`; the point group, :mod:`.symmetry_check`) invert a few
thousand images Fourier-cropped to :data:`CHECK_BOX` pixels, two sets of rows at a time, and
compare the two maps' FSC within the soft sphere over the low shells, where signal is strongest.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.particles.downsample import downsample_particles, even_box
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.validation.masks import spherical_mask

__all__ = ["CHECK_BOX", "cropped_for_checks", "masked_inversions"]

CHECK_BOX = 48
"""The box a check's sample is inverted at (the particles' own where smaller)."""


def cropped_for_checks(particles: ParticleSet) -> ParticleSet:
    """``particles`` Fourier-cropped to :data:`CHECK_BOX` (unchanged where the box is smaller)."""
    box = even_box(min(CHECK_BOX, particles.box))
    return downsample_particles(particles, box) if box < particles.box else particles


def masked_inversions(
    particles: ParticleSet, row_sets: list[ArrayLike], config: AccumulateConfig | None = None
) -> list[torch.Tensor]:
    """The direct inversion (:meth:`FourierStatistics.reconstruct_wiener`) of each set of rows
    (indices or a boolean mask), times the soft spherical mask, float64 on the CPU.

    The images' background level is left in: it touches the zero frequency alone, which the
    checks leave out.
    """
    mask = torch.as_tensor(spherical_mask(particles.box), dtype=torch.float64)
    maps = []
    for rows in row_sets:
        stats = accumulate(particles, np.asarray(rows), config, take_off_background=False)
        maps.append(stats.reconstruct_wiener().double().cpu() * mask)
    return maps
