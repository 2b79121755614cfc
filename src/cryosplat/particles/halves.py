"""Gold-standard half sets: a seeded random split, or RELION's ``rlnRandomSubset`` when present."""

from __future__ import annotations

import numpy as np

from cryosplat.core.errors import InputError
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.shared_patches import linked_labels

__all__ = [
    "split_halves",
    "split_keeps_patches",
    "unequal_halves_warning",
    "UNEQUAL_HALVES_RATIO",
]


def split_halves(
    particles: ParticleSet,
    seed: int = 0,
    use_random_subset: bool = True,
    keep_patches: bool = True,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Split particle rows into two independent halves.

    Parameters
    ----------
    particles : ParticleSet
    seed : int
        Seed of the random split (used when ``rlnRandomSubset`` is absent or not used). Rows
        that read the same image (:meth:`ParticleSet.image_ids`) fall in the same half, and so,
        with ``keep_patches``, do rows that hold one patch of a micrograph
        (:attr:`ParticleSet.patch_groups`: close picks, a helical tube's segments).
    use_random_subset : bool
        Honour ``rlnRandomSubset`` (1 → half A, 2 → half B) when the metadata has it.
    keep_patches : bool
        Keep each patch group in one half. False: the split of runs made before cryosplat kept
        them (:func:`split_keeps_patches` says where the two differ).

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
    if use_random_subset and (given := _given_halves(particles)) is not None:
        return *given, "rlnRandomSubset"
    ids = particles.image_ids()
    if keep_patches and (linked := _patch_linked(particles, ids)) is not None:
        return _split_groups(particles, linked, seed, "patch of a micrograph")
    n_images = int(ids.max()) + 1
    if n_images == n:  # every row its own image
        rng = np.random.default_rng(seed)
        perm = rng.permutation(n)
        half = (n + 1) // 2
        return np.sort(perm[:half]), np.sort(perm[half:]), f"random (seed {seed})"
    # Rows that read one image (a symmetry-expanded set) go to one half together: split apart,
    # the halves would share that image's noise and their FSC would read too high.
    return _split_groups(particles, ids, seed, "image")


def _given_halves(particles: ParticleSet) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows of ``rlnRandomSubset`` 1 and 2, or None where the file gives no two halves (no
    labels, or one half empty); an :class:`InputError` for labels other than 1 and 2."""
    subset = particles.random_subset
    if subset is None:
        return None
    values = set(np.unique(subset).tolist())
    if not values <= {1, 2}:
        raise InputError(
            f"{particles.source}: rlnRandomSubset holds {sorted(values)}; expected only 1 and 2"
        )
    a, b = np.flatnonzero(subset == 1), np.flatnonzero(subset == 2)
    return (a, b) if len(a) and len(b) else None


def _split_groups(
    particles: ParticleSet, groups: np.ndarray, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Whole groups of rows (ids from 0) drawn into two halves of about equal rows."""
    n, n_groups = len(groups), int(groups.max()) + 1
    order = np.random.default_rng(seed).permutation(n_groups)
    counts = np.bincount(groups, minlength=n_groups)[order]
    middle = np.cumsum(counts) - counts / 2  # each group's rows' midpoint in the shuffled order
    in_a = np.zeros(n_groups, dtype=bool)
    in_a[order[middle < n / 2]] = True
    a, b = np.flatnonzero(in_a[groups]), np.flatnonzero(~in_a[groups])
    if not len(a) or not len(b):
        kind = (
            f"read only {n_groups} distinct image(s)"
            if what == "image"
            else f"fall in only {n_groups} group(s) of one image or one {what} (close picks, a "
            "helical tube)"
        )
        raise InputError(
            f"{particles.source}: its {n} rows {kind}; two independent half sets need at least 2"
        )
    how = f"random by image (seed {seed}; {n} rows of {n_groups} images)"
    if what != "image":
        how = (
            f"random by {what} (seed {seed}; {n} rows in {n_groups} groups: close picks and each "
            "helical tube kept in one half)"
        )
    return a, b, how


def _patch_linked(particles: ParticleSet, ids: np.ndarray) -> np.ndarray | None:
    """Rows' groups of one image or one patch group, where the patches join distinct images;
    None where they join none (the split by image is the same)."""
    if particles.patch_groups is None:
        return None
    linked = linked_labels(ids, particles.patch_groups)
    return linked if linked.max() < ids.max() else None


def split_keeps_patches(particles: ParticleSet, use_random_subset: bool = True) -> bool:
    """Whether :func:`split_halves` draws other halves with ``keep_patches`` than without: the
    split is drawn here (no ``rlnRandomSubset`` used) and patch groups join distinct images."""
    if use_random_subset and _given_halves(particles) is not None:
        return False
    return len(particles) > 1 and _patch_linked(particles, particles.image_ids()) is not None


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
