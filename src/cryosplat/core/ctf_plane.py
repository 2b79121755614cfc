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
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch

from cryosplat.core.aberrations import even_phase
from cryosplat.core.ctf import CTFParams, electron_wavelength_angstrom

__all__ = ["RENEW_STEPS", "CTFPlane"]

RENEW_STEPS = 16  # :meth:`CTFPlane.defocus_series` recomputes the phase every this many offsets


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

    def defocus_series(
        self, params: CTFParams, offsets_angstrom: np.ndarray
    ) -> Iterator[torch.Tensor]:
        """The CTF of each row of ``params`` with each of ``offsets_angstrom`` (Å, equally spaced,
        in order) added to both defocus values: one ``(N, *shape)`` float32 tensor per offset,
        as :meth:`__call__` would give it.

        An offset ``δ`` adds ``π λ δ k²`` to the phase, so from one offset to the next the phase
        turns by the same angle at each sample: each CTF after the first is a complex rotation of
        the one before (three times cheaper than the CTF anew), recomputed every
        :data:`RENEW_STEPS` to keep float32's rounding from building up.
        """
        step, offsets = _equal_steps(offsets_angstrom, "offsets_angstrom")
        if offsets.size == 0:
            return
        first = replace(
            params,
            defocus_u_angstrom=params.defocus_u_angstrom + offsets[0],
            defocus_v_angstrom=params.defocus_v_angstrom + offsets[0],
        )
        chi, factor = self._phase(first)
        lam = np.asarray(electron_wavelength_angstrom(params.voltage_kv), dtype=np.float64)
        turn = torch.as_tensor(math.pi * lam * step, device=self.device, dtype=torch.float32)
        turn = turn.reshape(len(params), *([1] * len(self.shape))) * self.k2
        rotation = torch.polar(torch.ones_like(turn), turn)
        phasor = None
        for n in range(offsets.size):
            if n % RENEW_STEPS == 0:
                phasor = torch.polar(torch.ones_like(chi), chi + n * turn)
            else:
                phasor = phasor * rotation
            yield phasor.imag if factor is None else phasor.imag * factor

    def astigmatism_grid(
        self, params: CTFParams, a_offsets_angstrom: np.ndarray, b_offsets_angstrom: np.ndarray
    ) -> Iterator[torch.Tensor]:
        """The CTF of each row of ``params`` with its astigmatism's components moved by each
        pair of ``a_offsets_angstrom`` × ``b_offsets_angstrom`` (Å, each equally spaced, in
        order; :meth:`~cryosplat.core.ctf.CTFParams.astigmatism_components`), ``b`` fastest:
        one ``(N, *shape)`` float32 tensor per pair, as :meth:`__call__` would give it.

        The phase is linear in ``(a, b)``: ``π λ k² (δa cos 2θ + δb sin 2θ)``, so along ``b``
        each CTF is a complex rotation of the one before, recomputed every :data:`RENEW_STEPS`.
        """
        a_step, a_offsets = _equal_steps(a_offsets_angstrom, "a_offsets_angstrom")
        b_step, b_offsets = _equal_steps(b_offsets_angstrom, "b_offsets_angstrom")
        if a_offsets.size == 0 or b_offsets.size == 0:
            return
        first = params.moved(0.0, np.broadcast_to([a_offsets[0], b_offsets[0]], (len(params), 2)))
        chi, factor = self._phase(first)
        lam = np.asarray(electron_wavelength_angstrom(params.voltage_kv), dtype=np.float64)
        lam = torch.as_tensor(math.pi * lam, device=self.device, dtype=torch.float32)
        lam = lam.reshape(len(params), *([1] * len(self.shape))) * self.k2
        turn_a, turn_b = lam * (a_step * self.cos2), lam * (b_step * self.sin2)
        rotation = torch.polar(torch.ones_like(turn_b), turn_b)
        for i in range(a_offsets.size):
            phasor = None
            for j in range(b_offsets.size):
                if j % RENEW_STEPS == 0:
                    phasor = torch.polar(torch.ones_like(chi), chi + i * turn_a + j * turn_b)
                else:
                    phasor = phasor * rotation
                yield phasor.imag if factor is None else phasor.imag * factor

    def _phase(self, params: CTFParams) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The CTF's phase ``χ`` (N, *shape) and what multiplies ``sin χ`` (its envelope and
        scale; None where it is 1)."""
        lam = np.asarray(electron_wavelength_angstrom(params.voltage_kv), dtype=np.float64)
        du, dv = params.defocus_u_angstrom, params.defocus_v_angstrom
        angle = np.deg2rad(params.defocus_angle_degrees)
        q = params.amplitude_contrast
        # chi = a0·k² + a_c·cos2θ·k² + a_s·sin2θ·k² − c4·k⁴ + phase (θ measured from x).
        a0 = math.pi * lam * 0.5 * (du + dv)
        half = math.pi * lam * 0.5 * (du - dv)
        scalars = np.stack(
            [
                a0,
                half * np.cos(2.0 * angle),
                half * np.sin(2.0 * angle),
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


def _equal_steps(offsets: np.ndarray, name: str) -> tuple[float, np.ndarray]:
    """The step of the equally spaced ``offsets`` (0 for one) and the offsets as float64."""
    offsets = np.asarray(offsets, dtype=np.float64).reshape(-1)
    step = float(offsets[1] - offsets[0]) if offsets.size > 1 else 0.0
    if not np.allclose(np.diff(offsets), step, rtol=1e-9, atol=1e-9):
        raise ValueError(f"{name} must be equally spaced")
    return step, offsets
