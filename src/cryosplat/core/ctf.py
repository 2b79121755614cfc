"""Contrast transfer function, batched, in torch, with RELION's formula and sign.

``CTF(k) = -sin(-χ(k) - φ - atan(Q / sqrt(1 - Q²))) · exp(-B k² / 4)`` in RELION's code, that is
``sin(χ + φ + atan(Q/sqrt(1-Q²)))·exp(-B k²/4)`` with ``χ = π λ Δf k² - (π/2) Cs λ³ k⁴``, ``Δf`` the
defocus along the frequency's direction (positive underfocus) and θ measured from the image x axis:
``Δf = (U + V)/2 + (U - V)/2 · cos 2(θ - angle)``. It is positive at low frequency, so projections
of positive density stay bright (RELION's particle sign).

Images may already carry their CTF (:data:`CTF_IN_IMAGES`, RELION's ``rlnCtfDataArePhaseFlipped``
and ``rlnCtfDataAreCtfPremultiplied``): an image phase-flipped is ``sign(CTF)`` times the raw one,
``|CTF| · P`` plus noise, and one premultiplied is ``CTF`` times it, ``CTF² · P`` plus noise.
:func:`image_transfer` is what multiplies a projection ``P`` to make such an image, and
:func:`raw_backprojection_factor` what turns the image into ``CTF`` times the raw image, the
quantity a direct inversion sums (RELION's reconstructor does the same: it skips multiplying a
premultiplied image and takes ``|CTF|`` for a flipped one); the weight is ``CTF²`` for all three.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.aberrations import even_phase, magnified_frequencies
from cryosplat.core.fourier import frequency_grid_2d

__all__ = [
    "CTFParams",
    "CTF_IN_IMAGES",
    "electron_wavelength_angstrom",
    "compute_ctf",
    "ctf_at",
    "ctf_from_params",
    "image_transfer",
    "raw_backprojection_factor",
]

CTF_IN_IMAGES = ("none", "phase_flipped", "premultiplied")
"""What images already carry of their CTF, by code (the index): 0 raw, 1 multiplied by the
CTF's sign (phase-flipped), 2 multiplied by the CTF (premultiplied)."""


def electron_wavelength_angstrom(
    voltage_kv: ArrayLike | torch.Tensor,
) -> float | np.ndarray | torch.Tensor:
    """Relativistic electron wavelength (Å) for an acceleration voltage in kV."""
    v = (
        np.asarray(voltage_kv, dtype=np.float64) * 1e3
        if not torch.is_tensor(voltage_kv)
        else (voltage_kv.double() * 1e3)
    )
    if torch.is_tensor(v):
        return 12.2642598 / torch.sqrt(v * (1.0 + v * 0.978466e-6))
    return 12.2642598 / np.sqrt(v * (1.0 + v * 0.978466e-6))


@dataclass
class CTFParams:
    """Per-particle CTF parameters (each a float64 array of shape (N,)) in RELION's units.

    Attributes
    ----------
    defocus_u_angstrom, defocus_v_angstrom : Å, positive underfocus
    defocus_angle_degrees : astigmatism angle from the image x axis, degrees
    voltage_kv : acceleration voltage, kV
    cs_mm : spherical aberration, mm
    amplitude_contrast : fraction Q in [0, 1)
    phase_shift_degrees : phase plate shift, degrees
    bfactor_angstrom2 : envelope B-factor, Å² (0: none)
    scale : CTF scale factor (RELION ``rlnCtfScalefactor``, 1 by default)
    even_zernike : symmetric aberrations, shape (N, K), or None: RELION's ``rlnEvenZernike``
        coefficients (radians at frequencies in 1/Å; :func:`cryosplat.core.aberrations.even_phase`)
    """

    defocus_u_angstrom: np.ndarray
    defocus_v_angstrom: np.ndarray
    defocus_angle_degrees: np.ndarray
    voltage_kv: np.ndarray
    cs_mm: np.ndarray
    amplitude_contrast: np.ndarray
    phase_shift_degrees: np.ndarray
    bfactor_angstrom2: np.ndarray
    scale: np.ndarray
    even_zernike: np.ndarray | None = None

    FIELDS = (
        "defocus_u_angstrom",
        "defocus_v_angstrom",
        "defocus_angle_degrees",
        "voltage_kv",
        "cs_mm",
        "amplitude_contrast",
        "phase_shift_degrees",
        "bfactor_angstrom2",
        "scale",
    )

    def __post_init__(self) -> None:
        n = None
        for name in self.FIELDS:
            arr = np.atleast_1d(np.asarray(getattr(self, name), dtype=np.float64))
            if n is None:
                n = arr.shape[0]
            if arr.shape == (1,) and n != 1:
                arr = np.full(n, arr[0])
            if arr.shape != (n,):
                raise ValueError(f"CTF field {name} has shape {arr.shape}, expected ({n},)")
            if not np.all(np.isfinite(arr)):
                bad = int(np.flatnonzero(~np.isfinite(arr))[0])
                raise ValueError(f"CTF field {name} is not finite at row {bad}: {arr[bad]}")
            setattr(self, name, arr)
        if np.any((self.amplitude_contrast < 0) | (self.amplitude_contrast >= 1)):
            bad = int(
                np.flatnonzero((self.amplitude_contrast < 0) | (self.amplitude_contrast >= 1))[0]
            )
            raise ValueError(
                f"amplitude_contrast must be in [0, 1), got {self.amplitude_contrast[bad]} at row {bad}"
            )
        if np.any(self.voltage_kv <= 0):
            bad = int(np.flatnonzero(self.voltage_kv <= 0)[0])
            raise ValueError(
                f"voltage_kv must be positive, got {self.voltage_kv[bad]} at row {bad}"
            )
        if self.even_zernike is not None:
            even = np.asarray(self.even_zernike, dtype=np.float64)
            if even.ndim != 2 or even.shape[0] != n:
                raise ValueError(f"even_zernike has shape {even.shape}, expected ({n}, K)")
            if not np.all(np.isfinite(even)):
                bad = int(np.flatnonzero(~np.isfinite(even).all(axis=1))[0])
                raise ValueError(f"even_zernike is not finite at row {bad}: {even[bad]}")
            self.even_zernike = even if np.any(even != 0) else None

    @classmethod
    def create(cls, n: int, **values) -> CTFParams:
        """Build ``n`` rows from scalars or arrays; unspecified fields take neutral defaults."""
        defaults = dict(
            defocus_angle_degrees=0.0,
            voltage_kv=300.0,
            cs_mm=2.7,
            amplitude_contrast=0.1,
            phase_shift_degrees=0.0,
            bfactor_angstrom2=0.0,
            scale=1.0,
        )
        defaults.update(values)
        missing = [f for f in ("defocus_u_angstrom", "defocus_v_angstrom") if f not in defaults]
        if missing:
            raise ValueError(f"missing CTF values: {missing}")
        return cls(
            **{
                f: np.broadcast_to(np.asarray(defaults[f], dtype=np.float64), (n,)).copy()
                for f in cls.FIELDS
            }
        )

    def __len__(self) -> int:
        return int(self.defocus_u_angstrom.shape[0])

    def subset(self, index: ArrayLike | slice) -> CTFParams:
        """Rows ``index`` (an integer array, slice or boolean mask)."""
        even = None if self.even_zernike is None else self.even_zernike[index]
        return CTFParams(**{f: getattr(self, f)[index] for f in self.FIELDS}, even_zernike=even)

    def astigmatism_components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, a, b)`` (Å, each (N,)): the defocus along the direction at ``θ`` from the
        image x axis is ``mean + a cos 2θ + b sin 2θ`` (``a``, ``b``: half the difference of the
        two defocus values, turned by twice their angle)."""
        mean = 0.5 * (self.defocus_u_angstrom + self.defocus_v_angstrom)
        half = 0.5 * (self.defocus_u_angstrom - self.defocus_v_angstrom)
        twice = 2.0 * np.deg2rad(self.defocus_angle_degrees)
        return mean, half * np.cos(twice), half * np.sin(twice)

    def moved(
        self,
        defocus_offset_angstrom: ArrayLike = 0.0,
        astigmatism_offset_angstrom: ArrayLike | None = None,
    ) -> CTFParams:
        """These rows with ``defocus_offset_angstrom`` (Å, (N,) or scalar) added to both
        defocus values and, where given, ``astigmatism_offset_angstrom`` (Å, (N, 2)) added to
        the astigmatism's components ``(a, b)`` (:meth:`astigmatism_components`).

        Where the astigmatism moves, the defocus values keep their order (``U ≥ V`` or ``U < V``
        as recorded) and the angle is the one of the two equivalent angles ``φ``, ``φ ± 180°``
        nearest the recorded one; elsewhere angle and difference are kept exactly.
        """
        offset = np.broadcast_to(
            np.asarray(defocus_offset_angstrom, dtype=np.float64), (len(self),)
        )
        u = self.defocus_u_angstrom + offset
        v = self.defocus_v_angstrom + offset
        angle = self.defocus_angle_degrees.copy()
        if astigmatism_offset_angstrom is not None:
            moves = np.asarray(astigmatism_offset_angstrom, dtype=np.float64)
            if moves.shape != (len(self), 2) or not np.all(np.isfinite(moves)):
                raise ValueError(
                    f"astigmatism_offset_angstrom must be finite of shape ({len(self)}, 2), "
                    f"got {moves.shape}"
                )
            changed = np.any(moves != 0, axis=1)
            mean, a, b = self.astigmatism_components()
            order = np.where(self.defocus_u_angstrom >= self.defocus_v_angstrom, 1.0, -1.0)
            a, b = a + moves[:, 0], b + moves[:, 1]
            half = order * np.hypot(a, b)
            turned = 0.5 * np.rad2deg(np.arctan2(order * b, order * a))
            turned = turned + 180.0 * np.round((self.defocus_angle_degrees - turned) / 180.0)
            u = np.where(changed, mean + offset + half, u)
            v = np.where(changed, mean + offset - half, v)
            angle = np.where(changed, turned, angle)
        return replace(
            self, defocus_u_angstrom=u, defocus_v_angstrom=v, defocus_angle_degrees=angle
        )

    def as_tensors(
        self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> dict[str, torch.Tensor]:
        """All fields as tensors of shape (N,)."""
        return {
            f: torch.as_tensor(getattr(self, f), device=device, dtype=dtype) for f in self.FIELDS
        }

    @staticmethod
    def concatenate(parts: list[CTFParams]) -> CTFParams:
        even = None
        if any(p.even_zernike is not None for p in parts):
            width = max(p.even_zernike.shape[1] for p in parts if p.even_zernike is not None)
            even = np.zeros((sum(len(p) for p in parts), width))
            start = 0
            for p in parts:
                if p.even_zernike is not None:
                    even[start : start + len(p), : p.even_zernike.shape[1]] = p.even_zernike
                start += len(p)
        return CTFParams(
            **{f: np.concatenate([getattr(p, f) for p in parts]) for f in CTFParams.FIELDS},
            even_zernike=even,
        )


def compute_ctf(
    box: int,
    pixel_size_angstrom: float,
    defocus_u_angstrom: torch.Tensor,
    defocus_v_angstrom: torch.Tensor,
    defocus_angle_degrees: torch.Tensor,
    voltage_kv: torch.Tensor,
    cs_mm: torch.Tensor,
    amplitude_contrast: torch.Tensor,
    phase_shift_degrees: torch.Tensor | None = None,
    bfactor_angstrom2: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    even_zernike: torch.Tensor | None = None,
    mag_matrices: torch.Tensor | None = None,
) -> torch.Tensor:
    """CTF on the centred D×D frequency grid for a batch of particles.

    Parameters
    ----------
    box : int
        Image size D.
    pixel_size_angstrom : float
    defocus_u_angstrom, defocus_v_angstrom, defocus_angle_degrees, voltage_kv, cs_mm,
    amplitude_contrast, phase_shift_degrees, bfactor_angstrom2, scale : torch.Tensor, shape (B,)
    even_zernike : torch.Tensor, shape (B, K), optional
        Symmetric aberrations (:attr:`CTFParams.even_zernike`).
    mag_matrices : torch.Tensor, shape (B, 2, 2), optional
        Each image's magnification matrix ``M``: its CTF at ``k`` is taken at ``M k`` (RELION's
        ``rlnMagMat``; :func:`cryosplat.core.aberrations.magnified_rotations`).

    Returns
    -------
    torch.Tensor, shape (B, D, D), real, zero frequency at ``[:, D // 2, D // 2]``.
    """
    dtype = defocus_u_angstrom.dtype if defocus_u_angstrom.is_floating_point() else torch.float32
    device = defocus_u_angstrom.device
    kx, ky = frequency_grid_2d(box, pixel_size_angstrom, device, torch.float64)
    if mag_matrices is not None:
        m = torch.as_tensor(mag_matrices, device=device, dtype=torch.float64)[:, None, None]
        kx, ky = magnified_frequencies(m, kx, ky)

    given = {
        "defocus_u_angstrom": defocus_u_angstrom,
        "defocus_v_angstrom": defocus_v_angstrom,
        "defocus_angle_degrees": defocus_angle_degrees,
        "voltage_kv": voltage_kv,
        "cs_mm": cs_mm,
        "amplitude_contrast": amplitude_contrast,
        "phase_shift_degrees": phase_shift_degrees,
        "bfactor_angstrom2": bfactor_angstrom2,
        "scale": scale,
    }
    columns = {
        name: torch.as_tensor(t, device=device, dtype=torch.float64).reshape(-1, 1, 1)
        for name, t in given.items()
        if t is not None
    }
    if even_zernike is not None:
        columns["even_zernike"] = torch.as_tensor(
            even_zernike, device=device, dtype=torch.float64
        ).reshape(len(columns["defocus_u_angstrom"]), 1, 1, -1)
    return ctf_at(kx**2 + ky**2, torch.atan2(ky, kx), columns).to(dtype)


def ctf_at(
    k2: torch.Tensor, theta: torch.Tensor, params: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """The CTF (module docstring) at squared frequencies ``k2`` (1/Å²) in directions ``theta``
    (radians from the image x axis). ``params``: float64 tensors by the names of
    :attr:`CTFParams.FIELDS` (``phase_shift_degrees``, ``bfactor_angstrom2`` and ``scale`` may be
    left out), broadcast with ``k2`` and ``theta`` (e.g. (B, 1, 1) against a (D, D) grid, or
    (B, 1, 1) against (1, A, R) directions and radii); ``even_zernike`` may add the symmetric
    aberrations, shaped as the others with the coefficients last (e.g. (B, 1, 1, K))."""
    du, dv = params["defocus_u_angstrom"], params["defocus_v_angstrom"]
    ang = params["defocus_angle_degrees"]
    lam = electron_wavelength_angstrom(params["voltage_kv"])
    cs = params["cs_mm"] * 1e7
    q = params["amplitude_contrast"]
    phase_shift_degrees = params.get("phase_shift_degrees")
    bfactor_angstrom2 = params.get("bfactor_angstrom2")
    scale = params.get("scale")
    defocus = 0.5 * (du + dv) + 0.5 * (du - dv) * torch.cos(2.0 * (theta - torch.deg2rad(ang)))
    chi = math.pi * lam * defocus * k2 - 0.5 * math.pi * cs * lam**3 * k2**2
    chi = chi + torch.atan(q / torch.sqrt(1.0 - q**2))
    if phase_shift_degrees is not None:
        chi = chi + torch.deg2rad(phase_shift_degrees)
    if params.get("even_zernike") is not None:
        chi = chi - even_phase(params["even_zernike"], k2, theta)
    ctf = torch.sin(chi)
    if bfactor_angstrom2 is not None:
        ctf = ctf * torch.exp(-bfactor_angstrom2 * k2 / 4.0)
    if scale is not None:
        ctf = ctf * scale
    return ctf


def ctf_from_params(
    params: CTFParams,
    box: int,
    pixel_size_angstrom: float,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    mag_matrices: np.ndarray | None = None,
) -> torch.Tensor:
    """:func:`compute_ctf` for every row of ``params`` (each seen through its row of
    ``mag_matrices``, shape (N, 2, 2), when given): shape (N, D, D)."""
    t = params.as_tensors(device=device, dtype=torch.float64)
    if params.even_zernike is not None:
        t["even_zernike"] = torch.as_tensor(params.even_zernike, device=device)
    if mag_matrices is not None:
        t["mag_matrices"] = torch.as_tensor(np.array(mag_matrices, dtype=np.float64), device=device)
    return compute_ctf(box, pixel_size_angstrom, **t).to(dtype)


def _codes_like(codes, ctf: torch.Tensor) -> torch.Tensor:
    """``codes`` (N,) as a tensor on ``ctf``'s device, shaped to broadcast over its rows (checked
    on the host: no wait for the device)."""
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 1 or codes.shape[0] != ctf.shape[0]:
        raise ValueError(f"codes must have shape ({ctf.shape[0]},), got {codes.shape}")
    if ((codes < 0) | (codes >= len(CTF_IN_IMAGES))).any():
        raise ValueError(f"codes must be 0 to {len(CTF_IN_IMAGES) - 1}, got {codes.tolist()}")
    codes = torch.from_numpy(codes).to(ctf.device)
    return codes.reshape(-1, *([1] * (ctf.ndim - 1)))


def image_transfer(ctf: torch.Tensor, codes: ArrayLike) -> torch.Tensor:
    """What multiplies a projection to make each image: ``CTF`` (code 0, raw), ``|CTF|`` (1,
    phase-flipped) or ``CTF²`` (2, premultiplied).

    Parameters
    ----------
    ctf : torch.Tensor, shape (N, ...)
        Each image's CTF (:func:`compute_ctf`).
    codes : array of int, shape (N,)
        Indices into :data:`CTF_IN_IMAGES`.
    """
    c = _codes_like(codes, ctf)
    return torch.where(c == 0, ctf, torch.where(c == 1, ctf.abs(), ctf * ctf))


def raw_backprojection_factor(ctf: torch.Tensor, codes: ArrayLike) -> torch.Tensor:
    """What turns each image into ``CTF`` times the raw image: ``CTF`` (code 0), ``|CTF|`` (1)
    or 1 (2). Its product with :func:`image_transfer` is ``CTF²`` for every code."""
    c = _codes_like(codes, ctf)
    return torch.where(c == 0, ctf, torch.where(c == 1, ctf.abs(), torch.ones_like(ctf)))
