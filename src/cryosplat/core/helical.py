"""Helical symmetry as ``relion_reconstruct`` imposes it: twist, rise and a number of asymmetric units.

A helix along the map's z axis maps onto itself when turned by the twist about z and moved by the
rise along z (RELION: twist positive for a right-handed helix). ``relion_reconstruct
--helical_twist T --helical_rise R --nr_helical_asu N`` sums each half set's Fourier grids (data
and weights) over the ``N`` operators ``h`` in :meth:`HelicalSymmetry.steps` (``−⌊N/2⌋`` to
``⌊N/2⌋``, one fewer on the positive side for even ``N``), the grid at ``K`` reading the one at
``R_z(−h·T) K`` (trilinear) times the phase ``exp(−2πi · h · R · k_z)`` (``k_z`` in cycles per Å),
before the point group's operators (RELION's ``BackProjector::applyHelicalSymmetry``). cryosplat
does the same to its statistics
(:func:`cryosplat.reconstruct.grid.helical_statistics.helically_symmetrized`), so a helical set's
half maps are RELION's under the same options. The sum runs over a few units of a filament that
spans the box; nothing is imposed along the filament's ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cryosplat.core.errors import InputError

__all__ = ["HelicalSymmetry", "MAX_ASYMMETRIC_UNITS"]

MAX_ASYMMETRIC_UNITS = 1000
"""More asymmetric units than this are a typo (a 300 Å box of a 1 Å rise holds 300)."""


@dataclass(frozen=True)
class HelicalSymmetry:
    """A helix along z.

    Attributes
    ----------
    twist_degrees : float
        Turn about z from one asymmetric unit to the next (positive: right-handed, as RELION).
    rise_angstrom : float
        Move along z from one asymmetric unit to the next, Å.
    n_asu : int
        Asymmetric units summed (RELION's ``--nr_helical_asu``), at least 2.
    """

    twist_degrees: float
    rise_angstrom: float
    n_asu: int

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first bad value."""
        if not math.isfinite(self.twist_degrees) or abs(self.twist_degrees) > 360.0:
            raise InputError(
                f"helical twist must be a turn in degrees within ±360, got {self.twist_degrees}"
            )
        if not math.isfinite(self.rise_angstrom) or self.rise_angstrom < 0:
            raise InputError(
                f"helical rise must be a distance in Å (0 or more), got {self.rise_angstrom}"
            )
        if not 2 <= self.n_asu <= MAX_ASYMMETRIC_UNITS:
            raise InputError(
                "the number of helical asymmetric units summed must be from 2 to "
                f"{MAX_ASYMMETRIC_UNITS} (RELION's --nr_helical_asu; 1 imposes nothing), got "
                f"{self.n_asu}"
            )
        if self.twist_degrees == 0 and self.rise_angstrom == 0:
            raise InputError("a helix needs a twist or a rise (both are 0)")

    def steps(self) -> list[int]:
        """The operators' indices ``h``, RELION's order: ``−⌊N/2⌋ … −⌊N/2⌋ + N − 1``."""
        low = -(self.n_asu // 2)
        return list(range(low, low + self.n_asu))

    def rotation(self, step: int) -> np.ndarray:
        """``R_z(−h·twist)``, (3, 3) float64: the grid at ``K`` reads the one at ``R K``."""
        angle = math.radians(-step * self.twist_degrees)
        c, s = math.cos(angle), math.sin(angle)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def span_angstrom(self) -> float:
        """Length along z of the units summed (``(N − 1) · rise``)."""
        return (self.n_asu - 1) * self.rise_angstrom

    def describe(self) -> str:
        """``twist T°, rise R Å, N asymmetric units summed``."""
        return (
            f"twist {self.twist_degrees:g}°, rise {self.rise_angstrom:g} Å, {self.n_asu} "
            "asymmetric units summed (as relion_reconstruct --helical_twist, --helical_rise, "
            "--nr_helical_asu)"
        )
