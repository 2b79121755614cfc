"""Density control in a grid fit: split the heaviest Gaussians, prune the lightest.

As 3D Gaussian splatting moves its Gaussians to where the scene needs them, each stage after the
first starts (and every ``GridFitConfig.density_control_every`` steps within a stage goes on)
by taking the ``k`` positive Gaussians that hold the least mass (an amplitude is a
Gaussian's integrated density) off the map and splitting the ``k`` that hold the most into two:
each half of the pair keeps the shape and half the mass, the two moved apart along a random
direction by 0.7 of the mean scale, so the finer stage can resolve what one Gaussian averaged. The
number of Gaussians stays the same (so do the time and memory of a step); where they sit follows
the molecule's mass rather than the random start. The negative population (density below the
solvent level) is left alone.

Growth (:func:`grow_heaviest`): a stage that is to hold more Gaussians than the model it starts
from splits the heaviest positive Gaussians the same way, pruning none, until the model holds that
many. The grid engine grows the last stage's model to the number of Gaussians the data's
information asks for (:mod:`cryosplat.reconstruct.grid.capacity`): the coarse stages, whose grids
could not use them, fit the box's default.

Measured on twelve benchmark sets, three seeds each (``benchmarks/RESULTS.md``, round 2 session
6): the FSC with the truth crosses 0.5 1.3 % finer on average (8ZPM 5 %, the beta-galactosidase
sets 1–3.5 %), 1.3 % coarser on the coloured EMD-1832 set.
"""

from __future__ import annotations

import torch

from cryosplat.model.gaussians import GaussianModel, inverse_softplus
from cryosplat.reconstruct.grid.parameters import FitParameters

__all__ = ["split_heaviest", "grow_heaviest", "SPLIT_OFFSET_SCALES"]

SPLIT_OFFSET_SCALES = 0.7
"""Distance of each half of a split pair from the parent's mean, in units of its mean scale."""


def _by_mass(amplitudes: torch.Tensor) -> torch.Tensor:
    """Rows of the positive Gaussians, lightest first (equal masses in row order)."""
    positive = torch.nonzero(amplitudes > 0).flatten()
    return positive[torch.argsort(amplitudes[positive], stable=True)]


def _pair_offsets(scales: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Offsets (k, 3) of the two halves of each split Gaussian from its mean: a random unit
    direction times ``SPLIT_OFFSET_SCALES`` of its mean scale (``scales``: (k, 3))."""
    direction = torch.randn(scales.shape[0], 3, generator=generator, dtype=torch.float64)
    direction = (direction / direction.norm(dim=1, keepdim=True)).to(scales)
    return direction * (SPLIT_OFFSET_SCALES * scales.mean(dim=1, keepdim=True))


def split_heaviest(
    params: FitParameters, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace the lightest ``fraction`` of the positive Gaussians by halves of the heaviest.

    Parameters
    ----------
    params : FitParameters
        Modified in place. An optimiser's moments of the returned rows are the caller's to set
        (the grid fit gives each new half its parent's).
    fraction : float
        Part of the positive Gaussians pruned, and the same number split, in ``[0, 0.5)``.
    seed : int
        Seed of the split directions.

    Returns
    -------
    (light, heavy) : int64 tensors (k,)
        Rows that now hold the second half of each pair (the pruned ones) and the first (the
        split ones), pair by pair.
    """
    if not 0.0 <= fraction < 0.5:
        raise ValueError(f"fraction must be in [0, 0.5), got {fraction}")
    with torch.no_grad():
        amplitudes = params.activated().amplitudes
        order = _by_mass(amplitudes)
        k = int(round(fraction * order.numel()))
        if k == 0:
            return order[:0], order[:0]
        light, heavy = order[:k], order[-k:]
        generator = torch.Generator().manual_seed(int(seed))
        offset = _pair_offsets(torch.nn.functional.softplus(params.raw_scales[heavy]), generator)
        centre = params.means[heavy]
        params.means[light] = centre - offset
        params.means[heavy] = centre + offset
        params.raw_scales[light] = params.raw_scales[heavy]
        params.raw_quaternions[light] = params.raw_quaternions[heavy]
        half = 0.5 * amplitudes[heavy].abs()
        raw = half if params.signed else inverse_softplus(half)
        params.raw_amplitudes[heavy] = raw
        params.raw_amplitudes[light] = raw
    return light, heavy


def grow_heaviest(model: GaussianModel, n_gaussians: int, seed: int) -> GaussianModel:
    """A copy of ``model`` with ``n_gaussians`` Gaussians: its heaviest positive Gaussians split
    in two (half the amplitude each, the same shape, set apart by ``SPLIT_OFFSET_SCALES`` of the
    mean scale along a random direction), none pruned; the heaviest again while more are needed.

    The map changes only within about a scale of each split Gaussian (its mass and centre of
    mass stay); negative Gaussians are kept as they are.

    Parameters
    ----------
    model : GaussianModel
        Not modified; at least one positive Gaussian where any must be added.
    n_gaussians : int
        Gaussians of the result; ``len(model)`` or fewer returns ``model`` itself.
    seed : int
        Seed of the split directions.
    """
    if n_gaussians <= len(model):
        return model
    with torch.no_grad():
        means = model.means.detach().clone()
        scales = model.scales.detach().clone()
        quaternions = model.quaternions.detach().clone()
        amplitudes = model.amplitudes.detach().clone()
        generator = torch.Generator().manual_seed(int(seed))
        while means.shape[0] < n_gaussians:
            order = _by_mass(amplitudes)
            if order.numel() == 0:
                raise ValueError("a model with no positive Gaussian cannot grow")
            heavy = order[-min(n_gaussians - means.shape[0], order.numel()) :]
            offset = _pair_offsets(scales[heavy], generator)
            centre = means[heavy].clone()
            means[heavy] = centre - offset
            amplitudes[heavy] = 0.5 * amplitudes[heavy]
            means = torch.cat([means, centre + offset])
            scales = torch.cat([scales, scales[heavy]])
            quaternions = torch.cat([quaternions, quaternions[heavy]])
            amplitudes = torch.cat([amplitudes, amplitudes[heavy]])
    return GaussianModel(
        means,
        scales,
        quaternions,
        amplitudes,
        model.box,
        model.pixel_size_angstrom,
        model.symmetry,
        signed=model.signed,
    )
