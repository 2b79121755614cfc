"""Fourier shell correlation, resolution at a threshold, and the phase-randomisation correction.

Shells are the integer radii of the 3D transform (shell ``s`` holds frequencies with
``round(|k| · D · pixel) = s``), from 0 to ``D // 2`` (Nyquist). The resolution of shell ``s`` is
``D · pixel / s`` Å.

Sums over shells are taken on the real transform's half grid, uncentred (:func:`half_grid_shells`:
each Friedel pair once, counted twice): the FSC does not depend on where the origin is, and the
half grid holds half the values of the full complex one, with no shifted copies (at box 256 the
full-grid version spent most of a run's final minute in transforms and shifts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.fourier import squared_radius

__all__ = [
    "as_map_tensor",
    "cross_power",
    "fsc",
    "map_spectrum",
    "spectra_fsc",
    "shell_frequencies",
    "shell_resolutions",
    "crossing_shell",
    "half_map_equivalent",
    "resolution_at",
    "phase_randomize",
    "FSCResult",
    "masked_fsc",
    "masked_fscs",
    "half_grid_shells",
    "shell_sums",
    "power",
]


def half_grid_shells(
    box: int, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shell index and multiplicity of each point of the uncentred real-FFT half grid.

    The shell indices are made once per box and device and shared by every caller (a run asks
    for its box's a dozen times, 0.2 s each at box 256; kept as int32, 34 MB at box 256): read
    them, never write into them. The multiplicity is made anew.

    Returns
    -------
    shells : torch.Tensor, int32, shape (D, D, D//2 + 1)
        ``round(|k|)`` in pixels of the box.
    multiplicity : torch.Tensor, float64, same shape
        2 for points that stand for a Friedel pair, 1 on the ``kx = 0`` plane and, for an even
        box, the ``kx = D/2`` plane: sums weighted by it are those of the full grid.
    """
    device = torch.device("cpu" if device is None else device)
    shells = _half_grid_shell_index(int(box), str(device))
    multiplicity = torch.full(shells.shape, 2.0, dtype=torch.float64, device=device)
    multiplicity[..., 0] = 1.0
    if box % 2 == 0:
        multiplicity[..., box // 2] = 1.0
    return shells, multiplicity


@lru_cache(maxsize=2)  # a run's box (and one more)
def _half_grid_shell_index(box: int, device: str) -> torch.Tensor:
    r2 = squared_radius(box, 3, half=True, centred=False, device=device, dtype=torch.float64)
    return torch.round(r2.sqrt_()).to(torch.int32)


def shell_sums(
    values: torch.Tensor,
    grid: tuple[torch.Tensor, torch.Tensor],
    into: torch.Tensor | None = None,
) -> torch.Tensor:
    """Full-grid sums per shell 0..D//2 of ``values`` on the real-FFT half grid.

    Parameters
    ----------
    values : torch.Tensor, real, shape (D, D, D//2 + 1), or a slab (S, D, D//2 + 1) of it
    grid : (shells, multiplicity), :func:`half_grid_shells` of the box on ``values``' device,
        or the same slab of each
    into : torch.Tensor, float64, shape (D//2 + 2,), optional
        Sums to add to, in place (the last bin takes the corners past Nyquist): a grid's sums
        taken a slab at a time, in order, are those of the whole grid at once, to the bit.

    Returns
    -------
    torch.Tensor, float64, shape (D//2 + 1,); the corners past Nyquist are left out (a view of
    ``into`` where given).
    """
    shells, multiplicity = grid
    n = shells.shape[-1]  # D//2 + 1, the half axis
    # The corners past Nyquist go to an extra bin, dropped: no masked copy of the values (3x
    # faster at box 256, the same sums in the same order). int64 indices, as every device's
    # (deterministic) index_add_ takes them.
    index = shells.reshape(-1).long().clamp_max_(n)
    flat = values.reshape(-1).to(torch.float64) * multiplicity.reshape(-1)
    if into is None:
        into = torch.zeros(n + 1, dtype=torch.float64, device=values.device)
    return into.index_add_(0, index, flat)[:n]


def as_map_tensor(volume: torch.Tensor | ArrayLike) -> torch.Tensor:
    """A cubic map (array or tensor) as a float64 tensor, detached, on its own device."""
    t = torch.as_tensor(np.asarray(volume) if not torch.is_tensor(volume) else volume)
    if t.ndim != 3 or len(set(t.shape)) != 1:
        raise ValueError(f"maps must be cubic 3D arrays, got shape {tuple(t.shape)}")
    return t.detach().double()


def cross_power(
    x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor
) -> np.ndarray | torch.Tensor:
    """``Re(x · conj y)`` of two spectra (NumPy arrays or tensors), with no conjugated copy."""
    return x.real * y.real + x.imag * y.imag


def power(x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``|x|²`` of a spectrum (NumPy array or tensor), without the square root of ``abs``."""
    return x.real * x.real + x.imag * x.imag


def fsc(
    map_a: torch.Tensor | ArrayLike,
    map_b: torch.Tensor | ArrayLike,
    grid: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> np.ndarray:
    """FSC between two cubic maps of the same box.

    Parameters
    ----------
    map_a, map_b : array_like or torch.Tensor, shape (D, D, D)
        Computed in double precision on the device of ``map_a`` when it is a tensor (e.g. a
        GPU), else on the CPU.
    grid : (shells, multiplicity), optional
        :func:`half_grid_shells` of the box on that device, when the caller has it already.

    Returns
    -------
    np.ndarray, shape (D // 2 + 1,)
        Correlation per shell (shell 0 is the mean; it is 1 for maps of equal sign of mean).
    """
    fa = map_spectrum(map_a)
    return spectra_fsc(fa, map_spectrum(map_b, fa.device), grid)


def map_spectrum(
    volume: torch.Tensor | ArrayLike, device: torch.device | str | None = None
) -> torch.Tensor:
    """The real transform of a cubic map in double precision, for :func:`spectra_fsc`.

    Parameters
    ----------
    volume : array_like or torch.Tensor, shape (D, D, D)
    device : where to compute it; default: the volume's own (the CPU for an array).

    Returns
    -------
    torch.Tensor, complex128, shape (D, D, D // 2 + 1)
        Uncentred. The double-precision copy of the map made for it is freed on return, so a
        comparison holds spectra, not copies of its maps (at box 384, 0.45 GB each).
    """
    a = as_map_tensor(volume)
    return torch.fft.rfftn(a if device is None else a.to(device))


def spectra_fsc(
    spectrum_a: torch.Tensor,
    spectrum_b: torch.Tensor,
    grid: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> np.ndarray:
    """:func:`fsc` of two maps from their :func:`map_spectrum` (one map's spectrum can then serve
    several comparisons).

    The three sums per shell are taken a slab of the first axis at a time, in the order of the
    whole grid (the same sums, to the bit, as over the whole grid at once): no product the size
    of the spectra is made, where three were (0.7 GB at box 384).

    Parameters
    ----------
    spectrum_a, spectrum_b : torch.Tensor, complex, shape (D, D, D // 2 + 1), on one device
    grid : (shells, multiplicity), optional
        :func:`half_grid_shells` of the box on that device.

    Returns
    -------
    np.ndarray, shape (D // 2 + 1,)
    """
    if spectrum_a.shape != spectrum_b.shape:
        raise ValueError(
            f"maps differ in shape: {tuple(spectrum_a.shape)} vs {tuple(spectrum_b.shape)}"
        )
    box = spectrum_a.shape[0]
    shells, multiplicity = half_grid_shells(box, spectrum_a.device) if grid is None else grid
    n = box // 2 + 1
    sums = torch.zeros(3, n + 1, dtype=torch.float64, device=spectrum_a.device)
    step = max(1, _SLAB_POINTS // (box * n))
    for start in range(0, box, step):
        part = slice(start, start + step)
        slab = (shells[part], multiplicity[part])
        fa, fb = spectrum_a[part], spectrum_b[part]
        for row, values in enumerate((cross_power(fa, fb), power(fa), power(fb))):
            shell_sums(values, slab, into=sums[row])
    cross, pa, pb = sums[:, :n]
    denom = torch.sqrt(pa * pb)
    out = torch.where(denom > 0, cross / denom.clamp_min(1e-300), torch.zeros_like(cross))
    return out.cpu().numpy()


# Points of the half grid per slab in :func:`spectra_fsc` (64 MB of complex128 per spectrum).
_SLAB_POINTS = 1 << 22


def shell_frequencies(box: int, pixel_size_angstrom: float) -> np.ndarray:
    """Spatial frequency (1/Å) of each shell 0..D//2."""
    return np.arange(box // 2 + 1) / (box * pixel_size_angstrom)


def shell_resolutions(box: int, pixel_size_angstrom: float) -> np.ndarray:
    """Resolution (Å) of each shell 0..D//2 (``inf`` for shell 0)."""
    s = np.arange(box // 2 + 1, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(s > 0, box * pixel_size_angstrom / np.maximum(s, 1e-300), np.inf)


def crossing_shell(
    curve: np.ndarray, threshold: float, zero_frequency_counts: bool = False
) -> float | None:
    """The first (linearly interpolated) shell where ``curve`` falls below ``threshold``.

    Returns ``None`` when the curve never falls below it (the resolution is at least Nyquist).
    The zero frequency (shell 0, the maps' means, which images normalised to a zero background
    do not hold) is not read, unless ``zero_frequency_counts``: then a curve already under the
    threshold there crosses at 0 (a window of solvent,
    :mod:`cryosplat.validation.local_resolution`).
    """
    c = np.asarray(curve, dtype=np.float64)
    if zero_frequency_counts and c.size and c[0] < threshold:
        return 0.0
    below = np.flatnonzero(c[1:] < threshold) + 1
    if below.size == 0:
        return None
    s = int(below[0])
    c0, c1 = c[s - 1], c[s]
    if c0 < threshold:  # shell 1 under it, and the zero frequency too: no crossing to place
        return 0.0
    frac = 0.0 if c0 == c1 else (c0 - threshold) / (c0 - c1)
    return float(s - 1 + frac)


def half_map_equivalent(map_vs_truth: ArrayLike) -> np.ndarray:
    """The half-map FSC ``F`` of which ``map_vs_truth`` is the map's FSC against the truth:
    ``C = sqrt(2F / (1 + F))`` (Rosenthal & Henderson 2003), so ``F = C² / (2 − C²)``, its sign
    kept. ``F`` crosses 0.143 where ``C`` crosses 0.5."""
    c = np.clip(np.asarray(map_vs_truth, dtype=np.float64), -1.0, 1.0)
    return c * np.abs(c) / (2.0 - c * c)


def resolution_at(
    curve: np.ndarray,
    threshold: float,
    box: int,
    pixel_size_angstrom: float,
    zero_frequency_counts: bool = False,
) -> float:
    """Resolution (Å) where the FSC first falls below ``threshold``; Nyquist if it never does.

    Infinite where it falls below already at the first shell (the box's edge): the crossing
    interpolated between the zero frequency and that shell would be a "resolution" coarser than
    the box, which no shell holds; and with ``zero_frequency_counts`` where it is under the
    threshold at the zero frequency (:func:`crossing_shell`)."""
    s = crossing_shell(curve, threshold, zero_frequency_counts)
    if s is None:
        return 2.0 * pixel_size_angstrom
    if s < 1:
        return float("inf")
    return float(box * pixel_size_angstrom / s)


def phase_randomize(
    volume: torch.Tensor | ArrayLike,
    from_shell: int,
    seed: int = 0,
    grid: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Randomise the Fourier phases of ``volume`` beyond shell ``from_shell``, keeping Friedel symmetry.

    Used for the phase-randomisation test of masking effects (Chen et al. 2013).
    """
    v = as_map_tensor(volume)
    box = v.shape[0]
    ft = torch.fft.rfftn(v)
    gen = torch.Generator().manual_seed(seed)
    # Drawn on the CPU whatever the map's device, so that a seed gives the same phases anywhere.
    noise = torch.rand(v.shape, generator=gen, dtype=torch.float64).to(v.device)
    # The phase of a real random field's transform is Hermitian and uniform: take it from one.
    # (Map and noise both uncentred: the same as both centred, since a common shift multiplies
    # the two transforms by the same phase ramp.)
    phase = torch.angle(torch.fft.rfftn(noise - noise.mean()))
    shells = (half_grid_shells(box, v.device) if grid is None else grid)[0]
    randomized = torch.where(shells > from_shell, ft.abs() * torch.exp(1j * phase), ft)
    return torch.fft.irfftn(randomized, s=v.shape)


@dataclass
class FSCResult:
    """FSC curves of two half maps and their resolutions.

    Attributes
    ----------
    shells_resolution_angstrom : per-shell resolution (Å), ``inf`` at shell 0
    unmasked, masked, randomized, corrected : FSC curves (D//2+1,)
    resolution_angstrom : resolution at 0.143 of the corrected masked curve
    curves : any further curves by name (e.g. against a reference)
    """

    box: int
    pixel_size_angstrom: float
    unmasked: np.ndarray
    masked: np.ndarray
    randomized: np.ndarray
    corrected: np.ndarray
    randomize_from_shell: int
    curves: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def shells_resolution_angstrom(self) -> np.ndarray:
        return shell_resolutions(self.box, self.pixel_size_angstrom)

    def resolution(self, curve: str = "corrected", threshold: float = 0.143) -> float:
        c = self.curves[curve] if curve in self.curves else getattr(self, curve)
        return resolution_at(c, threshold, self.box, self.pixel_size_angstrom)

    def to_dict(self) -> dict:
        out = {
            "box": self.box,
            "pixel_size_angstrom": self.pixel_size_angstrom,
            "shell": list(range(self.box // 2 + 1)),
            "resolution_angstrom": [
                None if not np.isfinite(r) else float(r) for r in self.shells_resolution_angstrom
            ],
            "randomize_from_shell": self.randomize_from_shell,
            "fsc": {
                name: [float(x) for x in getattr(self, name)]
                for name in ("unmasked", "masked", "randomized", "corrected")
            },
            "resolution_0143_angstrom": {
                name: self.resolution(name) for name in ("unmasked", "masked", "corrected")
            },
        }
        for name, c in self.curves.items():
            out["fsc"][name] = [float(x) for x in c]
        return out


def masked_fsc(
    half_a: torch.Tensor | ArrayLike,
    half_b: torch.Tensor | ArrayLike,
    mask: torch.Tensor | ArrayLike,
    pixel_size_angstrom: float,
    seed: int = 0,
) -> FSCResult:
    """Gold-standard FSC of two half maps with a mask and the phase-randomisation correction.

    Phases are randomised beyond the shell where the unmasked FSC first falls below 0.8; the
    corrected curve is ``(FSC_masked − FSC_randomized) / (1 − FSC_randomized)`` beyond it.
    """
    return masked_fscs(half_a, half_b, [mask], pixel_size_angstrom, seed)[0]


def masked_fscs(
    half_a: torch.Tensor | ArrayLike,
    half_b: torch.Tensor | ArrayLike,
    masks: Iterable[torch.Tensor | ArrayLike],
    pixel_size_angstrom: float,
    seed: int = 0,
) -> list[FSCResult]:
    """:func:`masked_fsc` of the same half maps under several masks (list of FSCResult); the
    unmasked FSC and the phase-randomised maps, which do not depend on the mask, are made once."""
    a = as_map_tensor(half_a)
    b = as_map_tensor(half_b).to(a.device)
    box = a.shape[0]
    grid = half_grid_shells(box, a.device)
    unmasked = fsc(a, b, grid)
    cut = crossing_shell(unmasked, 0.8)
    from_shell = int(np.floor(cut)) if cut is not None else box // 2
    from_shell = max(from_shell, 2)
    ra = phase_randomize(a, from_shell, seed, grid)
    rb = phase_randomize(b, from_shell, seed + 1, grid)
    results = []
    for mask in masks:
        m = as_map_tensor(mask).to(a.device)
        masked = fsc(a * m, b * m, grid)
        randomized = fsc(ra * m, rb * m, grid)
        corrected = masked.copy()
        tail = np.arange(masked.size) > from_shell
        denom = np.where(np.abs(1.0 - randomized) < 1e-6, 1e-6, 1.0 - randomized)
        corrected[tail] = ((masked - randomized) / denom)[tail]
        results.append(
            FSCResult(
                box,
                float(pixel_size_angstrom),
                unmasked,
                masked,
                randomized,
                corrected,
                from_shell,
            )
        )
    return results
