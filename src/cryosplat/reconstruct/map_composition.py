"""The written map's two halves, from the half models' maps and the data's inversions.

Each half map is blended shell by shell with its own half set's direct inversion where that
holds more (:mod:`cryosplat.validation.data_blend`), and where the models hold little, with a
shrunk inversion (:mod:`cryosplat.validation.shrunk_blend`); then both times their local Wiener
weight but at the lowest shells (:mod:`cryosplat.validation.local_weight`); then each plus the
blend's zero-frequency correction (``data_blend.masked_mean_correction``: the mass its model
misses inside the sphere, a constant). The shrunk inversion's shells are kept only where the
halves estimate the map as written, after the local weight, closer to the truth with them
(``shrunk_blend.shells_the_map_keeps``): the local weight already takes out the solvent's
noise that the shrunk inversion would, and where the models hold much (6VXX from atoms, 10,000
particles) the shrunk shells that gained 0.05 before the weight lost up to 0.010 after it.
Past the map's 0.5 crossing, where the data cannot choose between the models and the shrunk
inversion, the halves hold both in equal shares, and in the blend's other model shells a quarter
share of the shrunk inversion (:mod:`cryosplat.validation.tail_hedge`), before the local weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cryosplat.reconstruct.engine_result import EngineResult
from cryosplat.validation.data_blend import (
    BLEND_SAMPLED_WEIGHT,
    Blend,
    blend_halves,
    masked_mean_correction,
)
from cryosplat.validation.fsc import half_grid_shells
from cryosplat.validation.local_weight import (
    UNWEIGHTED_SHELLS,
    apply_local_weight,
    local_wiener_weight,
)
from cryosplat.validation.shrunk_blend import shells_the_map_keeps
from cryosplat.validation.tail_hedge import (
    HEDGE_MODEL_SHARE,
    MODEL_SHELLS_SHRUNK_SHARE,
    hedge_tail,
)

__all__ = ["ComposedMap", "compose_map"]

Halves = tuple[np.ndarray, np.ndarray]


@dataclass
class ComposedMap:
    """The written map's two halves and how they were made (:func:`compose_map`).

    Attributes
    ----------
    halves : (A', B')
        The halves as they enter ``map.mrc`` (their mean): blended with the data, times the
        local weight but at the lowest shells.
    unweighted : (A, B)
        The same before the local weight.
    alpha : array (D//2 + 1,) or None
        The model's weight per shell in the blend (None: no blend).
    weight : (D, D, D) or None
        The local Wiener weight (None: the plain mean); that of the halves blended with ``D``
        alone where shells took the shrunk inversion (those shells are weighted by their own).
    text : str
        What the map is, for the log, ``fsc.json`` and the summary.
    """

    halves: Halves
    unweighted: Halves
    alpha: np.ndarray | None
    weight: np.ndarray | None
    text: str


def _plus(parts: Halves, offsets: tuple[float, float]) -> Halves:
    return parts[0] + offsets[0], parts[1] + offsets[1]


def _by_shell(take: np.ndarray, chosen: Halves, other: Halves, grid, device) -> Halves:
    """Each half with the ``take`` shells of ``chosen`` and the others of ``other`` (``grid``:
    :func:`~cryosplat.validation.fsc.half_grid_shells` of the box)."""
    point = torch.as_tensor(np.append(take, False), device=device)[grid[0].clamp_max(len(take))]

    def spectrum(x: np.ndarray) -> torch.Tensor:
        return torch.fft.rfftn(torch.as_tensor(x, dtype=torch.float64, device=device))

    return tuple(
        torch.fft.irfftn(torch.where(point, spectrum(c), spectrum(o)), s=c.shape).cpu().numpy()
        for c, o in zip(chosen, other, strict=True)
    )


def _hedge_text(shares: np.ndarray) -> str:
    """The log's words for the shrunk inversion's shares (:mod:`cryosplat.validation.tail_hedge`)."""
    words = []
    k = np.flatnonzero(shares == 1.0 - HEDGE_MODEL_SHARE)
    if k.size:
        words.append(
            f"the models and the shrunk inversion in equal shares at {k.size} of shells"
            f" {k[0]}-{k[-1]}"
        )
    k = np.flatnonzero(shares == MODEL_SHELLS_SHRUNK_SHARE)
    if k.size:
        words.append(f"a quarter share of the shrunk inversion at {k.size} of the models' shells")
    return f" ({'; '.join(words)})" if words else ""


def _kept_shrunk(
    blend: Blend, weighted: Halves, offsets, data: Halves, sphere, sigma, grid, device
):
    """``(shells, weighted halves)``: the shrunk inversion's shells that the map as written
    keeps (module docstring), and the halves with them weighted by their own local weight
    (``weighted``: the plain blend's, both before the ``offsets``)."""
    shrunk_weight = local_wiener_weight(*blend.halves, sigma, device)
    candidate = tuple(apply_local_weight(p, shrunk_weight, device=device) for p in blend.halves)
    mask = torch.as_tensor(sphere, dtype=torch.float64, device=device)

    def spectra(maps: Halves) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(torch.fft.rfftn(torch.as_tensor(m, device=device) * mask) for m in maps)

    keep = shells_the_map_keeps(
        spectra(_plus(candidate, offsets)),
        spectra(_plus(weighted, offsets)),
        spectra(data),
        grid,
        blend.shrunk_shells,
    )
    return keep, candidate


def compose_map(
    half_maps: list[np.ndarray],
    result: EngineResult,
    sphere: np.ndarray,
    local_weight_sigma_px: float,
    device: torch.device | str,
) -> ComposedMap:
    """The written map's halves (module docstring); ``local_weight_sigma_px`` 0: no local
    weight."""
    parts, alpha, text = tuple(half_maps), None, "mean of the half maps"
    offsets, blend, hedge_text = (0.0, 0.0), None, ""
    if result.blend_maps is not None:
        sampled = None if result.sampling is None else result.sampling.mask(BLEND_SAMPLED_WEIGHT)
        blend = blend_halves(
            *half_maps,
            *result.blend_maps,
            device,
            mask=sphere,
            sampled=sampled,
            shrunk=result.shrunk_maps,
        )
        if result.shrunk_maps is not None:
            blend, shares = hedge_tail(
                blend, half_maps, result.blend_maps, result.shrunk_maps, sphere, sampled, device
            )
            hedge_text = _hedge_text(shares)
        parts, alpha = blend.plain, blend.alpha
        offsets = tuple(
            masked_mean_correction(m, d, blend.alpha, sphere)
            for m, d in zip(half_maps, result.blend_maps, strict=True)
        )
        text = "mean of the half maps, each blended by shell with its data's inversion"
        text += hedge_text
    if local_weight_sigma_px <= 0:
        if blend is not None and blend.shrunk_shells.any():
            parts, alpha = blend.halves, blend.model_weight
            text += f" (its shrunk inversion at {int(blend.shrunk_shells.sum())} shells)"
        return ComposedMap(_plus(parts, offsets), _plus(parts, offsets), alpha, None, text)
    # the weight from the blended halves before their zero-frequency correction, a constant
    # that would shift it everywhere (data_blend.masked_mean_correction)
    weight = local_wiener_weight(*parts, local_weight_sigma_px, device)
    halves = tuple(apply_local_weight(p, weight, device=device) for p in parts)
    if blend is not None and blend.shrunk_shells.any():
        sigma, data = local_weight_sigma_px, result.blend_maps
        grid = half_grid_shells(sphere.shape[0], device)
        keep, shrunk = _kept_shrunk(blend, halves, offsets, data, sphere, sigma, grid, device)
        if keep.any():
            halves = _by_shell(keep, shrunk, halves, grid, device)
            parts = _by_shell(keep, blend.halves, parts, grid, device)
            alpha = np.where(keep, blend.model_weight, alpha)
            k = np.flatnonzero(keep)
            text += f" (its shrunk inversion at {k.size} of shells {k[0]}-{k[-1]})"
    text += (
        f" × local Wiener weight ({local_weight_sigma_px:.3g} px; shells 0-{UNWEIGHTED_SHELLS}"
        f" unweighted, shell {UNWEIGHTED_SHELLS + 1} passing to it)"
    )
    return ComposedMap(_plus(halves, offsets), _plus(parts, offsets), alpha, weight, text)
