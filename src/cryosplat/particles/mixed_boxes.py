"""Particles whose images come in several sizes: every image read at one box.

Optics groups may hold images of different sizes (RELION 3.1's ``rlnImageSize`` per group;
cryoSPARC's ``blob/shape`` per particle): data sets extracted at different boxes, or one binned.
RELION reconstructs them together: each group's Fourier samples are placed on the
reconstruction's grid scaled by ``(D_g p_g) / (D p)`` (``ObservationModel::
applyScaleDifference``), the reconstruction taking the box and pixel of the first group.

Here every image is read at the box ``D`` most particles have (the larger of two equally common),
the map's pixel ``p`` that of most of those particles. A group of box ``D_g`` at pixel ``p_g``:

* whose field of view ``D_g p_g`` is no larger than the map's is Fourier-cropped or -padded to
  ``D`` (:func:`~cryosplat.particles.downsample.fourier_resample_images`): the same field at pixel
  ``p_g D_g / D`` (a binned set comes back at the map's pixel, band-limited to its own Nyquist);
* whose field is larger is first Fourier-resampled to the box ``D'`` nearest the map's pixel
  (``D_g p_g / p`` rounded; a set extracted at a larger box with the same pixel is not
  resampled) and then cropped in real space to ``D`` about its centre: it loses the part of its
  field beyond the map's (as if it had been extracted at the map's box), none of its
  frequencies up to the map's Nyquist.

The engines' rescaling of each optics group's pixel size
(:class:`cryosplat.reconstruct.grid.group_sampling.GroupSampling`) places the samples; a padded
group's frequencies end at its own Nyquist (:attr:`~cryosplat.particles.particle_set.
StoredImages.band_limit_px`) and the zeros beyond are not inserted. Shifts and CTFs are in Å and
do not change. A group whose images come in several sizes is split, one group per size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cryosplat.core.errors import InputError
from cryosplat.particles.downsample import ResampledStack
from cryosplat.particles.particle_set import OpticsGroup, StoredImages

__all__ = ["OneBox", "one_box"]

# Fields of view within this share of each other are the same field (pixel sizes are written to
# a few digits).
SAME_FIELD = 1e-4


@dataclass
class OneBox:
    """Stacks read at one box, and the optics groups that go with them.

    Attributes
    ----------
    stacks : list
        The stacks, those of another size read through a Fourier crop or pad.
    optics_group : np.ndarray, shape (N,), int
        Each particle's group in ``optics``.
    optics : list[OpticsGroup]
        With the box the images are read at and their pixel size there; ``stored`` how they
        are stored where that differs.
    box : int
    notes : list[str]
    """

    stacks: list
    optics_group: np.ndarray
    optics: list[OpticsGroup]
    box: int
    notes: list[str]

    def pixel_factors(self) -> np.ndarray:
        """Each particle's pixel as read over its pixel as stored, shape (N,)."""
        factors = [
            g.pixel_size_angstrom / g.stored.pixel_size_angstrom if g.stored else 1.0
            for g in self.optics
        ]
        return np.array(factors)[self.optics_group]

    def map_pixel(self, pixel_rows: np.ndarray) -> tuple[float, str | None]:
        """The reconstruction's pixel size (Å): the most common of the particles' pixels as read
        (``pixel_rows`` as stored times :meth:`pixel_factors`, to 6 decimals), and a note where
        the groups differ (None where they do not)."""
        read_pixels = np.round(np.asarray(pixel_rows, dtype=np.float64) * self.pixel_factors(), 6)
        values, counts = np.unique(read_pixels, return_counts=True)
        pixel = float(values[np.argmax(counts)])
        if values.size == 1:
            return pixel, None
        listing = ", ".join(f"{g.name} {g.pixel_size_angstrom:g} Å" for g in self.optics)
        return pixel, (
            f"pixel size: optics groups differ ({listing}); reconstructing at {pixel:g} Å, the "
            "most common; each group keeps its own pixel size for its CTF and shifts and its "
            "Fourier samples are rescaled to the reconstruction's (as RELION does)"
        )


def _check_declared(
    groups: list[OpticsGroup],
    group_of: np.ndarray,
    sizes: np.ndarray,
    stacks: list,
    stack_index: np.ndarray,
    declared_by: str,
    source: Path,
) -> None:
    """An error where a group's declared box (``declared_by``, e.g. ``rlnImageSize``) is not
    the size of its images (``sizes``, each particle's)."""
    for g, group in enumerate(groups):
        mine = group_of == g
        wrong = mine & (sizes != group.box)
        if group.box and wrong.any():
            size = int(sizes[wrong][0])
            example = stacks[int(stack_index[wrong][0])].path
            raise InputError(
                f"{source}: {declared_by} {group.box} for {group.name} but "
                f"{int(wrong.sum())} of its {int(mine.sum())} images are {size}x{size} (e.g. "
                f"{example}): give their particles a group of their own with that size, or "
                "extract them again at one box"
            )


def one_box(
    stacks: list,
    stack_index: np.ndarray,
    group_of: np.ndarray,
    groups: list[OpticsGroup],
    source: Path,
    declared_by: str = "data_optics says rlnImageSize",
) -> OneBox:
    """Read every particle's image at one box (module docstring).

    Parameters
    ----------
    stacks : list
        Opened stacks (:class:`cryosplat.io.mrc.MRCStack`); empty where the images are not
        read, the groups' declared boxes then standing for them.
    stack_index : np.ndarray, shape (N,), int
        Each particle's stack (−1 without stacks).
    group_of : np.ndarray, shape (N,), int
        Each particle's group in ``groups``.
    groups : list[OpticsGroup]
        As the metadata has them (``box`` 0 where it says none); not changed.
    source : Path
        The metadata file, for messages.
    declared_by : str
        What declares a group's box, for the error where the images disagree.

    Returns
    -------
    OneBox
        The same stacks, groups and indices where every image has one size.
    """
    group_of = np.asarray(group_of, dtype=np.int64)
    if stacks:
        sizes = np.array([s.box for s in stacks], dtype=np.int64)[stack_index]
        _check_declared(groups, group_of, sizes, stacks, stack_index, declared_by, source)
    else:
        sizes = np.array([g.box for g in groups], dtype=np.int64)[group_of]
    values, counts = np.unique(sizes, return_counts=True)
    box = int(values[::-1][np.argmax(counts[::-1])])  # the most common; the larger on a tie
    if values.size == 1:
        return OneBox(stacks, group_of, [replace(g, box=box) for g in groups], box, [])
    pixels = np.array([g.pixel_size_angstrom for g in groups])[group_of]
    at_box = np.unique(pixels[sizes == box], return_counts=True)
    pixel = float(at_box[0][np.argmax(at_box[1])])
    pairs, new_group = np.unique(np.stack([group_of, sizes], axis=1), axis=0, return_inverse=True)
    split = np.bincount(pairs[:, 0], minlength=len(groups)) > 1
    optics, resample_of, lines = [], [], []  # resample_of: each new group's resampling box
    for g, size in pairs.tolist():
        group = groups[g]
        name = f"{group.name} (box {size})" if split[g] else group.name
        resample, line = _plan(size, group.pixel_size_angstrom, box, pixel)
        resample_of.append(resample)
        stored = None
        if size != box:
            band = None
            if resample > size:  # padded: its own Nyquist, in cycles over the field it is read at
                band = (size - 1) // 2 * box / resample
            stored = StoredImages(size, group.pixel_size_angstrom, band)
            lines.append(f"{name} {line}")
        optics.append(
            replace(
                group,
                name=name,
                box=box,
                pixel_size_angstrom=group.pixel_size_angstrom * size / resample,
                stored=stored,
            )
        )
    new_group = new_group.reshape(-1).astype(np.int64)
    read = list(stacks)
    for s, stack in enumerate(stacks):
        resamples = {resample_of[i] for i in np.unique(new_group[stack_index == s]).tolist()}
        if len(resamples) > 1:
            raise InputError(
                f"{source}: {stack.path} holds particles of optics groups with different pixel "
                "sizes; its images can be read at one pixel size only"
            )
        if stack.box != box and resamples:
            read[s] = ResampledStack(stack, box, resamples.pop())
    listing = ", ".join(f"{int(c):,} of box {int(v)}" for v, c in zip(values, counts, strict=True))
    note = (
        f"image sizes: the particles' images differ ({listing}); each is read at box {box}, the "
        f"most common, at {pixel:g} Å ({'; '.join(lines)}), its samples placed on the map's "
        "grid by their pixel size as RELION places each optics group's"
    )
    return OneBox(read, new_group, optics, box, [note])


def _plan(size: int, pixel: float, box: int, map_pixel: float) -> tuple[int, str]:
    """The box images of ``size`` at ``pixel`` Å are Fourier-resampled to before a real-space
    crop to ``box`` (``box`` itself: no crop), and what is done, for the note."""
    field, map_field = size * pixel, box * map_pixel
    if size == box:
        return box, "as stored"
    if field <= map_field * (1 + SAME_FIELD):
        how = "padded" if size < box else "cropped"
        return box, f"Fourier-{how} {size} → {box} px ({pixel * size / box:.4g} Å), its field kept"
    resample = max(box, round(size * pixel / map_pixel))
    if resample < size:
        resample += resample % 2  # a Fourier crop keeps an even box
    step = "" if resample == size else f"Fourier-resampled {size} → {resample} px, then "
    return resample, (
        f"{step}cropped {resample} → {box} px about its centre ({pixel * size / resample:.4g} Å): "
        f"its field beyond the map's ({field:.0f} Å against {map_field:.0f} Å) left out"
    )
