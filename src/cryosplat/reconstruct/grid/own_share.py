"""An image's own share in the half map it is read against, and that map without it.

A half map is made from its half set's images, so an image read against its own half map meets
its own noise in it, at the CTF it was inserted with. The likelihood of any parameter of the image
then favours the value it was inserted with: read so, the defocus likelihood comes out twice as
sharp as its errors warrant and the offsets shrink towards the recorded defocus (round 2, session
65). Read against the other half's map instead, the image's parameters follow that map's noise
and errors, and the half sets made with them are no longer independent: the resolution the next
run reports, whose cross-validation reads each half model against the other half's data, comes
out optimistic (round 2, session 80: 10.65 Å reported where the map crossed 0.5 with the truth at
12.26 Å, on a map-based set; 11.83 Å for 12.28 Å with this module's reading).

Here each image is read against its own half map with its own share taken out, to first order:
the slice read is ``M − κ_s w C X``
(:attr:`~cryosplat.reconstruct.grid.particle_scores.SampleReading.own_share`), with ``X`` the
image's spectrum, ``C`` the CTF it was inserted with, ``w`` the weight it was inserted with
(:func:`insertion_weights`) and ``κ_s`` the map's response per shell to a unit weight's own
spectrum (the diagonal of the fit's hat matrix, 1 / Σ C² for a direct inversion; smaller for a
model that smooths). ``κ_s`` is read from the data (:func:`own_share`): summed over a half set's
images, ``Σ Re(X̄ C M)`` against their own half map exceeds the same sum against the other half's
map (which holds none of their noise, and the same signal) by ``κ_s Σ w C² |X|²``. Only these
numbers, one per shell, pass from one half to the other, as RELION's gold-standard refinements
share the FSC-based signal power between the halves.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.noise_levels import NoiseLevels
from cryosplat.reconstruct.grid.particle_scores import ShellSums

__all__ = ["OWN_SHARE_WINDOW", "insertion_weights", "own_share"]

OWN_SHARE_WINDOW = 2
"""Shells pooled on each side of a shell to read its share: each shell alone scatters most where
the CTF is weak (the first shells), and the share changes slowly from shell to shell."""


def own_share(own: ShellSums, other: ShellSums, window: int = OWN_SHARE_WINDOW) -> np.ndarray:
    """The map's response per shell to an image's own spectrum, ``κ_s`` (S,), ≥ 0.

    Parameters
    ----------
    own, other : ShellSums
        The same images' sums against their own half map and against the other half's map
        (:func:`~cryosplat.reconstruct.grid.particle_scores.shell_sums`), (N, S) each.
    window : int
        Shells pooled on each side (:data:`OWN_SHARE_WINDOW`).

    Returns
    -------
    np.ndarray, float64, (S,)
        ``Σ (x_own − x_other) / Σ ctf_data`` (``ctf_data``: ``w Σ C² |X|²``) over the images and
        the shells within ``window``, clipped to ``[0, Σ x_own / Σ ctf_data]`` (an image cannot
        hold more of its map's agreement with it than all of it); 0 where the shells hold no
        samples.
    """
    if own.cross.shape != other.cross.shape:
        raise ValueError(f"sums of shapes {own.cross.shape} and {other.cross.shape}")
    if window < 0:
        raise ValueError(f"window must be at least 0, got {window}")

    def total(values: np.ndarray) -> np.ndarray:
        values = np.where(np.isfinite(values), values, 0.0).sum(0)
        kernel = np.ones(2 * window + 1)
        return np.convolve(values, kernel, mode="same")

    excess = total(own.cross) - total(other.cross)
    weight, agreement = total(own.ctf_data), total(own.cross)
    safe = np.where(weight > 0, weight, 1.0)
    share = np.where(weight > 0, excess / safe, 0.0)
    return np.clip(share, 0.0, np.maximum(np.where(weight > 0, agreement / safe, 0.0), 0.0))


def insertion_weights(
    particles: ParticleSet, levels: NoiseLevels | None
) -> Callable[[np.ndarray, torch.Tensor], torch.Tensor] | None:
    """The weight each image was inserted into its half map with, as the run weighed it: its
    noise level's (``levels``, :func:`~cryosplat.reconstruct.grid.noise_levels.measure_noise_levels`
    of the same particles; None where the run weighed them alike) times the user's ``--weights``
    (:attr:`~cryosplat.particles.particle_set.ParticleSet.weights`). An image's own share in its
    map scales with it: an image of thick ice, weighed a third, holds a third of the share.

    Returns
    -------
    callable(rows, images) -> torch.Tensor, or None
        The weights (b,) of the images (b, D, D) of ``rows`` (b,), on the images' device; None
        where every image weighs alike.
    """
    if levels is None and particles.weights is None:
        return None
    kinds = particles.image_kinds()
    kinds = kinds if kinds.any() else None

    def weights(rows: np.ndarray, images: torch.Tensor) -> torch.Tensor:
        out = torch.ones(len(rows), dtype=torch.float64, device=images.device)
        if levels is not None:
            out = levels.weights(images, None if kinds is None else kinds[rows]).double()
        if particles.weights is not None:
            given = torch.as_tensor(particles.weights[rows], dtype=torch.float64)
            out = out * given.to(images.device)
        return out

    return weights
