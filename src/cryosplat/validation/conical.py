"""Resolution by direction: the FSC of two half maps over the Fourier samples in cones.

With preferred views a map is resolved unevenly: the directions of Fourier space that few views
sample hold little signal. The FSC of the two data half maps (direct inversions of the half
sets) over the samples within ``half_angle_degrees`` of a direction ``n`` (either sign, as a
real map's transform is Friedel-symmetric) measures what the data hold along ``n``, as
cryoSPARC's conical FSC and 3DFSC do; a uniform set of directions on the half sphere gives the
finest and the coarsest of them. Views that leave directions thinly sampled make them uneven, and
so does the molecule's own shape (an elongated one holds less signal along its length: 8ZPM
with uniform views, the demo, 4.4 to 7.0 Å). A sample at frequency ``k`` lies in the cone when
``|k · n| ≥ |k| cos(half_angle)``; the sums are the full grid's (each Friedel pair of the real
transform's half grid counted twice, :func:`~cryosplat.validation.fsc.half_grid_shells`) and are
pooled over neighbouring shells as the cross-validation pools them
(:func:`~cryosplat.validation.crossval.pool_width`): a cone of 30° holds 13 % of a shell.

A direction no view samples holds almost nothing in the data's inversion (shrunk toward zero by
its Wiener constant), and the little that leaks into it from the sampled directions is the same in
both halves: from the first shell where a cone of :data:`MIN_CONE_SAMPLES` or more samples holds
under :data:`EMPTY_CONE_POWER` of the median cone's power per sample at that shell, the direction
is read as holding nothing.

Directions are ``(x, y, z)`` unit vectors in the map's frame (the map's array is ``[z, y, x]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.fourier import frequency_axes
from cryosplat.validation.crossval import pool_width
from cryosplat.validation.fsc import (
    as_map_tensor,
    cross_power,
    half_grid_shells,
    power,
    resolution_at,
)
from cryosplat.validation.shell_terms import pool_shells

__all__ = [
    "DEFAULT_HALF_ANGLE_DEGREES",
    "DEFAULT_DIRECTIONS",
    "DirectionalResolution",
    "half_sphere_directions",
    "conical_fsc",
    "directional_resolution",
    "EMPTY_CONE_POWER",
    "MIN_CONE_SAMPLES",
]

DEFAULT_HALF_ANGLE_DEGREES = 30.0  # a cone's half angle (13 % of a shell's samples)
DEFAULT_DIRECTIONS = 24  # cone axes on the half sphere (~20° apart: every direction within a cone)
THRESHOLD = 0.143  # the data half maps' FSC threshold each direction is read at
# A cone holding under this share of the median cone's power per sample at its shell holds
# (almost) nothing of the data: a direct inversion shrinks what no view samples toward zero, and
# the FSC of what is left there is the same leakage in both halves (the gridding correction and the
# mask spread the sampled directions' signal into it). The median, not the mean: a few thinly
# sampled cones whose noise the inversion amplifies would raise the mean over every other cone.
# Measured where a cone holds MIN_CONE_SAMPLES or more (from shell 3 at these boxes; fewer samples
# make the share too noisy to read): with every view within 10° of one axis the cone about it
# falls under 1 % (its FSC 0.93-0.99 at shells 4-16), with no view past 60° of tilt (a missing
# cone of 30°) the cone about z to 4.5 %; every cone of the other 52 dumped benchmark sets holds
# 21 % or more.
EMPTY_CONE_POWER = 0.1
MIN_CONE_SAMPLES = 100  # full-grid samples (pooled) a cone needs for its share to be read


def half_sphere_directions(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors ``(x, y, z)`` with ``z ≥ 0`` (a Fibonacci lattice), (n, 3).

    The first is the ``z`` axis; a direction and its opposite are the same cone.
    """
    if n < 1:
        raise ValueError(f"the number of directions must be at least 1, got {n}")
    i = np.arange(n, dtype=np.float64)
    z = 1.0 - i / n  # heights spread evenly over (0, 1]: equal areas of the half sphere
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    phi = i * math.pi * (3.0 - math.sqrt(5.0))  # the golden angle
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _unit_frequencies(box: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The real-FFT half grid's frequency components ``(kx, ky, kz)`` divided by ``|k|`` (0 at
    the origin), each (D, D, D//2 + 1)."""
    axes = [a.double() for a in frequency_axes(box, 3, half=True, centred=False, device=device)]
    kz, ky, kx = torch.meshgrid(*axes, indexing="ij")
    norm = torch.sqrt(kx * kx + ky * ky + kz * kz).clamp_min_(1e-12)
    return kx / norm, ky / norm, kz / norm


def _maps(map_a, map_b, mask) -> tuple[torch.Tensor, torch.Tensor]:
    """The two maps as float64 tensors on ``map_a``'s device, times ``mask``; checked."""
    if tuple(np.shape(map_a)) != tuple(np.shape(map_b)):
        raise ValueError(
            f"maps must be cubes of one shape, got {tuple(np.shape(map_a))} and "
            f"{tuple(np.shape(map_b))}"
        )
    a = as_map_tensor(map_a)
    b = as_map_tensor(map_b).to(a.device)
    if mask is not None:
        m = as_map_tensor(mask).to(a.device)
        a, b = a * m, b * m
    return a, b


def _cone_sums(a, b, directions, half_angle_degrees: float, pool: int | None) -> np.ndarray:
    """Per direction and shell, the pooled full-grid sums ``Re(A·conj B)``, ``|A|²``, ``|B|²`` and
    the sample count over the cone (n + 1, 4, D//2 + 1); the last row the whole shells'."""
    if not 0.0 < half_angle_degrees <= 90.0:
        raise ValueError(f"half_angle_degrees must be in (0, 90], got {half_angle_degrees}")
    dirs = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    lengths = np.linalg.norm(dirs, axis=1)
    if dirs.shape[0] == 0 or np.any(lengths == 0):
        raise ValueError("directions must be one or more non-zero (x, y, z) vectors")
    dirs = dirs / lengths[:, None]
    box = a.shape[0]
    n_shells = box // 2 + 1
    fa, fb = torch.fft.rfftn(a), torch.fft.rfftn(b)
    shells, multiplicity = half_grid_shells(box, a.device)
    inside = shells.reshape(-1) <= box // 2  # the corners past Nyquist are left out
    index = shells.reshape(-1)[inside].long()
    weight = multiplicity.reshape(-1)[inside]
    terms = [t.reshape(-1)[inside] * weight for t in (cross_power(fa, fb), power(fa), power(fb))]
    terms.append(weight)
    ux, uy, uz = (u.reshape(-1)[inside] for u in _unit_frequencies(box, a.device))
    cosine = math.cos(math.radians(half_angle_degrees))
    pool = pool_width(box) if pool is None else pool
    out = np.zeros((dirs.shape[0] + 1, len(terms), n_shells))
    for i, direction in enumerate([*dirs, None]):
        if direction is None:  # the whole shells
            cone = torch.ones_like(index, dtype=torch.bool)
        else:
            x, y, z = direction
            cone = (ux * x + uy * y + uz * z).abs_() >= cosine - 1e-12
            cone[index == 0] = True  # the origin belongs to every direction
        for j, t in enumerate(terms):
            sums = torch.zeros(n_shells, dtype=torch.float64, device=a.device)
            out[i, j] = pool_shells(sums.index_add_(0, index[cone], t[cone]).cpu().numpy(), pool)
    return out


def _fsc_of_sums(sums: np.ndarray) -> np.ndarray:
    denom = np.sqrt(sums[..., 1, :] * sums[..., 2, :])
    return np.where(denom > 0, sums[..., 0, :] / np.maximum(denom, 1e-300), 0.0)


def conical_fsc(
    map_a: torch.Tensor | ArrayLike,
    map_b: torch.Tensor | ArrayLike,
    directions: np.ndarray,
    half_angle_degrees: float = DEFAULT_HALF_ANGLE_DEGREES,
    mask: torch.Tensor | ArrayLike | None = None,
    pool: int | None = None,
) -> np.ndarray:
    """FSC of two maps over the Fourier samples within ``half_angle_degrees`` of each direction.

    Parameters
    ----------
    map_a, map_b : (D, D, D) arrays or tensors (a tensor's device is used)
    directions : (n, 3) array of ``(x, y, z)`` (normalised here)
    half_angle_degrees : float, in (0, 90]
    mask : (D, D, D), optional
        Applied to both maps first (e.g. the soft sphere).
    pool : int, optional
        Shells pooled on each side; default :func:`~cryosplat.validation.crossval.pool_width`.

    Returns
    -------
    np.ndarray, (n, D//2 + 1): one curve per direction (shell 0 is the mean's sign, as
    :func:`~cryosplat.validation.fsc.fsc`).
    """
    a, b = _maps(map_a, map_b, mask)
    return _fsc_of_sums(_cone_sums(a, b, directions, half_angle_degrees, pool)[:-1])


@dataclass
class DirectionalResolution:
    """The data half maps' resolution (FSC 0.143) along each of ``directions`` (n, 3), and the
    curves it is read on (n, D//2 + 1; −1 where a cone holds nothing)."""

    directions: np.ndarray
    resolutions_angstrom: np.ndarray
    half_angle_degrees: float
    curves: np.ndarray
    # Per direction, the first shell from which its cone holds nothing of the data (-1: none).
    empty_from_shell: np.ndarray

    @property
    def unsampled_directions(self) -> np.ndarray:
        """The directions (m, 3) whose cones hold nothing of the data from some shell on."""
        return self.directions[self.empty_from_shell >= 0]

    def curve_along(self, which: str) -> np.ndarray:
        """The curve of the ``"finest"`` or ``"coarsest"`` direction."""
        pick = {"finest": np.argmin, "coarsest": np.argmax}
        if which not in pick:
            raise ValueError(f"which must be 'finest' or 'coarsest', got {which!r}")
        return self.curves[int(pick[which](self.resolutions_angstrom))]

    @property
    def finest_angstrom(self) -> float:
        return float(np.min(self.resolutions_angstrom))

    @property
    def coarsest_angstrom(self) -> float:
        return float(np.max(self.resolutions_angstrom))

    @property
    def coarsest_direction(self) -> np.ndarray:
        return self.directions[int(np.argmax(self.resolutions_angstrom))]

    @property
    def finest_direction(self) -> np.ndarray:
        return self.directions[int(np.argmin(self.resolutions_angstrom))]

    def to_dict(self) -> dict:
        return {
            "definition": (
                f"FSC of the data half maps (direct inversions) over the Fourier samples within "
                f"{self.half_angle_degrees:g} degrees of each direction, soft spherical mask, read "
                f"at {THRESHOLD}: what the data hold along each direction (directions x, y, z in "
                "the map's frame)"
            ),
            "finest_angstrom": self.finest_angstrom,
            "coarsest_angstrom": self.coarsest_angstrom,
            "finest_direction_xyz": [round(float(v), 4) for v in self.finest_direction],
            "coarsest_direction_xyz": [round(float(v), 4) for v in self.coarsest_direction],
            "directions_xyz": [[round(float(v), 4) for v in d] for d in self.directions],
            "resolution_angstrom": [float(r) for r in self.resolutions_angstrom],
            "empty_from_shell": [int(k) for k in self.empty_from_shell],
        }


def directional_resolution(
    data_a: torch.Tensor | ArrayLike,
    data_b: torch.Tensor | ArrayLike,
    pixel_size_angstrom: float,
    mask: torch.Tensor | ArrayLike | None = None,
    n_directions: int = DEFAULT_DIRECTIONS,
    half_angle_degrees: float = DEFAULT_HALF_ANGLE_DEGREES,
) -> DirectionalResolution:
    """The 0.143 crossing of :func:`conical_fsc` along ``n_directions`` directions of the half
    sphere (:func:`half_sphere_directions`), for two data half maps (D, D, D), but no finer than
    the first shell where the cone (of :data:`MIN_CONE_SAMPLES` samples or more) holds under
    :data:`EMPTY_CONE_POWER` of the median cone's power per sample (module docstring)."""
    directions = half_sphere_directions(n_directions)
    a, b = _maps(data_a, data_b, mask)
    sums = _cone_sums(a, b, directions, half_angle_degrees, None)
    curves = _fsc_of_sums(sums[:-1])
    per_sample = (sums[:-1, 1] + sums[:-1, 2]) / np.maximum(sums[:-1, 3], 1e-300)
    share = per_sample / np.maximum(np.median(per_sample, axis=0), 1e-300)
    empty = (share < EMPTY_CONE_POWER) & (sums[:-1, 3] >= MIN_CONE_SAMPLES)
    empty[:, 0] = False
    curves = np.where(np.maximum.accumulate(empty, axis=1), -1.0, curves)  # nothing from there
    box = a.shape[0]
    resolutions = np.array([resolution_at(c, THRESHOLD, box, pixel_size_angstrom) for c in curves])
    first_empty = np.where(empty.any(axis=1), np.argmax(empty, axis=1), -1)
    return DirectionalResolution(
        directions, resolutions, float(half_angle_degrees), curves, first_empty
    )
