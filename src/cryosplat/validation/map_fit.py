"""A map turned and moved onto a reference (rigid-body fit), as ChimeraX's ``fitmap`` fits one,
so that maps of one molecule in different frames can be compared by their FSC.

Two maps of one molecule refined by different programs, or a deposited map and one's own, seldom
share a frame: the molecule is turned and moved between them. :func:`fit_map` finds the rotation
``R`` and shift ``t`` for which the moved map ``V'(x) = V(Rᵀ(x − t))`` (``x`` about voxel
``D // 2``) correlates best with the reference:

1. **a global search** on both maps Fourier-cropped to :data:`SEARCH_BOX` voxels and low-passed
   to a third of that grid's Nyquist: :data:`SEARCH_ROTATIONS` rotations spread evenly over SO(3)
   (a super-Fibonacci sequence), each with its best shift from one FFT cross-correlation;
2. **local refinements** (a rotation and a shift, L-BFGS on the correlation through trilinear
   sampling): of the :data:`CANDIDATES` best on the search's grid, then of the best of them on
   both maps at up to :data:`REFINE_BOX` voxels, low-passed to :data:`REFINE_LOWPASS` of that
   grid's Nyquist.

:func:`move_map` then moves the map at its own box, sampled from the map Fourier-upsampled two or
three times (trilinear interpolation on the finer grid damps the finest shells far less than on
the map's own).

A map of the other hand has no rotation onto the reference; :func:`fit_map` fits its mirror image
as well, so the caller can say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cryosplat.core.conventions import mirrored_map
from cryosplat.core.resample import resample_volume
from cryosplat.core.rotations import quaternion_to_matrix
from cryosplat.validation.masks import lowpass

__all__ = [
    "FittedMaps",
    "MapFit",
    "fit_map",
    "fit_onto_reference",
    "move_map",
    "super_fibonacci_rotations",
]

# The global search's grid (voxels), its low-pass (share of its Nyquist where the amplitude
# halves), its rotations (about 11° apart) and how many are refined on that grid.
SEARCH_BOX = 24
SEARCH_LOWPASS = 1 / 3
SEARCH_ROTATIONS = 4000
CANDIDATES = 8
# The last refinement's grid at most (voxels), its low-pass and each refinement's steps.
REFINE_BOX = 96
REFINE_LOWPASS = 0.7
REFINE_STEPS = 40
# The moved map is sampled from the map upsampled three times, or twice where that grid would
# exceed this many voxels a side (a round trip of EMD-5625 at box 56 keeps an FSC of 0.96 at
# Nyquist at three times, 0.86 at twice, 0.23 on its own grid).
MAX_UPSAMPLED_BOX = 480
# A mirror image whose correlation exceeds the map's by this much is named (both are the same
# data, fitted alike: the right hand never fits worse than its mirror image, whatever the noise).
HAND_MARGIN = 0.01
# Rotations are tried in batches of this many.
BATCH = 64


@dataclass(frozen=True)
class MapFit:
    """A rigid-body fit of a map onto a reference.

    Attributes
    ----------
    rotation : np.ndarray, shape (3, 3)
        ``R`` of ``V'(x) = V(Rᵀ(x − t))``, acting on (x, y, z).
    shift_angstrom : np.ndarray, shape (3,)
        ``t`` (Å; x, y, z).
    correlation_before, correlation : float
        The map's correlation with the reference as given and moved, on the refinement's grid
        and low-pass.
    mirrored_correlation : float
        The same, moved, for its mirror image (z reversed about the box centre), fitted alike: a
        map of the other hand fits better as its mirror image.
    contrast : int
        1, or -1 for a map that fits as its negative (inverted contrast); the correlations are
        those of the map times this.
    """

    rotation: np.ndarray
    shift_angstrom: np.ndarray
    correlation_before: float
    correlation: float
    mirrored_correlation: float
    contrast: int = 1

    def angle_degrees(self) -> float:
        """The rotation's angle (degrees)."""
        cosine = (float(np.trace(self.rotation)) - 1) / 2
        return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))

    def to_json(self) -> dict:
        """The fit as a dict for JSON."""
        return {
            "rotation": np.asarray(self.rotation).tolist(),
            "shift_angstrom": np.asarray(self.shift_angstrom).tolist(),
            "angle_degrees": self.angle_degrees(),
            "axis": self.axis().tolist(),
            "correlation_before": self.correlation_before,
            "correlation": self.correlation,
            "mirrored_correlation": self.mirrored_correlation,
            "contrast": self.contrast,
        }

    def axis(self) -> np.ndarray:
        """The rotation's unit axis (x, y, z)."""
        r = np.asarray(self.rotation, dtype=np.float64)
        skew = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
        if np.linalg.norm(skew) > 1e-6:
            return skew / np.linalg.norm(skew)
        values, vectors = np.linalg.eigh((r + r.T) / 2)  # no turn, or a half turn
        return vectors[:, int(np.argmax(values))]


def super_fibonacci_rotations(n: int) -> np.ndarray:
    """``n`` rotations spread evenly over SO(3) (Alexa's super-Fibonacci spirals), (n, 3, 3)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    phi, psi = math.sqrt(2.0), 1.533751168755204288118041
    s = np.arange(n) + 0.5
    r, big_r = np.sqrt(s / n), np.sqrt(1.0 - s / n)
    alpha, beta = 2 * np.pi * s / phi, 2 * np.pi * s / psi
    q = np.stack([r * np.sin(alpha), r * np.cos(alpha), big_r * np.sin(beta), big_r * np.cos(beta)])
    return quaternion_to_matrix(torch.from_numpy(q.T.copy())).numpy()


def _centred_grid(box: int, dtype: torch.dtype) -> torch.Tensor:
    """Voxel positions about voxel ``D // 2``, (D, D, D, 3) as (x, y, z) of ``volume[z, y, x]``."""
    axis = torch.arange(box, dtype=dtype) - box // 2
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def _sample(volume: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Trilinear samples of ``volume`` (D, D, D) at positions (B, ..., 3) about voxel ``D // 2``
    (voxels, x y z); zero outside."""
    box = volume.shape[-1]
    index = positions + box // 2
    normalised = 2 * index / (box - 1) - 1
    batch = positions.shape[0]
    grid = normalised.reshape(batch, -1, 1, 1, 3)
    source = volume[None, None].expand(batch, 1, *volume.shape)
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(positions.shape[:-1])


def _moved(volume: torch.Tensor, rotations: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """``V(Rᵀ(x − t))`` for each rotation (B, 3, 3) and shift (B, 3) in voxels, (B, D, D, D)."""
    grid = _centred_grid(volume.shape[-1], volume.dtype)
    relative = grid[None] - shifts[:, None, None, None, :]
    # Rᵀ v for row vectors v is v R.
    return _sample(volume, torch.einsum("bzyxi,bij->bzyxj", relative, rotations))


def _lowpassed(volume: np.ndarray, pixel_angstrom: float, box: int, share: float) -> torch.Tensor:
    """The map on ``box`` voxels of the same extent, its mean taken off and low-passed (Gaussian)
    so that its amplitude halves at ``share`` of that grid's Nyquist; unit norm."""
    pixel_small = pixel_angstrom * volume.shape[0] / box
    small = resample_volume(volume, pixel_angstrom, box, pixel_small)
    # Halved at share × Nyquist = share / 2 cycles per voxel: a period of 2 / share voxels.
    t = torch.from_numpy(lowpass(small, 2.0 * pixel_small / share, pixel_small))
    t = t - t.mean()
    return t / t.norm().clamp_min(1e-30)


def _search(
    reference: torch.Tensor, volume: torch.Tensor
) -> list[tuple[float, np.ndarray, np.ndarray, float]]:
    """The best (|correlation|, rotation, shift in voxels, sign of the correlation) of
    :data:`SEARCH_ROTATIONS` rotations, each with its best circular shift; the
    :data:`CANDIDATES` best. A map of inverted contrast correlates best negatively."""
    box = reference.shape[-1]
    ref_spectrum = torch.fft.rfftn(reference).conj()
    rotations = torch.from_numpy(super_fibonacci_rotations(SEARCH_ROTATIONS)).to(volume.dtype)
    # Written in place: nothing small is allocated between the batches' large buffers, which
    # would keep the heap from shrinking (2.4 GB after a search of 4,000 turns, 0.4 without).
    score = torch.empty(len(rotations), dtype=volume.dtype)
    peak = torch.empty(len(rotations), dtype=torch.long)
    for start in range(0, len(rotations), BATCH):
        batch = rotations[start : start + BATCH]
        turned = _moved(volume, batch, torch.zeros(len(batch), 3, dtype=volume.dtype))
        norms = turned.flatten(1).norm(dim=1).clamp_min(1e-30)
        cc = torch.fft.irfftn(torch.fft.rfftn(turned, dim=(1, 2, 3)) * ref_spectrum, s=(box,) * 3)
        where = cc.flatten(1).abs().argmax(dim=1)
        score[start : start + len(batch)] = cc.flatten(1).gather(1, where[:, None])[:, 0] / norms
        peak[start : start + len(batch)] = where
    found = []
    for k in torch.argsort(score.abs(), descending=True)[:CANDIDATES].tolist():
        z, y, x = np.unravel_index(int(peak[k]), (box,) * 3)
        # cc[d] = Σ ref(x) turned(x + d): the turned map moved by −d matches the reference.
        shift = -((np.array([x, y, z]) + box // 2) % box - box // 2)
        sign = 1.0 if float(score[k]) >= 0 else -1.0
        found.append(
            (abs(float(score[k])), rotations[k].double().numpy(), shift.astype(np.float64), sign)
        )
    return found


def _refine(
    reference: torch.Tensor, volume: torch.Tensor, rotation: np.ndarray, shift: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """L-BFGS from one candidate: (correlation, rotation, shift in voxels)."""
    dtype = volume.dtype
    base = torch.as_tensor(rotation, dtype=dtype)[None]
    turn = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype, requires_grad=True)
    move = torch.tensor(shift[None], dtype=dtype, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [turn, move], max_iter=REFINE_STEPS, line_search_fn="strong_wolfe"
    )

    def correlation() -> torch.Tensor:
        moved = _moved(volume, quaternion_to_matrix(turn) @ base, move)[0]
        return (moved * reference).sum() / moved.norm().clamp_min(1e-30)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = -correlation()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        score = float(correlation())
        final = (quaternion_to_matrix(turn) @ base)[0].double().numpy()
    return score, final, move.detach()[0].double().numpy()


def _coarse_fit(
    ref: torch.Tensor, volume: np.ndarray, pixel_angstrom: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """The search and each candidate refined on the search's grid, ``ref`` the reference made
    ready for it (:func:`_lowpassed`; the map times the sign it correlates with): (rotation,
    shift in that grid's voxels, sign) of the best."""
    vol = _lowpassed(volume, pixel_angstrom, ref.shape[0], SEARCH_LOWPASS).float()
    refined = [(*_refine(ref, sign * vol, r, t), sign) for _, r, t, sign in _search(ref, vol)]
    return max(refined, key=lambda r: r[0])[1:]


def fit_map(reference: np.ndarray, volume: np.ndarray, pixel_size_angstrom: float) -> MapFit:
    """The rotation and shift that move ``volume`` onto ``reference`` (module docstring).

    Parameters
    ----------
    reference, volume : np.ndarray, shape (D, D, D)
        Two maps on one grid (resampled onto it first where they were not).
    pixel_size_angstrom : float

    Returns
    -------
    MapFit
    """
    reference, volume = np.asarray(reference), np.asarray(volume)
    if reference.shape != volume.shape or reference.ndim != 3 or len(set(volume.shape)) != 1:
        raise ValueError(f"maps of one cubic grid needed, got {reference.shape} and {volume.shape}")
    if not pixel_size_angstrom > 0:
        raise ValueError(f"pixel_size_angstrom must be positive, got {pixel_size_angstrom}")
    box = volume.shape[0]
    mirror = mirrored_map(volume)
    refine_box = min(box, REFINE_BOX)
    scale = refine_box / min(box, SEARCH_BOX)  # search voxels to refinement voxels
    ref = _lowpassed(reference, pixel_size_angstrom, refine_box, REFINE_LOWPASS).float()
    coarse_ref = _lowpassed(reference, pixel_size_angstrom, min(box, SEARCH_BOX), SEARCH_LOWPASS)
    fits = []
    for moving in (volume, mirror):
        rotation, shift, sign = _coarse_fit(coarse_ref.float(), moving, pixel_size_angstrom)
        vol = sign * _lowpassed(moving, pixel_size_angstrom, refine_box, REFINE_LOWPASS).float()
        refined = _refine(ref, vol, rotation, shift * scale)
        fits.append((float((ref * vol).sum()), *refined, sign))
    (before, after, rotation, shift, sign), mirrored = fits
    refine_pixel = pixel_size_angstrom * box / refine_box
    return MapFit(rotation, shift * refine_pixel, before, after, mirrored[1], int(sign))


def move_map(volume: np.ndarray, fit: MapFit, pixel_size_angstrom: float) -> np.ndarray:
    """``volume`` moved by ``fit`` at its own grid: ``V(Rᵀ(x − t))``, sampled trilinearly from the
    map Fourier-upsampled two or three times (:data:`MAX_UPSAMPLED_BOX`); float32 (D, D, D), zero
    where ``Rᵀ(x − t)`` leaves the box."""
    box = volume.shape[0]
    up = max(2, min(3, MAX_UPSAMPLED_BOX // box))
    fine = resample_volume(volume, pixel_size_angstrom, up * box, pixel_size_angstrom / up)
    source = torch.from_numpy(fine)  # float32 already: no copy of the largest array
    rotation = torch.from_numpy(np.asarray(fit.rotation, dtype=np.float32))
    shift = torch.from_numpy(np.asarray(fit.shift_angstrom, dtype=np.float32)) / pixel_size_angstrom
    out = np.empty((box,) * 3, dtype=np.float32)
    grid = _centred_grid(box, torch.float32)
    for z in range(0, box, 16):  # slabs: bounded memory at large boxes
        positions = (grid[z : z + 16] - shift) @ rotation * up
        out[z : z + 16] = _sample(source, positions[None])[0].numpy()
    return out


@dataclass(frozen=True)
class FittedMaps:
    """Maps moved onto a reference, with what was done to each.

    Attributes
    ----------
    volumes : list of np.ndarray, each (D, D, D)
        The maps moved (the reference and atomic models' maps as given).
    fits : list of MapFit or None
        Each map's fit (None for the reference and models).
    notes : tuple of str
        One line per fitted map, and a warning where its mirror image fits better.
    """

    volumes: list[np.ndarray]
    fits: list[MapFit | None]
    notes: tuple[str, ...]


def fit_onto_reference(
    volumes: list[np.ndarray],
    names: list[str],
    fitted: list[bool],
    pixel_size_angstrom: float,
    progress: Callable[[str], None] | None = None,
) -> FittedMaps:
    """Each map after the first (the reference) for which ``fitted`` holds, moved onto it.

    Parameters
    ----------
    volumes : list of np.ndarray, each (D, D, D)
        The reference first.
    names : list of str
        The maps' names, for the notes.
    fitted : list of bool
        Which maps to fit (not the reference, nor an atomic model drawn in the map's frame).
    pixel_size_angstrom : float
    progress : callable, optional
        Called with a line as each fit starts (each takes seconds; a minute at box 384).
    """
    out, fits, notes = [volumes[0]], [None], []
    for volume, name, wanted in zip(volumes[1:], names[1:], fitted[1:], strict=True):
        if not wanted:
            out.append(volume)
            fits.append(None)
            continue
        if progress is not None:
            progress(f"fitting {name} onto {names[0]} (its mirror image too) ...")
        fit = fit_map(volumes[0], volume, pixel_size_angstrom)
        out.append(move_map(volume, fit, pixel_size_angstrom))
        fits.append(fit)
        axis = ", ".join(f"{a:.2f}" for a in fit.axis())
        shift = ", ".join(f"{s:.1f}" for s in fit.shift_angstrom)
        notes.append(
            f"{name}: fitted onto {names[0]}: turned {fit.angle_degrees():.1f}° about ({axis}), "
            f"moved ({shift}) Å (x, y, z); correlation {fit.correlation_before:.3f} → "
            f"{fit.correlation:.3f} (low-passed)"
        )
        if fit.contrast < 0:
            notes.append(
                f"warning: {name}: fits {names[0]} with its contrast inverted (protein dark in one "
                "of the two: multiply it by -1); its FSC is read as given, negative"
            )
        if fit.mirrored_correlation > fit.correlation + HAND_MARGIN:
            notes.append(
                f"warning: {name}: its mirror image fits {names[0]} better than the map does "
                f"(correlation {fit.mirrored_correlation:.3f} against {fit.correlation:.3f}, "
                "both fitted and low-passed): the two maps are of opposite hands (flip one, e.g. "
                "relion_image_handler --invert_hand, and compare again)"
            )
    return FittedMaps(out, fits, tuple(notes))
