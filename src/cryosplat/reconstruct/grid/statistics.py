"""Fourier sufficient statistics of a particle set: one streamed pass, then no more image reads.

The per-image loss of a map ``V``, ``Σ_i Σ_k |CTF_i(k) · V̂(A_iᵀk) − Y_i(k)|²`` with ``Y_i`` the
spectrum of image ``i`` with its shift undone (``exp(−2πi k·o)``), gathered onto the padded grid of
:mod:`cryosplat.core.fourier_slice` with trilinear weights ``w`` (as RELION's reconstruction gathers its
data and weight arrays), needs only ``W = Σ w · CTF²``, ``B = Σ w · CTF · Y`` and the data power
``Σ |Y|²`` (:mod:`cryosplat.reconstruct.grid.loss`). They are stored on the half grid ``(P, P, P//2 + 1)``
(Friedel symmetry); ``B`` is in the DFT units of the images (:func:`cryosplat.core.fourier.fft2_centered`
of images in their file units), ``W`` is dimensionless. Statistics of disjoint sets add (``+``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.errors import InputError
from cryosplat.core.fourier import squared_radius
from cryosplat.core.fourier_slice import default_max_radius
from cryosplat.core.padded_transform import centred_cropped_irfftn, padded_box, padded_ft_to_volume
from cryosplat.io.atomic import atomic_path

__all__ = ["wiener_inversion", "joined_rows", "FourierStatistics", "DEFAULT_WIENER_REGULARIZATION"]

# The Wiener constant of a direct inversion, a fraction of the mean summed CTF²: the validation's
# data half maps and the prior's FSC use it (a blend with the model uses less,
# :data:`cryosplat.validation.data_blend.BLEND_REGULARIZATION`).
DEFAULT_WIENER_REGULARIZATION = 0.05

# Points of a z-slab of a padded half grid worked on at a time (:func:`_centred_slabs`): the
# squared radii of a whole padded grid, and its masks, would be gigabytes at large boxes.
SLAB_POINTS = 2**20

FORMAT_NAME = "cryosplat-fourier-statistics"
FORMAT_VERSION = 1
# The fields a statistics file holds, each with its reader (``insertion_pad`` belongs to unpadded
# statistics, made in a fit and never saved).
_SAVED_FIELDS = {
    "weights": torch.from_numpy,
    "data": torch.from_numpy,
    "power": torch.from_numpy,
    "box": int,
    "pad": int,
    "n_particles": int,
    "pixel_size_angstrom": float,
    "max_radius": float,
    "notes": lambda a: [str(x) for x in a],
}
# Saved where present, and read where the file holds them (files written before hold none).
_OPTIONAL_FIELDS = {"left_out_rows": lambda a: np.asarray(a, dtype=np.int64)}


def shell_of(squared_radius_padded: torch.Tensor, pad: int) -> torch.Tensor:
    """Image-frequency shell ``round(|K| / pad)`` of padded-grid points with ``|K|²`` given."""
    return torch.round(torch.sqrt(squared_radius_padded) / pad).long()


def _centred_slabs(size: int, device, dtype: torch.dtype):
    """``(rows, r2)`` for the z-slabs of a centred ``(P, P, P//2 + 1)`` half grid (``P`` =
    ``size``; index ``i`` of the first two axes is ``i − P//2``), :data:`SLAB_POINTS` points or
    so a slab: the slab's rows along z and the squared radius of each of its points, in
    ``dtype``."""
    k = torch.arange(size, device=device, dtype=dtype) - size // 2
    kx = torch.arange(size // 2 + 1, device=device, dtype=dtype)
    plane = k[:, None] ** 2 + kx[None, :] ** 2
    slab = max(1, SLAB_POINTS // plane.numel())
    for start in range(0, size, slab):
        yield slice(start, start + slab), plane[None] + k[start : start + slab, None, None] ** 2


def padded_shell_index(size: int, pad: int, device: torch.device | str) -> torch.Tensor:
    """:func:`shell_of` each point of the uncentred half grid."""
    r2 = squared_radius(size, 3, half=True, centred=False, device=device, dtype=torch.float64)
    return shell_of(r2, pad)


@dataclass
class FourierStatistics:
    """Sufficient statistics ``W`` and ``B`` of a set of particle images on the padded half grid.

    Attributes
    ----------
    weights : torch.Tensor, shape (P, P, P//2 + 1), float32 (as gathered; float64 accepted)
        ``W(K) = Σ w · CTF²`` (see the module docstring for the layout).
    data : torch.Tensor, shape (P, P, P//2 + 1), complex64 (as gathered; complex128 accepted)
        ``B(K) = Σ w · CTF · Y`` (shift-corrected image spectra).
    box, pad : int
        Image box D and padding factor (``P = pad · D``).
    pixel_size_angstrom : float
    n_particles : int
    power : torch.Tensor, shape (R,), float64
        ``Σ_i Σ_{|k|² = r} |Y_i(k)|²`` for each integer squared radius ``r`` (pixels² of the D
        grid) gathered: the loss's constant term, by radius so that :meth:`crop` can cut it.
    max_radius : float
        Largest image frequency gathered, in pixels of the D grid.
    notes : list of str
    insertion_pad : int or None
        The padding the images were inserted at, when it differs from ``pad``
        (:meth:`unpadded`): the gridding apodisation is that of the insertion.
    background_sums : torch.Tensor or None, shape (6,)
        The pass's sums of the images' background level, not yet taken off (a distributed
        pass's share, until the shares are summed): :mod:`cryosplat.reconstruct.grid.background`.
        None once taken off (every statistics a fit or a file sees).
    left_out_rows : np.ndarray or None, shape (L,), int64
        The rows (of the particle set) the pass read and weighed 0 for the structure in their
        background (:mod:`cryosplat.reconstruct.grid.background_structure`), sorted; None where
        no limit was set.
    """

    weights: torch.Tensor
    data: torch.Tensor
    box: int
    pad: int
    pixel_size_angstrom: float
    n_particles: int
    power: torch.Tensor
    max_radius: float
    notes: list[str] = field(default_factory=list)
    insertion_pad: int | None = None
    background_sums: torch.Tensor | None = None
    left_out_rows: np.ndarray | None = field(default=None, compare=False)
    _shell_mean_weights: torch.Tensor | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _fsc_weights: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        size = padded_box(self.box, self.pad)
        self.power = torch.as_tensor(self.power, dtype=torch.float64).cpu()
        half = (size, size, size // 2 + 1)
        expected = {"weights": half, "data": half, "power": (int(self.max_radius**2) + 1,)}
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                got = tuple(getattr(self, name).shape)
                raise ValueError(
                    f"{name} has shape {got}, expected {shape} (box {self.box}, "
                    f"pad {self.pad}, max_radius {self.max_radius})"
                )
        if not self.data.is_complex() or self.weights.is_complex():
            raise ValueError("data must be complex and weights real")
        if not self.pixel_size_angstrom > 0:
            raise ValueError(f"pixel_size_angstrom must be positive: {self.pixel_size_angstrom}")

    @property
    def data_power(self) -> float:
        """``Σ_i Σ_k |Y_i(k)|²`` over the gathered frequencies."""
        return float(self.power.sum())

    @property
    def power_per_pixel(self) -> float:
        """The images' power per pixel, the mean over the images and the gathered frequencies
        (at the signal-to-noise ratios of particle images, their noise's power)."""
        pixels = int((squared_radius(self.box, 2) <= self.max_radius**2).sum())
        return self.data_power / (self.n_particles * max(pixels, 1))

    @property
    def padded_box(self) -> int:
        """``P = pad · box``."""
        return self.pad * self.box

    @property
    def resolution_limit_angstrom(self) -> float:
        """Finest resolution gathered: ``D · pixel / max_radius`` Å."""
        return self.box * self.pixel_size_angstrom / self.max_radius

    def _check_compatible(self, other: FourierStatistics) -> None:
        def key(st: FourierStatistics) -> tuple:
            return st.box, st.pad, round(st.pixel_size_angstrom, 6), round(st.max_radius, 6)

        if key(self) != key(other):
            raise ValueError(
                f"statistics differ in (box, pad, pixel, max_radius): {key(self)} vs {key(other)}"
            )

    def __add__(self, other: FourierStatistics) -> FourierStatistics:
        """Statistics of the union of two disjoint particle sets."""
        if not isinstance(other, FourierStatistics):
            return NotImplemented
        self._check_compatible(other)
        if (self.background_sums is None) != (other.background_sums is None):
            raise ValueError("statistics with their background taken off and without cannot add")
        return replace(
            self,
            weights=self.weights + other.weights.to(self.weights.device),
            data=self.data + other.data.to(self.data.device),
            n_particles=self.n_particles + other.n_particles,
            power=self.power + other.power,
            notes=self.notes + other.notes,
            background_sums=None
            if self.background_sums is None
            else self.background_sums + other.background_sums.to(self.background_sums.device),
            left_out_rows=joined_rows([self.left_out_rows, other.left_out_rows]),
        )

    def to(self, device: torch.device | str) -> FourierStatistics:
        """A copy on ``device``."""
        return replace(
            self,
            weights=self.weights.to(device),
            data=self.data.to(device),
            power=self.power.clone(),
            notes=list(self.notes),
        )

    def crop(self, box: int) -> FourierStatistics:
        """The statistics of the same particles downsampled to ``box`` (same physical extent).

        Keeps the frequencies inside the new limit ``min(max_radius, box/2 − 1/pad)`` (a
        frequency keeps its index, ``k / (D · pixel) = k / (box · pixel')``: a sphere on the
        central ``pad · box`` grid); the pixel size becomes ``pixel · D / box``. Values are
        rescaled to spectra of images downsampled by Fourier cropping with their pixel values kept
        (``B × (box/D)²``, power ``× (box/D)⁴``), so the cropped statistics define the same loss as
        images of that box would.

        Parameters
        ----------
        box : int
            New even box, at most the current one.
        """
        if box % 2 or box < 2 or box > self.box:
            raise ValueError(f"crop box must be even and in [2, {self.box}], got {box}")
        if box == self.box:
            return self
        size, small = self.padded_box, self.pad * box
        lo = size // 2 - small // 2
        region = (slice(lo, lo + small), slice(lo, lo + small), slice(0, small // 2 + 1))
        ratio = box / self.box
        limit = min(self.max_radius, default_max_radius(box, self.pad))
        weights = self.weights[region].clone(memory_format=torch.contiguous_format)
        data = self.data[region].clone(memory_format=torch.contiguous_format)
        # Zero past the limit a z-slab at a time: the crop's squared radii at once (int64) and
        # its masks cost twice the cropped statistics, at the start of every stage (+0.43 GB a
        # half at stage 3 of a box-200 fit; round 2, session 35).
        bound = (self.pad * limit) ** 2
        for rows, r2 in _centred_slabs(small, self.weights.device, torch.int64):
            inside = r2 <= bound
            weights[rows] *= inside
            data[rows] *= inside * ratio**2
        return replace(
            self,
            weights=weights,
            data=data,
            box=box,
            pixel_size_angstrom=self.pixel_size_angstrom / ratio,
            power=self.power[: int(limit**2) + 1] * ratio**4,
            max_radius=limit,
            notes=list(self.notes),
        )

    def mean_weight_by_shell(self) -> torch.Tensor:
        """Mean ``W`` over the half-grid points of each image-frequency shell ``0 … ⌊max_radius⌋``
        (:func:`shell_of`), float64 on the CPU; computed once per statistics object
        (a fit asks for it at every stage)."""
        if self._shell_mean_weights is None:
            total, count = self._shell_sums(lambda w: w, torch.ones_like)
            self._shell_mean_weights = total / count.clamp_min(1.0)
        return self._shell_mean_weights

    def fsc_weight_by_shell(
        self, regularization: float = DEFAULT_WIENER_REGULARIZATION
    ) -> torch.Tensor:
        """The ``W`` of each shell as the FSC of two such sets' direct inversions sees it, float64
        (CPU), shells ``0 … ⌊max_radius⌋``.

        Two halves inverted as :func:`wiener_inversion` does, ``D = B / (W + c)`` (``c``:
        :func:`wiener_constant`), hold at each point the signal times
        ``g = W / (W + c)`` and a noise of variance ``σ² W / (W + c)²``. For a signal of power
        ``S`` per point throughout a shell their FSC gives ``FSC / (1 − FSC) = (S / σ²) ·
        Σ W² / (W + c)² / Σ W / (W + c)²``: that ratio of sums, returned here, is the ``W`` that
        turns the FSC into the signal's power. With every direction sampled alike it is the
        shell's mean ``W`` (:meth:`mean_weight_by_shell`); where some directions hold most of
        the images (preferred orientation, or a real view distribution) the noise of the thinly
        sampled points fills the FSC's denominator and it is smaller, down to a fifth of the
        mean on the benchmarks' sets with 80–90 % of the views near one axis (a half of it
        with the real view distribution of the cryoSPARC job).
        """
        if regularization < 0:
            raise ValueError(f"regularization must be non-negative, got {regularization}")
        if regularization not in self._fsc_weights:  # once per statistics object, as the mean
            c = max(wiener_constant(self.weights, regularization), 1e-30)
            signal, noise = self._shell_sums(
                lambda w: (w / (w + c)).square_(), lambda w: w / (w + c).square_()
            )
            seen = torch.where(
                noise > 0, signal / noise.clamp_min(1e-300), self.mean_weight_by_shell()
            )
            self._fsc_weights[regularization] = seen
        return self._fsc_weights[regularization]

    def _shell_sums(self, *functions) -> tuple[torch.Tensor, ...]:
        """Per shell ``0 … ⌊max_radius⌋`` the sums over the half-grid points of ``f(W)`` for each
        function, float64 on the CPU."""
        n_shells = int(np.floor(self.max_radius)) + 1
        size, device = self.padded_box, self.weights.device
        # On the centred grid, a z-slab at a time (and no double copy of the whole W).
        sums = [torch.zeros(n_shells + 1, dtype=torch.float64, device=device) for _ in functions]
        for rows, r2 in _centred_slabs(size, device, torch.float64):
            shells = shell_of(r2, self.pad).clamp_max(n_shells).reshape(-1)
            values = self.weights[rows].double()
            for total, function in zip(sums, functions, strict=True):
                # index_add_, not bincount: PyTorch has a deterministic kernel for it
                total.index_add_(0, shells, function(values).reshape(-1))
        return tuple(total[:n_shells].cpu() for total in sums)

    def unpadded(self) -> FourierStatistics:
        """The same loss restated on the unpadded ``D`` grid (``pad = 1``), for a cheaper fit.

        For a map ``V`` of support ``D³`` the loss is ``Vᵀ(w ⊛ V) − 2 Vᵀb`` with ``b``, ``w`` the
        inverse transforms of ``B``, ``W`` on the padded grid. ``b`` is needed on the support
        only: it is cut there and transformed on ``D`` (the linear term is exact). ``w`` (the
        point-spread of the inserted slices) is needed at offsets up to ``±D``; on ``D`` it is cut
        to ``±D/2`` and wraps, so the coupling of voxels more than half a box apart is
        approximated (the CTF² kernel decays with distance), and its transform is clipped at 0
        so the loss stays convex in the map. Measured on the benchmark sets with every stage on
        it: FSC with the truth at 0.5 unchanged (±0.2 %), at 0.143 2–5 % coarser, the fit 2×
        faster at box 64-100 (at box 256 the padded transform is most of the fit's time and
        memory).
        """
        if self.pad == 1:
            return self
        box, size = self.box, self.padded_box
        near = torch.arange(-(box // 2), box - box // 2, device=self.weights.device)
        src, dst = near % size, near % box

        def cut(spectrum: torch.Tensor) -> torch.Tensor:
            values = centred_cropped_irfftn(spectrum, size, src) * (size / box) ** 3
            out = torch.empty((box,) * 3, dtype=values.dtype, device=values.device)
            out[dst[:, None, None], dst[None, :, None], dst[None, None, :]] = values
            del values
            return torch.fft.fftshift(torch.fft.rfftn(out), dim=(0, 1))

        weights = cut(self.weights.float()).real.clamp_min(0.0)
        data = cut(self.data.to(torch.complex64))
        # On the D grid the loss reads to D/2 − 1; a padded grid gathers further (D/2 − 1/pad),
        # and the data power past D/2 − 1 leaves with those frequencies.
        radius = min(self.max_radius, box / 2 - 1.0)
        return replace(
            self,
            weights=weights,
            data=data,
            power=self.power[: int(radius**2) + 1],
            pad=1,
            max_radius=radius,
            notes=list(self.notes),
            insertion_pad=self.insertion_pad or self.pad,
        )

    def reconstruct_wiener(
        self,
        regularization: float = DEFAULT_WIENER_REGULARIZATION,
        gridding_correction: bool = True,
    ) -> torch.Tensor:
        """Direct Fourier inversion ``V̂ = B / (W + λ)`` (a baseline like ``relion_reconstruct``).

        Parameters
        ----------
        regularization : float
            ``λ`` as a fraction of the mean of ``W`` over the gathered frequencies (a constant
            Wiener term; RELION instead uses the spectral SNR of an FSC).
        gridding_correction : bool
            Divide by the real-space apodisation of trilinear insertion.

        Returns
        -------
        torch.Tensor, shape (D, D, D), float64, density per Å³ times the image units per Å²
        (a projection of it matches the images).
        """
        return wiener_inversion([self], regularization, gridding_correction)

    def symmetrized(self, operators: ArrayLike) -> FourierStatistics:
        """The statistics of the ``|G|``-fold expanded set, by rotating the grids (exact).

        Inserting image ``i`` with pose ``A R_g`` puts its frequency ``K`` at ``R_gᵀ K``, so the
        expanded grids are ``Σ_g W(R_g K)`` and ``Σ_g B(R_g K)`` (RELION's ``symmetrise`` of its
        grids). Only for operators that are signed permutations of the axes (C2, C4, D2, D4, T, O
        ...): they move grid points onto grid points and trilinear weights with them, so this equals
        pose expansion while gathering to rounding. Points with ``R_g K`` in ``Kx < 0`` read the
        Friedel mate, conjugated. The data power is multiplied by ``|G|``.
        """
        ops = np.asarray(operators, dtype=np.float64)
        rounded = np.round(ops)
        if np.abs(ops - rounded).max() > 1e-9:
            raise ValueError("grid symmetrisation needs operators that permute the axes")
        size = self.padded_box
        device = self.weights.device
        half = size // 2 + 1
        kc = torch.arange(size, device=device, dtype=torch.int32) - size // 2
        # K = (Kx, Ky, Kz) as broadcast views of the half grid [z, y, x]
        axes = (
            torch.arange(half, device=device, dtype=torch.int32)[None, None, :],
            kc[None, :, None],
            kc[:, None, None],
        )
        flat_w, flat_b = self.weights.reshape(-1), self.data.reshape(-1)
        total_w = torch.zeros_like(flat_w)
        total_b = torch.zeros_like(flat_b)
        for op in rounded.astype(np.int64):
            # (R_g K)_a = ±K_b for the one non-zero op[a, b]
            src = [int(op[a].sum()) * axes[int(np.flatnonzero(op[a])[0])] for a in range(3)]
            mate = (src[0] < 0).expand(self.weights.shape)
            sx, sy, sz = (torch.where(mate, -c, c) for c in src)
            index = (((sz + size // 2) % size) * size + (sy + size // 2) % size) * half + sx
            index = index.reshape(-1).long()
            total_w += flat_w[index]
            values = flat_b[index]
            total_b += torch.where(mate.reshape(-1), values.conj(), values)
        return replace(
            self,
            weights=total_w.reshape(self.weights.shape),
            data=total_b.reshape(self.data.shape),
            power=self.power * len(ops),
            notes=list(self.notes),
        )

    def save(self, path: str | Path) -> None:
        """Write atomically as ``.npz`` (the fields as arrays, plus ``format`` and ``version``)."""
        if self.background_sums is not None:
            raise ValueError("take the background off (remove_background) before saving")
        arrays = {name: getattr(self, name) for name in _SAVED_FIELDS}
        arrays |= {n: getattr(self, n) for n in _OPTIONAL_FIELDS if getattr(self, n) is not None}
        arrays = {
            k: v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)
            for k, v in arrays.items()
        }
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, format=FORMAT_NAME, version=FORMAT_VERSION, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> FourierStatistics:
        """Read statistics written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: statistics file not found")
        convert = _SAVED_FIELDS
        try:
            with np.load(path, allow_pickle=False) as z:
                if "format" not in z or str(z["format"]) != FORMAT_NAME:
                    raise InputError(f"{path}: not a cryosplat Fourier-statistics file (.npz)")
                if int(z["version"]) > FORMAT_VERSION:
                    raise InputError(
                        f"{path}: statistics format version {int(z['version'])} is "
                        f"newer than this cryosplat ({FORMAT_VERSION})"
                    )
                fields = {name: f(z[name]) for name, f in convert.items()}
                fields |= {n: f(z[n]) for n, f in _OPTIONAL_FIELDS.items() if n in z}
                return cls(**fields)
        except (ValueError, OSError, KeyError) as exc:
            raise InputError(f"{path}: cannot read Fourier statistics ({exc})") from None


def joined_rows(parts: list[np.ndarray | None]) -> np.ndarray | None:
    """The union of ``parts`` (arrays of rows, or None), sorted; None where every part is."""
    given = [np.asarray(p, dtype=np.int64) for p in parts if p is not None]
    return np.unique(np.concatenate(given)) if given else None


def wiener_constant(weights: torch.Tensor, regularization: float) -> float:
    """The Wiener constant ``c`` of a direct inversion ``B / (W + c)``: ``regularization`` times
    the mean of ``W`` over the gathered (non-zero) frequencies (``W`` is a sum of squares)."""
    count = int(torch.count_nonzero(weights))
    return regularization * (float(weights.sum(dtype=torch.float64)) / count if count else 1.0)


def wiener_inversion(
    parts: list[FourierStatistics],
    regularization: float = DEFAULT_WIENER_REGULARIZATION,
    gridding_correction: bool = True,
) -> torch.Tensor:
    """:meth:`FourierStatistics.reconstruct_wiener` of the union of disjoint particle sets.

    The sums are made in two new grids, updated in place: at large boxes each padded grid is
    gigabytes, and ``(a + b).reconstruct_wiener()`` held twice the temporaries.
    """
    if regularization < 0:
        raise ValueError(f"regularization must be non-negative, got {regularization}")
    first = parts[0]
    weights, data = first.weights.clone(), first.data.clone()
    for other in parts[1:]:
        first._check_compatible(other)
        weights += other.weights.to(weights.device)
        data += other.data.to(data.device)
    # Where W is 0, B is 0 too (nothing was inserted there) and so is the quotient.
    lam = wiener_constant(weights, regularization)
    # On the real view: complex / real of the same shape takes PyTorch's complex division
    # (4-5× the time at box 256).
    torch.view_as_real(data).div_(weights.add_(lam).clamp_min_(1e-30)[..., None])
    del weights
    # In the statistics' own precision: at large boxes the padded transforms are most of the
    # memory, and single precision is ample for a map.
    volume = padded_ft_to_volume(data, first.box, first.pixel_size_angstrom, gridding_correction)
    return volume.double()
