"""ParticleSet: particle images (lazily memory-mapped) with their poses and CTF.

:func:`cryosplat.particles.read.read_particles` makes one from RELION ``.star`` (3.0 and 3.1+),
cryoSPARC ``.cs``, or an ``.mrcs`` stack with cryoDRGN ``poses``/``ctf`` pickles. Rotations, shifts and CTF are
held in the conventions of :mod:`cryosplat.core.conventions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from cryosplat.core.aberrations import demodulate_images
from cryosplat.core.ctf import CTF_IN_IMAGES, CTFParams
from cryosplat.core.errors import InputError
from cryosplat.io.mrc import MRCStack

__all__ = [
    "ClassLabels",
    "OpticsGroup",
    "ParticleSet",
    "SAME_KIND_PIXEL",
    "StoredImages",
    "number_micrographs",
    "pose_arrays",
]

# Optics groups whose pixel sizes lie within this factor hold their noise alike in their pixels
# (:meth:`ParticleSet.image_kinds`): a magnification refined per group moves them by under 1 %, a
# binning by 20 % or more.
SAME_KIND_PIXEL = 1.05


@dataclass(frozen=True)
class StoredImages:
    """How an optics group's images are stored where they are read at another box
    (:mod:`cryosplat.particles.mixed_boxes`).

    Attributes
    ----------
    box : int
        Their size as stored.
    pixel_size_angstrom : float
        Their pixel as stored.
    band_limit_px : float or None
        Where they were Fourier-padded: the highest frequency they hold, in cycles over the
        field of view they are read over (frequency indices of the group's own grid, whatever
        box it is read at); beyond it they hold zeros. None: every frequency read is theirs.
    """

    box: int
    pixel_size_angstrom: float
    band_limit_px: float | None = None


@dataclass
class OpticsGroup:
    """One optics group (RELION 3.1 ``data_optics`` row, or one implied by a 3.0 file).

    ``box`` and ``pixel_size_angstrom`` are those its images are read at; ``stored`` how they
    are stored where they are read at another box, else None.
    """

    name: str
    pixel_size_angstrom: float
    box: int
    voltage_kv: float
    cs_mm: float
    amplitude_contrast: float
    stored: StoredImages | None = None


@dataclass(frozen=True)
class ClassLabels:
    """Each particle's 3D class, as its file numbers them.

    Attributes
    ----------
    numbers : np.ndarray, shape (N,), int
        RELION's ``rlnClassNumber`` (from 1) or cryoSPARC's ``alignments3D/class`` (from 0).
    column : str
        The column they were read from, for messages.
    chosen : bool
        True once the user chose these classes (:mod:`cryosplat.particles.selection`): several of
        them are then reconstructed together on purpose.
    """

    numbers: np.ndarray
    column: str
    chosen: bool = False

    def counts(self) -> dict[int, int]:
        """Class number -> particles, in increasing class number."""
        values, n = np.unique(self.numbers, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, n, strict=True)}

    def listing(self) -> str:
        """``rlnClassNumber 1: 4,000, 2: 3,000`` for messages."""
        parts = ", ".join(f"{k}: {v:,}" for k, v in self.counts().items())
        return f"{self.column} {parts}"

    def unchosen_warning(self) -> str | None:
        """A warning where the particles hold several classes and none was chosen, else None."""
        counts = self.counts()
        if self.chosen or len(counts) < 2:
            return None
        return (
            f"the particles are in {len(counts)} classes ({self.listing()}): they are made into "
            "one map, as one molecule in one state; --class N reconstructs one of them "
            "(--class 1,3 several)"
        )


def pose_arrays(
    rotations: ArrayLike, shifts_angstrom: ArrayLike, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` poses as float64 arrays: rotations (count, 3, 3) and shifts (count, 2, Å).

    Raises
    ------
    ValueError
        Their shapes are not those.
    """
    rotations = np.asarray(rotations, dtype=np.float64)
    shifts_angstrom = np.asarray(shifts_angstrom, dtype=np.float64)
    if rotations.shape != (count, 3, 3) or shifts_angstrom.shape != (count, 2):
        raise ValueError(
            f"rotations {rotations.shape} and shifts {shifts_angstrom.shape} do not match "
            f"{count} rows"
        )
    return rotations, shifts_angstrom


def _renumbered(groups: np.ndarray) -> np.ndarray | None:
    """Groups numbered from 0 again (after rows were taken); None where none holds two rows."""
    groups = np.unique(groups, return_inverse=True)[1].astype(np.int64).reshape(-1)
    return groups if len(groups) and groups.max() + 1 < len(groups) else None


def number_micrographs(names: ArrayLike) -> np.ndarray:
    """Each particle's micrograph as an int (N,), from 0 in the order the names (or ids) first
    appear."""
    values = np.asarray(names).reshape(-1)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


@dataclass
class ParticleSet:
    """N particle images with metadata.

    Attributes
    ----------
    box : int
        Image size D (pixels).
    pixel_size_angstrom : float
        The pixel size of the reconstruction (the most common one when optics groups differ; see
        ``notes``). Each group's images keep their own pixel size
        (:meth:`pixel_sizes_angstrom`), rescaled to this one where they are used.
    stacks : list[MRCStack]
        Distinct stack files.
    stack_index : np.ndarray, shape (N,), int
        Which of ``stacks`` each particle's image is in.
    image_index : np.ndarray, shape (N,), int
        0-based index of the image in its stack.
    rotations : np.ndarray or None, shape (N, 3, 3)
        Map→image matrices ``A`` (RELION ``Euler_angles2matrix``).
    shifts_angstrom : np.ndarray or None, shape (N, 2)
        RELION origins ``(x, y)`` in Å (the image holds the projection moved by minus this).
    ctf : CTFParams or None
    optics_group : np.ndarray, shape (N,), int
        Index into ``optics``.
    optics : list[OpticsGroup]
    random_subset : np.ndarray or None, shape (N,), int
        RELION ``rlnRandomSubset`` (1 or 2) when present.
    ctf_in_images : np.ndarray or None, shape (N,), int
        What each image already carries of its CTF, an index into
        :data:`~cryosplat.core.ctf.CTF_IN_IMAGES` (0 raw, 1 phase-flipped, 2 premultiplied:
        RELION's ``rlnCtfDataArePhaseFlipped`` and ``rlnCtfDataAreCtfPremultiplied``); None: every
        image raw.
    odd_zernike : np.ndarray or None, shape (N, K)
        Each particle's antisymmetric aberrations (RELION's ``rlnOddZernike`` order, beam tilt
        folded in; :mod:`cryosplat.core.aberrations`); :meth:`read_images` takes them out of the
        images. None: none.
    mag_matrices : np.ndarray or None, shape (N, 2, 2)
        Each particle's magnification matrix ``M`` (RELION's ``rlnMagMat``): its image is the
        undistorted one seen through ``M`` (the Fourier sample at ``k`` is the undistorted one at
        ``M k``, its CTF and aberrations taken there). None: the identity for all.
    classes : ClassLabels or None
        Each particle's 3D class, where the file records one (``rlnClassNumber``,
        ``alignments3D/class``). None: no class column.
    micrographs : np.ndarray or None
        Which micrograph each particle was picked from, int (N,), numbered from 0 in the order
        they first appear (:func:`number_micrographs` of RELION's ``rlnMicrographName`` or
        cryoSPARC's ``location/micrograph_uid``); None: not recorded.
    patch_groups : np.ndarray or None
        Rows that hold one patch of a micrograph share a group, int (N,): picks within 30 Å of
        each other, a helical tube's segments (:mod:`cryosplat.particles.shared_patches`); the
        half sets drawn here keep each group whole. None: no two rows share a patch.
    selection : str
        How these particles were chosen from the file's rows (:mod:`cryosplat.particles.selection`,
        e.g. ``"rlnClassNumber 2"``); empty: every row.
    source : Path
        The metadata file.
    file_rows : np.ndarray or None
        Each particle's 0-based row in the file it was read from, where a selection
        (:meth:`subset`) took some rows; None: the rows as read.
    weights : np.ndarray or None
        How much each particle counts in a reconstruction, float64 (N,) ≥ 0
        (:mod:`cryosplat.particles.weights`); None: all alike.
    notes : list[str]
        Things a user should know (e.g. which of two disagreeing pixel sizes is used).
    warnings : list[str]
        Things in the input that cryosplat does not model and that may cost resolution (e.g.
        optical aberration columns, :mod:`cryosplat.particles.aberrations`).
    """

    box: int
    pixel_size_angstrom: float
    stacks: list[MRCStack]
    stack_index: np.ndarray
    image_index: np.ndarray
    rotations: np.ndarray | None = None
    shifts_angstrom: np.ndarray | None = None
    ctf: CTFParams | None = None
    optics_group: np.ndarray | None = None
    optics: list[OpticsGroup] = field(default_factory=list)
    random_subset: np.ndarray | None = None
    ctf_in_images: np.ndarray | None = None
    odd_zernike: np.ndarray | None = None
    mag_matrices: np.ndarray | None = None
    classes: ClassLabels | None = None
    micrographs: np.ndarray | None = None
    patch_groups: np.ndarray | None = None
    selection: str = ""
    source: Path | None = None
    file_rows: np.ndarray | None = None
    weights: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.image_index)
        self.stack_index = np.asarray(self.stack_index, dtype=np.int64)
        self.image_index = np.asarray(self.image_index, dtype=np.int64)
        if self.optics_group is None:
            self.optics_group = np.zeros(n, dtype=np.int64)
        checks = {
            "stack_index": self.stack_index,
            "optics_group": self.optics_group,
            "rotations": self.rotations,
            "shifts_angstrom": self.shifts_angstrom,
            "random_subset": self.random_subset,
            "ctf_in_images": self.ctf_in_images,
            "odd_zernike": self.odd_zernike,
            "mag_matrices": self.mag_matrices,
            "classes": None if self.classes is None else self.classes.numbers,
            "file_rows": self.file_rows,
            "weights": self.weights,
            "micrographs": self.micrographs,
            "patch_groups": self.patch_groups,
        }
        for name, arr in checks.items():
            if arr is not None and len(arr) != n:
                raise InputError(
                    f"{self.source}: {name} has {len(arr)} rows but there are {n} particles"
                )
        if self.ctf_in_images is not None:
            self.ctf_in_images = np.asarray(self.ctf_in_images, dtype=np.int64)
            bad = np.flatnonzero(
                (self.ctf_in_images < 0) | (self.ctf_in_images >= len(CTF_IN_IMAGES))
            )
            if bad.size:
                raise InputError(
                    f"{self.source}: ctf_in_images must be 0 to {len(CTF_IN_IMAGES) - 1}, got "
                    f"{self.ctf_in_images[bad[0]]} at row {bad[0] + 1}"
                )
        if self.ctf is not None and len(self.ctf) != n:
            raise InputError(
                f"{self.source}: CTF has {len(self.ctf)} rows but there are {n} particles"
            )
        for name in ("rotations", "shifts_angstrom", "odd_zernike"):
            arr = getattr(self, name)
            if arr is not None and not np.all(np.isfinite(arr)):
                row = int(np.flatnonzero(~np.isfinite(arr.reshape(n, -1)).any(axis=1))[0])
                raise InputError(f"{self.source}: {name} is NaN or infinite at row {row + 1}")

    def __len__(self) -> int:
        return int(self.image_index.shape[0])

    @property
    def has_poses(self) -> bool:
        return self.rotations is not None

    @property
    def has_ctf(self) -> bool:
        return self.ctf is not None

    def read_images(self, indices: ArrayLike, as_stored: bool = False) -> np.ndarray:
        """Images of particles ``indices`` (0-based rows), float32, shape (B, D, D).

        Where the particles have antisymmetric aberrations (:attr:`odd_zernike`), they come back
        taken out (:func:`cryosplat.core.aberrations.demodulate_images`), as ``relion_reconstruct``
        takes them out before it inserts an image; ``as_stored`` skips that, for a reader that
        takes them out of the images' transforms itself
        (:func:`cryosplat.core.aberrations.odd_phase_factors`).
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.empty((idx.size, self.box, self.box), dtype=np.float32)
        sidx = self.stack_index[idx]
        for s in np.unique(sidx):
            rows = np.flatnonzero(sidx == s)
            out[rows] = self.stacks[s].read(self.image_index[idx[rows]])
        if self.odd_zernike is not None and not as_stored:
            mags = None if self.mag_matrices is None else self.mag_matrices[idx]
            out = demodulate_images(
                out, self.odd_zernike[idx], self.pixel_sizes_angstrom(idx), mag_matrices=mags
            )
        return out

    def image_ids(self) -> np.ndarray:
        """One id per distinct image, shape (N,), int: rows that read the same image of the same
        stack (a symmetry-expanded set lists each image once per operator) share their id; ids
        count from 0 in the order of (stack, image)."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        keys = self.stack_index * (int(self.image_index.max()) + 1) + self.image_index
        return np.unique(keys, return_inverse=True)[1].astype(np.int64)

    def spread_rows(self, count: int) -> np.ndarray:
        """Up to ``count`` row indices spread evenly over the set, first and last included (for
        checks that read a sample of the images)."""
        return self.spread_rows_of(np.arange(len(self)), count)

    @staticmethod
    def spread_rows_of(rows: ArrayLike, count: int) -> np.ndarray:
        """Up to ``count`` of ``rows`` (sorted first) spread evenly over them, first and last
        included (e.g. a sample of one half set)."""
        rows = np.sort(np.asarray(rows, dtype=np.int64).reshape(-1))
        if len(rows) == 0:
            return rows
        n = min(count, len(rows))
        return rows[np.unique(np.linspace(0, len(rows) - 1, n).round().astype(np.int64))]

    def subset(self, indices: ArrayLike) -> ParticleSet:
        """A new ParticleSet with rows ``indices`` (integer array or boolean mask)."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return replace(
            self,
            stack_index=self.stack_index[idx],
            image_index=self.image_index[idx],
            rotations=take(self.rotations),
            shifts_angstrom=take(self.shifts_angstrom),
            ctf=None if self.ctf is None else self.ctf.subset(idx),
            optics_group=self.optics_group[idx],
            random_subset=take(self.random_subset),
            ctf_in_images=take(self.ctf_in_images),
            odd_zernike=take(self.odd_zernike),
            mag_matrices=take(self.mag_matrices),
            classes=None
            if self.classes is None
            else replace(self.classes, numbers=self.classes.numbers[idx]),
            micrographs=take(self.micrographs),
            patch_groups=None if self.patch_groups is None else _renumbered(self.patch_groups[idx]),
            file_rows=self.rows_in_file()[idx],
            weights=take(self.weights),
            notes=list(self.notes),
            warnings=list(self.warnings),
        )

    def rows_in_file(self) -> np.ndarray:
        """Each particle's 0-based row in the file it was read from, int64 (N,) (what ``--ind``
        and cryoDRGN's index files name)."""
        if self.file_rows is None:
            return np.arange(len(self), dtype=np.int64)
        return np.asarray(self.file_rows, dtype=np.int64)

    def ctf_in_images_of(self, indices: ArrayLike) -> np.ndarray | None:
        """The :attr:`ctf_in_images` codes of rows ``indices``, or None when they are all raw."""
        if self.ctf_in_images is None:
            return None
        codes = self.ctf_in_images[np.asarray(indices)]
        return codes if codes.any() else None

    def _by_group(self, per_group: list, indices: ArrayLike | None, default) -> np.ndarray:
        """``per_group`` (one value per optics group) for each particle, shape (N,) or
        (len(indices),); ``default`` for every particle of a set without optics groups."""
        group = self.optics_group if indices is None else self.optics_group[np.asarray(indices)]
        if not self.optics:
            return np.full(group.shape, default)
        return np.asarray(per_group)[group]

    def pixel_sizes_angstrom(self, indices: ArrayLike | None = None) -> np.ndarray:
        """The pixel size (Å) of each particle's own optics group, shape (N,) or (len(indices),)."""
        sizes = [float(g.pixel_size_angstrom) for g in self.optics]
        return self._by_group(sizes, indices, float(self.pixel_size_angstrom))

    def band_limits_px(self, indices: ArrayLike | None = None) -> np.ndarray:
        """Each particle's :attr:`StoredImages.band_limit_px` (``inf`` where its images hold
        every frequency read), shape (N,) or (len(indices),)."""
        limits = [
            float(g.stored.band_limit_px) if g.stored and g.stored.band_limit_px else np.inf
            for g in self.optics
        ]
        return self._by_group(limits, indices, np.inf)

    def image_kinds(self, indices: ArrayLike | None = None) -> np.ndarray:
        """Each particle's kind of image, shape (N,) or (len(indices),), int from 0: one per
        pixel size as read (sizes within :data:`SAME_KIND_PIXEL` of the smallest of a kind are
        that kind) and band (:attr:`StoredImages.band_limit_px`), in the order of
        :attr:`optics`. Every particle of a set read at one pixel size, as stored, is of kind 0.
        Pixels of different sizes, or of a binned image padded, hold their noise differently:
        their variances are compared within a kind only
        (:mod:`cryosplat.reconstruct.grid.noise_levels`)."""
        if not self.optics:
            return self._by_group([], indices, 0)
        sizes = sorted({g.pixel_size_angstrom for g in self.optics})
        starts = [sizes[0]]
        for size in sizes[1:]:
            if size > starts[-1] * SAME_KIND_PIXEL:
                starts.append(size)
        keys = [
            (
                int(np.searchsorted(starts, g.pixel_size_angstrom, side="right")),
                g.stored.band_limit_px if g.stored else None,
            )
            for g in self.optics
        ]
        first = {key: None for key in keys}  # distinct keys in the groups' order
        index = {key: i for i, key in enumerate(first)}
        return self._by_group([index[key] for key in keys], indices, 0)

    @property
    def mixed_pixel_sizes(self) -> bool:
        """True when the particles' optics groups have different pixel sizes."""
        return bool(np.unique(np.round(self.pixel_sizes_angstrom(), 6)).size > 1)

    def pixel_size_listing(self) -> str:
        """The optics groups and their pixel sizes, e.g. ``"g1 1.5 Å, g2 1.6 Å"``."""
        used = set(np.unique(self.optics_group).tolist())
        return ", ".join(
            f"{g.name} {g.pixel_size_angstrom:g} Å" for i, g in enumerate(self.optics) if i in used
        )

    def with_pixel_size(self, pixel_size_angstrom: float) -> ParticleSet:
        """A copy whose every optics group has this pixel size (Å): override a wrong header (a
        group read at another box than it is stored at, :attr:`OpticsGroup.stored`, has it as
        stored).

        Shifts keep their size in pixels (that is what the alignment measured): each particle's
        shift in Å is rescaled by ``new / old`` pixel size. A note records the change.
        """
        if not pixel_size_angstrom > 0:
            raise InputError(f"--angpix must be positive, got {pixel_size_angstrom}")
        old = self.pixel_sizes_angstrom()
        optics = [replace(g, pixel_size_angstrom=pixel_size_angstrom) for g in self.optics]
        for i, g in enumerate(self.optics):
            if g.stored is not None:  # read at another pixel than stored: the ratio kept
                ratio = g.pixel_size_angstrom / g.stored.pixel_size_angstrom
                stored = replace(g.stored, pixel_size_angstrom=pixel_size_angstrom)
                optics[i] = replace(
                    g, pixel_size_angstrom=pixel_size_angstrom * ratio, stored=stored
                )
        shifts = None
        if self.shifts_angstrom is not None:
            new = np.array([g.pixel_size_angstrom for g in optics])[self.optics_group]
            shifts = self.shifts_angstrom * (new / old)[:, None]
        listing = self.pixel_size_listing() or f"{self.pixel_size_angstrom:g} Å"
        note = f"pixel size: {pixel_size_angstrom:g} Å from --angpix (the metadata said {listing})"
        return replace(
            self,
            pixel_size_angstrom=float(pixel_size_angstrom),
            shifts_angstrom=shifts,
            optics=optics,
            notes=[*self.notes, note],
            warnings=list(self.warnings),
        )

    def require_poses_and_ctf(self) -> None:
        """Raise InputError unless every particle has a pose and a CTF."""
        missing = [w for w, ok in (("poses", self.has_poses), ("CTF", self.has_ctf)) if not ok]
        if missing:
            raise InputError(
                f"{self.source}: no {' and no '.join(missing)} in the metadata; "
                "reconstruction needs both"
            )
