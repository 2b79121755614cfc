"""Gold-standard half sets: a seeded random split, or RELION's ``rlnRandomSubset`` when present."""

from __future__ import annotations

import numpy as np

from cryosplat.core.errors import InputError
from cryosplat.particles.particle_set import ParticleSet

__all__ = ["split_halves"]


def split_halves(
    particles: ParticleSet, seed: int = 0, use_random_subset: bool = True
) -> tuple[np.ndarray, np.ndarray, str]:
    """Split particle rows into two independent halves.

    Parameters
    ----------
    particles : ParticleSet
    seed : int
        Seed of the random split (used when ``rlnRandomSubset`` is absent or not used).
    use_random_subset : bool
        Honour ``rlnRandomSubset`` (1 → half A, 2 → half B) when the metadata has it.

    Returns
    -------
    half_a, half_b : np.ndarray of int
        Sorted row indices.
    how : str
        ``"rlnRandomSubset"`` or ``"random (seed N)"``.
    """
    n = len(particles)
    if n < 2:
        raise InputError(f"{particles.source}: {n} particle(s); two half sets need at least 2")
    subset = particles.random_subset
    if use_random_subset and subset is not None:
        values = set(np.unique(subset).tolist())
        if not values <= {1, 2}:
            raise InputError(
                f"{particles.source}: rlnRandomSubset holds {sorted(values)}; expected only 1 and 2"
            )
        a, b = np.flatnonzero(subset == 1), np.flatnonzero(subset == 2)
        if len(a) and len(b):
            return a, b, "rlnRandomSubset"
    perm = np.random.default_rng(seed).permutation(n)
    half = (n + 1) // 2
    return np.sort(perm[:half]), np.sort(perm[half:]), f"random (seed {seed})"
