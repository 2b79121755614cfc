"""Higher-order optical aberrations as RELION 3.1 writes and corrects them (Zernike terms).

RELION's CTF refinement fits the aberrations of an optics group as Zernike polynomials of the
spatial frequency ``k`` in 1/Å (not normalised to a unit disc): ``rlnOddZernike`` holds the
coefficients of the antisymmetric ones, ``rlnEvenZernike`` those of the symmetric ones, each in
RELION's order (:func:`odd_index_to_mn`, :func:`even_index_to_mn`). The antisymmetric ones do not
change the CTF's amplitude: they multiply an image's Fourier transform by ``exp(i φ(k))`` with

    ``φ(k) = Σᵢ cᵢ · Z_{nᵢ}^{mᵢ}(k_x, k_y)``

(RELION's ``ObservationModel::getPhaseCorrection``; the forward transform is ``exp(-2πi k·x)``).
Since ``φ(-k) = -φ(k)`` the factor is Hermitian, so an image multiplied by its conjugate
(:func:`demodulate_images`, what ``relion_reconstruct`` does before it inserts an image) is real
again: the image the optics would have made without those aberrations.

The symmetric ones change the CTF instead: RELION adds ``γ(k) = Σᵢ cᵢ Z_i(k)`` to its phase
``gamma`` and takes ``-sin(gamma)``, so in the convention of :mod:`cryosplat.core.ctf` (``sin χ``)
it is subtracted from ``χ`` (:func:`even_phase`, used by :func:`cryosplat.core.ctf.ctf_at`).

A beam tilt ``(t_x, t_y)`` in mrad (``rlnBeamTiltX/Y``) is folded into the coefficients as
RELION 3.1 does (:func:`insert_beam_tilt`): the phase ``-2π Cs λ² |k|² (k · t)``, written as
``Z₃^{±1}`` and ``Z₁^{±1}`` terms.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from numpy.typing import ArrayLike

__all__ = [
    "odd_index_to_mn",
    "even_index_to_mn",
    "zernike_cartesian",
    "insert_beam_tilt",
    "odd_phase",
    "even_phase",
    "odd_phase_factors",
    "demodulate_images",
    "magnified_rotations",
    "magnified_frequencies",
]


def odd_index_to_mn(index: int) -> tuple[int, int]:
    """(m, n) of RELION's ``index``-th antisymmetric coefficient: 0 → (-1, 1), 1 → (1, 1),
    2 → (-3, 3), 3 → (-1, 3), 4 → (1, 3), 5 → (3, 3), ..."""
    if index < 0:
        raise ValueError(f"Zernike index must be >= 0, got {index}")
    k = int((math.sqrt(1 + 4 * index) - 1.0) / 2.0)
    n = 2 * k + 1
    return 2 * (index - (k * k + k)) - n, n


def even_index_to_mn(index: int) -> tuple[int, int]:
    """(m, n) of RELION's ``index``-th symmetric coefficient: 0 → (0, 0), 1 → (-2, 2),
    2 → (0, 2), 3 → (2, 2), 4 → (-4, 4), ..."""
    if index < 0:
        raise ValueError(f"Zernike index must be >= 0, got {index}")
    k = int(math.sqrt(index))
    return 2 * (index - k * k - k), 2 * k


def _radial(m: int, n: int, rho):
    """The radial polynomial ``R_n^m(ρ)`` (m ≥ 0) of an array or tensor; zero when ``n - m`` is
    odd."""
    if m > n:
        raise ValueError(f"Zernike m must not exceed n, got m={m}, n={n}")
    out = rho * 0.0
    if (n - m) % 2:
        return out
    for k in range((n - m) // 2 + 1):
        coeff = (-1) ** k * math.factorial(n - k)
        coeff /= (
            math.factorial(k) * math.factorial((n + m) // 2 - k) * math.factorial((n - m) // 2 - k)
        )
        out = out + coeff * rho ** (n - 2 * k)
    return out


def zernike_polar(m: int, n: int, rho, phi):
    """``Z_n^m`` at polar points (arrays or tensors): ``R_n^|m|(ρ)·cos(mφ)`` for m ≥ 0,
    ``R_n^|m|(ρ)·sin(|m|φ)`` for m < 0."""
    cos, sin = (torch.cos, torch.sin) if torch.is_tensor(phi) else (np.cos, np.sin)
    if m >= 0:
        return _radial(m, n, rho) * cos(m * phi)
    return _radial(-m, n, rho) * sin(-m * phi)


def zernike_cartesian(m: int, n: int, x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """``Z_n^m`` at points ``(x, y)``, with ``φ = atan2(y, x)`` (0 at the origin), as RELION's
    ``Zernike::Z_cart``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return zernike_polar(m, n, np.hypot(x, y), np.arctan2(y, x))


def insert_beam_tilt(
    coefficients: ArrayLike,
    tilt_x_mrad: ArrayLike,
    tilt_y_mrad: ArrayLike,
    cs_mm: ArrayLike,
    wavelength_angstrom: ArrayLike,
) -> np.ndarray:
    """Fold a beam tilt into antisymmetric coefficients, as RELION 3.1's ``TiltHelper::insertTilt``.

    Parameters
    ----------
    coefficients : array_like, shape (..., K)
        ``rlnOddZernike`` (may be empty); padded with zeros to at least six.
    tilt_x_mrad, tilt_y_mrad : array_like, shape (...) or scalars
        ``rlnBeamTiltX/Y``.
    cs_mm, wavelength_angstrom : array_like, shape (...) or scalars

    Returns
    -------
    np.ndarray, shape (..., max(K, 6))
        The coefficients with the tilt's coma (``Z₃^{±1}``, set) and its shift (``Z₁^{±1}``, added).
    """
    given = np.asarray(coefficients, dtype=np.float64)
    if given.ndim == 0 or given.size == 0:
        given = given.reshape(*given.shape[:-1], 0) if given.ndim else given.reshape(0)
    lead = np.broadcast_shapes(
        given.shape[:-1],
        *(np.shape(v) for v in (tilt_x_mrad, tilt_y_mrad, cs_mm, wavelength_angstrom)),
    )
    out = np.zeros((*lead, max(given.shape[-1], 6)), dtype=np.float64)
    out[..., : given.shape[-1]] = given
    scale = np.asarray(cs_mm) * 20000.0 * np.asarray(wavelength_angstrom) ** 2 * 3.141592654
    z3x = -scale * np.asarray(tilt_x_mrad) / 3.0
    z3y = -scale * np.asarray(tilt_y_mrad) / 3.0
    out[..., 1] += 2.0 * z3x
    out[..., 0] += 2.0 * z3y
    out[..., 4] = z3x
    out[..., 3] = z3y
    return out


def odd_phase(coefficients: ArrayLike, kx: ArrayLike, ky: ArrayLike) -> np.ndarray:
    """``φ(k) = Σᵢ cᵢ Z_i(k_x, k_y)`` (radians) at frequencies in 1/Å.

    Parameters
    ----------
    coefficients : array_like, shape (K,)
        Antisymmetric coefficients in RELION's order (:func:`odd_index_to_mn`).
    kx, ky : array_like, broadcastable
        Frequencies along the image's x (columns) and y (rows), 1/Å.
    """
    kx, ky = np.broadcast_arrays(np.asarray(kx, np.float64), np.asarray(ky, np.float64))
    phase = np.zeros(kx.shape, dtype=np.float64)
    for i, c in enumerate(np.asarray(coefficients, dtype=np.float64).reshape(-1)):
        if c != 0:
            phase += c * zernike_cartesian(*odd_index_to_mn(i), kx, ky)
    return phase


def even_phase(coefficients: torch.Tensor, k2: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``γ(k) = Σᵢ cᵢ Z_i(k)`` (radians), the symmetric aberrations' addition to RELION's CTF phase.

    Parameters
    ----------
    coefficients : torch.Tensor, shape (*batch, K)
        Symmetric coefficients in RELION's order (:func:`even_index_to_mn`); ``batch`` broadcasts
        with ``k2`` and ``theta`` (e.g. (B, 1, 1, K) against a (D, D) grid).
    k2 : torch.Tensor
        Squared frequency, 1/Å².
    theta : torch.Tensor
        Direction from the image x axis, radians.
    """
    rho = torch.sqrt(k2)
    shape = torch.broadcast_shapes(coefficients.shape[:-1], k2.shape, theta.shape)
    dtype = torch.promote_types(k2.dtype, coefficients.dtype)
    out = torch.zeros(shape, device=k2.device, dtype=dtype)
    for i in range(coefficients.shape[-1]):
        c = coefficients[..., i]
        if bool((c != 0).any()):
            out = out + c * zernike_polar(*even_index_to_mn(i), rho, theta)
    return out


def demodulate_images(
    images: np.ndarray,
    coefficients: ArrayLike,
    pixel_size_angstrom: ArrayLike,
    modulate: bool = False,
    mag_matrices: np.ndarray | None = None,
) -> np.ndarray:
    """Take each image's antisymmetric aberration out (or, with ``modulate``, put it in).

    Parameters
    ----------
    images : np.ndarray, shape (B, D, D)
        Real images, rows y and columns x.
    coefficients : array_like, shape (B, K)
        Each image's antisymmetric coefficients (RELION's order, beam tilt folded in).
    pixel_size_angstrom : array_like, shape (B,) or scalar
        Each image's own pixel size.
    modulate : bool
        Multiply by ``exp(+iφ)`` (what the optics do) instead of ``exp(-iφ)`` (the correction).
    mag_matrices : np.ndarray, shape (B, 2, 2), optional
        Each image's magnification matrix ``M``: ``φ`` is taken at ``M k``, as RELION takes it.

    Returns
    -------
    np.ndarray, shape (B, D, D), the dtype of ``images``
        Images whose transforms are multiplied by ``exp(∓iφ(k))``; rows whose coefficients are all
        zero come back unchanged. On an even box the Nyquist row and column, where a real image
        cannot hold a phase, are left as they are, so that modulating and demodulating are
        inverses.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must have shape (B, D, D), got {images.shape}")
    b, d = images.shape[0], images.shape[1]
    coeffs = np.asarray(coefficients, dtype=np.float64).reshape(b, -1)
    pixel = np.broadcast_to(np.asarray(pixel_size_angstrom, dtype=np.float64), (b,))
    if np.any(pixel <= 0):
        raise ValueError(f"pixel_size_angstrom must be positive, got {pixel.min()}")
    out = images.copy()
    active = np.flatnonzero(np.any(coeffs != 0, axis=1))
    if active.size == 0:
        return out
    mags = None if mag_matrices is None else np.asarray(mag_matrices)[active]
    factors = odd_phase_factors(coeffs[active], pixel[active], d, modulate, mag_matrices=mags)
    spectra = torch.fft.rfft2(torch.from_numpy(np.ascontiguousarray(images[active])).float())
    out[active] = torch.fft.irfft2(spectra * factors, s=(d, d)).numpy()
    return out


def odd_phase_factors(
    coefficients: np.ndarray,
    pixel_size_angstrom: np.ndarray,
    box: int,
    modulate: bool = False,
    device: torch.device | str | None = None,
    mag_matrices: np.ndarray | None = None,
) -> torch.Tensor:
    """``exp(∓iφ(M k))`` of each image on the ``rfft2`` grid of a ``box`` image.

    Parameters
    ----------
    coefficients : np.ndarray, shape (B, K)
        Antisymmetric coefficients (RELION's order, beam tilt folded in).
    pixel_size_angstrom : np.ndarray, shape (B,)
    box : int
    modulate : bool
        ``exp(+iφ)`` (the optics) instead of ``exp(-iφ)`` (the correction).
    device : torch device of the result
    mag_matrices : np.ndarray, shape (B, 2, 2), optional
        Each image's magnification matrix ``M`` (identity when omitted).

    Returns
    -------
    torch.Tensor, shape (B, box, box // 2 + 1), complex64
        Rows in ``fftfreq`` order, as ``torch.fft.rfft2`` lays them out; on an even box the
        Nyquist row and column are 1. Each distinct (coefficients, pixel) is computed once.
    """
    coefficients = np.asarray(coefficients, np.float64)
    n = coefficients.shape[0]
    mags = np.tile(np.eye(2), (n, 1, 1)) if mag_matrices is None else np.asarray(mag_matrices)
    keys = np.concatenate(
        [
            coefficients,
            mags.reshape(n, 4).astype(np.float64),
            np.asarray(pixel_size_angstrom, np.float64).reshape(n, 1),
        ],
        axis=1,
    )
    distinct, which = np.unique(keys, axis=0, return_inverse=True)
    table = torch.stack(
        [
            _phase_factor(tuple(k[:-5]), tuple(k[-5:-1]), float(k[-1]), box, modulate)
            for k in distinct.tolist()
        ]
    ).to(device)
    if len(distinct) == 1:  # one factor for all (one optics group): a view, not B copies
        return table[:1].expand(n, -1, -1)
    return table[torch.from_numpy(which.reshape(-1)).to(table.device)]


@functools.lru_cache(maxsize=64)
def _phase_factor(
    coefficients: tuple[float, ...],
    mag: tuple[float, float, float, float],
    pixel_size_angstrom: float,
    box: int,
    modulate: bool,
) -> torch.Tensor:
    """One image's ``exp(±iφ(M k))`` on the rfft grid (:func:`odd_phase_factors`); ``mag`` is
    ``M`` by rows."""
    fy = np.fft.fftfreq(box)[:, None] / pixel_size_angstrom
    fx = np.fft.rfftfreq(box)[None, :] / pixel_size_angstrom
    mx, my = magnified_frequencies(np.reshape(mag, (2, 2)), fx, fy)
    factor = np.exp((1.0 if modulate else -1.0) * 1j * odd_phase(coefficients, mx, my))
    if box % 2 == 0:
        factor[box // 2, :] = 1.0
        factor[:, -1] = 1.0
    return torch.from_numpy(factor.astype(np.complex64))


def magnified_rotations(rotations: np.ndarray, mag_matrices: np.ndarray) -> np.ndarray:
    """``Mᵀ A`` (``M`` as the upper-left block of a 3×3 identity) for each particle.

    An image seen through a magnification matrix ``M`` holds at frequency ``k`` the undistorted
    image's ``M k``: its first two rows place the sample ``(kx, ky)`` on the map's central slice
    at ``Aᵀ (M k, 0)`` (``kx·G₀ + ky·G₁``), and a Gaussian rendered through them lands where the
    undistorted image's point ``p`` is seen, at ``Mᵀ p`` (its 2D covariance ``Mᵀ Σ₂ M``, its mass
    kept). RELION's ``ObservationModel::applyAnisoMag`` (``M⁻¹ A``, inverted where it is used).

    Parameters
    ----------
    rotations : np.ndarray, shape (N, 3, 3)
        Map→image matrices ``A``.
    mag_matrices : np.ndarray, shape (N, 2, 2) or (2, 2)

    Returns
    -------
    np.ndarray, shape (N, 3, 3)
    """
    mag = np.broadcast_to(np.asarray(mag_matrices, dtype=np.float64), (len(rotations), 2, 2))
    m3 = np.tile(np.eye(3), (len(rotations), 1, 1))
    m3[:, :2, :2] = mag
    return np.transpose(m3, (0, 2, 1)) @ np.asarray(rotations, dtype=np.float64)


def magnified_frequencies(mag, kx, ky):
    """``M k``: frequencies ``(kx, ky)`` seen through magnification matrices ``mag``.

    ``mag`` has shape (..., 2, 2), its leading axes broadcasting with ``kx`` and ``ky`` (e.g.
    (B, 1, 1, 2, 2) against a (D, D) grid); arrays or tensors. RELION evaluates an image's CTF
    and aberrations there (``CTF::getCTF``, ``ObservationModel::getPhaseCorrection``).
    """
    return (
        mag[..., 0, 0] * kx + mag[..., 0, 1] * ky,
        mag[..., 1, 0] * kx + mag[..., 1, 1] * ky,
    )
