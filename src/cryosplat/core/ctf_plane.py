"""The CTF on a fixed set of image frequencies, for many particles, in single precision.

:func:`cryosplat.core.ctf.compute_ctf` evaluates the CTF on the whole centred D×D grid in double
precision, recomputing the grid's geometry for every batch. The statistics pass needs it on the
``kx ≥ 0`` half only, for millions of particles: :class:`CTFPlane` computes the geometry (``k²``,
``cos 2θ``, ``sin 2θ``) once, folds each particle's constants into a few scalars in double
precision, and evaluates the rest in single precision. Same formula and sign as
:mod:`cryosplat.core.ctf`; the phase ``χ`` reaches a few hundred radians at 1–2 Å, where float32
keeps it to ~3·10⁻⁵ rad, so the CTF agrees with the double-precision one to ~10⁻⁴.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import torch

from cryosplat.core.aberrations import even_phase
from cryosplat.core.ctf import CTFParams, electron_wavelength_angstrom

__all__ = ["CTFPlane"]


class CTFPlane:
    """CTF values at fixed frequencies ``(kx, ky)`` (pixels of a D grid) for batches of particles.

    Parameters
    ----------
    kx, ky : torch.Tensor, shape (M,) or any common shape
        Frequencies in pixels of the D grid (``k / (D · pixel)`` cycles per Å).
    box : int
        D.
    pixel_size_angstrom : float
    """

    def __init__(
        self, kx: torch.Tensor, ky: torch.Tensor, box: int, pixel_size_angstrom: float
    ) -> None:
        if not pixel_size_angstrom > 0:
            raise ValueError(f"pixel_size_angstrom must be positive: {pixel_size_angstrom}")
        fx = kx.double() / (box * pixel_size_angstrom)
        fy = ky.double() / (box * pixel_size_angstrom)
        k2 = fx**2 + fy**2
        theta = torch.atan2(fy, fx)
        self.shape = tuple(kx.shape)
        self.device = kx.device
        self._k2_theta = (k2, theta)
        self.k2 = k2.float()
        self.k4 = (k2**2).float()
        self.cos2 = torch.cos(2.0 * theta).float()
        self.sin2 = torch.sin(2.0 * theta).float()

    def __call__(self, params: CTFParams) -> torch.Tensor:
        """The CTF of each row of ``params``: shape ``(N, *shape)``, float32."""
        chi, factor = self._phase(params)
        ctf = torch.sin(chi)
        return ctf if factor is None else ctf * factor

    def moved_phases(
        self, params: CTFParams, moves_angstrom: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The CTFs of ``params`` (all at one voltage) moved by each of ``moves_angstrom``, as
        a phase per particle and one per move: ``CTF_k = factor · sin(χ + φ_k)``.

        Parameters
        ----------
        params : CTFParams, N rows
        moves_angstrom : np.ndarray, (K, 3)
            Added to the mean defocus and to the astigmatism's components ``(a, b)``
            (:meth:`~cryosplat.core.ctf.CTFParams.astigmatism_components`), Å: a move adds
            ``π λ k² (δ + δa cos 2θ + δb sin 2θ)`` to the phase.

        Returns
        -------
        chi : torch.Tensor, (N, *shape), float32
            The phase of ``params`` unmoved.
        factor : torch.Tensor or None
            What multiplies ``sin`` (envelope and scale; None where 1), as :meth:`__call__`'s.
        phases : torch.Tensor, (M, K), float64
            Each move's phase at each sample (``M`` the samples, flattened).
        """
        moves = np.asarray(moves_angstrom, dtype=np.float64)
        if moves.ndim != 2 or moves.shape[1] != 3:
            raise ValueError(f"moves_angstrom must be (K, 3), got {moves.shape}")
        voltages = np.unique(params.voltage_kv)
        if voltages.size != 1:
            raise ValueError(f"moved_phases takes one voltage, got {voltages.tolist()} kV")
        chi, factor = self._phase(params)
        lam = float(electron_wavelength_angstrom(float(voltages[0])))
        phases = math.pi * lam * self._move_geometry @ torch.as_tensor(moves.T, device=self.device)
        return chi, factor, phases

    @cached_property
    def _move_geometry(self) -> torch.Tensor:
        """``(k², k² cos 2θ, k² sin 2θ)`` at each sample, (M, 3), float64: what a move's phase
        is made of (:meth:`moved_phases`), made once per plane."""
        k2, theta = (t.reshape(-1) for t in self._k2_theta)
        return torch.stack([k2, k2 * torch.cos(2.0 * theta), k2 * torch.sin(2.0 * theta)], 1)

    def _phase(self, params: CTFParams) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The CTF's phase ``χ`` (N, *shape) and what multiplies ``sin χ`` (its envelope and
        scale; None where it is 1)."""
        lam = np.asarray(electron_wavelength_angstrom(params.voltage_kv), dtype=np.float64)
        mean, a, b = params.astigmatism_components()
        q = params.amplitude_contrast
        # chi = π λ (mean + a cos2θ + b sin2θ) k² − c4·k⁴ + phase (θ measured from x).
        scalars = np.stack(
            [
                math.pi * lam * mean,
                math.pi * lam * a,
                math.pi * lam * b,
                0.5 * math.pi * params.cs_mm * 1e7 * lam**3,
                np.arctan(q / np.sqrt(1.0 - q**2)) + np.deg2rad(params.phase_shift_degrees),
                params.bfactor_angstrom2 / 4.0,
                params.scale,
            ],
            axis=1,
        )
        s = torch.as_tensor(scalars, device=self.device, dtype=torch.float32)
        s = s.reshape(len(params), 7, *([1] * len(self.shape)))
        a0, ac, as_, c4, phase, b4, scale = s.unbind(1)
        chi = (a0 + ac * self.cos2 + as_ * self.sin2) * self.k2 - c4 * self.k4 + phase
        if params.even_zernike is not None:
            even = torch.as_tensor(params.even_zernike, device=self.device, dtype=torch.float64)
            even = even.reshape(len(params), *([1] * len(self.shape)), -1)
            chi = chi - even_phase(even, *self._k2_theta).float()
        factor = None
        if bool((params.bfactor_angstrom2 != 0).any()):
            factor = torch.exp(-b4 * self.k2)
        if bool((params.scale != 1).any()):
            factor = scale.expand_as(chi) if factor is None else factor * scale
        return chi, factor
