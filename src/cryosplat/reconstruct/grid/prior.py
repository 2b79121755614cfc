"""The fit's prior on the map, made from its settings, the halves' FSC and the views.

RELION's regularised likelihood (:func:`cryosplat.reconstruct.grid.loss.shell_prior_ratios`):
``λ(k)|X̂|²`` per shell, with the signal's power read from the FSC of the halves' direct
inversions through the CTF² that FSC sees (:meth:`FourierStatistics.fsc_weight_by_shell`).
"""

from __future__ import annotations

import math

import torch
from numpy.typing import ArrayLike

from cryosplat.reconstruct.grid.fit_config import GridFitConfig
from cryosplat.reconstruct.grid.loss import shell_prior_ratios
from cryosplat.reconstruct.grid.statistics import (
    DEFAULT_WIENER_REGULARIZATION,
    FourierStatistics,
)

__all__ = ["fit_prior_ratios", "prior_ratios", "fsc_weight_ratio"]


def fit_prior_ratios(
    stats: FourierStatistics, config: GridFitConfig, half_fsc: ArrayLike | None
) -> torch.Tensor | None:
    """The prior's ``λ / W̄`` per shell the config asks for, or None (no FSC, or strength 0)."""
    if half_fsc is None or config.prior_strength == 0:
        return None
    return prior_ratios(half_fsc, int(math.floor(stats.max_radius)) + 1, config, stats)


def prior_ratios(
    half_fsc: ArrayLike,
    n_shells: int,
    config: GridFitConfig,
    stats: FourierStatistics | None = None,
) -> torch.Tensor:
    """:func:`cryosplat.reconstruct.grid.loss.shell_prior_ratios` with the config's strength,
    cap and pooling, and the ``W`` that the FSC sees relative to the mean ``W`` of ``stats``
    (:func:`fsc_weight_ratio`; views sampled alike without them): the one place the fit's
    settings become its prior."""
    return shell_prior_ratios(
        half_fsc,
        n_shells,
        config.prior_strength,
        config.prior_cap,
        config.prior_pool_shells,
        None if stats is None else fsc_weight_ratio(stats),
    )


def fsc_weight_ratio(stats: FourierStatistics) -> torch.Tensor:
    """``W_F / W̄`` per shell: the ``W`` the halves' FSC sees
    (:meth:`FourierStatistics.fsc_weight_by_shell`, at the Wiener constant of the data maps
    that FSC is made from) over the mean ``W``; 1 where a shell holds no ``W``."""
    mean = stats.mean_weight_by_shell()
    seen = stats.fsc_weight_by_shell(DEFAULT_WIENER_REGULARIZATION)
    return torch.where(mean > 0, seen / mean.clamp_min(1e-300), torch.ones_like(mean))
