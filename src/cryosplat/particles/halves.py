"""Gold-standard half sets: a seeded random split, or RELION's ``rlnRandomSubset`` when present."""

from __future__ import annotations

import numpy as np

from cryosplat.core.errors import InputError
from cryosplat.particles.particle_set import ParticleSet

__all__ = ["split_halves", "unequal_halves_warning", "UNEQUAL_HALVES_RATIO"]


def split_halves(
    particles: ParticleSet, seed: int = 0, use_random_subset: bool = True
) -> tuple[np.ndarray, np.ndarray, str]:
    """Split particle rows into two independent halves.

    Parameters
    ----------
    particles : ParticleSet
    seed : int
        Seed of the random split (used when ``rlnRandomSubset`` is absent or not used). Rows
        that read the same image (:meth:`ParticleSet.image_ids`) fall in the same half.
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
    ids = particles.image_ids()
    n_images = int(ids.max()) + 1
    rng = np.random.default_rng(seed)
    if n_images == n:  # every row its own image
        perm = rng.permutation(n)
        half = (n + 1) // 2
        return np.sort(perm[:half]), np.sort(perm[half:]), f"random (seed {seed})"
    # Rows that read one image (a symmetry-expanded set) go to one half together: split apart,
    # the halves would share that image's noise and their FSC would read too high.
    order = rng.permutation(n_images)
    counts = np.bincount(ids, minlength=n_images)[order]
    middle = np.cumsum(counts) - counts / 2  # each image's rows' midpoint in the shuffled order
    in_a = np.zeros(n_images, dtype=bool)
    in_a[order[middle < n / 2]] = True
    a, b = np.flatnonzero(in_a[ids]), np.flatnonzero(~in_a[ids])
    if not len(a) or not len(b):
        raise InputError(
            f"{particles.source}: its {n} rows read only {n_images} distinct image(s); two "
            "independent half sets need at least 2"
        )
    return a, b, f"random by image (seed {seed}; {n} rows of {n_images} images)"


UNEQUAL_HALVES_RATIO = 1.5
"""A larger half set with more than this many times the smaller's particles is warned of."""


def unequal_halves_warning(n_a: int, n_b: int, how: str) -> str | None:
    """A warning where the half sets are far from equal (more than :data:`UNEQUAL_HALVES_RATIO`
    times), as labels carried over from a selection can leave them; None otherwise."""
    small, large = sorted((n_a, n_b))
    if small and large <= UNEQUAL_HALVES_RATIO * small:
        return None
    return (
        f"the half sets are unequal ({n_a} + {n_b} particles, {how}): the map is the mean of "
        "the two half maps, so the smaller half's noise weighs as much as the larger's, and "
        "the FSC and the resolution are the smaller half's; RELION's refinements make them "
        "equal (--ignore-random-subset splits at random, but the halves are then not "
        "independent of the poses)"
    )
