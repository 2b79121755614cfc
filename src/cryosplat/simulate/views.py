"""The views of a simulated data set: uniform, taken from a real particle file, or preferred.

Real data sets are rarely uniform in their views: molecules lying on the air-water interface or
the support show one face far more often than the others (*preferred orientation*), which leaves
a cone of Fourier space sampled thinly. :class:`PreferredViews` draws such a set: a share of the
particles seen within a cone about the map's z axis (RELION tilt at most ``cone_degrees``, every
in-plane angle and azimuth alike, the view direction uniform on the cap), the rest uniform on
SO(3). A view direction ``d`` and ``-d`` give the same central slice, so a cone of 90° covers
every slice once.

Views are map→image matrices ``A`` (:mod:`cryosplat.core.conventions`): the beam runs along
``A⁻¹ z``, at tilt ``arccos(A[2, 2])`` from the map's z axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosplat.core.conventions import euler_relion_to_matrix
from cryosplat.core.errors import InputError
from cryosplat.core.rotations import random_rotations
from cryosplat.particles.read import read_particles

__all__ = ["PreferredViews", "check_view_source", "preferred_rotations", "sample_views"]


@dataclass(frozen=True)
class PreferredViews:
    """A share ``fraction`` of the views within ``cone_degrees`` of the map's z axis.

    Attributes
    ----------
    fraction : float
        In ``[0, 1]``: the share of particles drawn within the cone (the rest uniform).
    cone_degrees : float
        In ``(0, 90]``: the largest tilt (degrees) of a preferred view.
    """

    fraction: float
    cone_degrees: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"preferred-view fraction must be in [0, 1], got {self.fraction}")
        if not 0.0 < self.cone_degrees <= 90.0:
            raise ValueError(
                f"preferred-view cone must be in (0, 90] degrees, got {self.cone_degrees}"
            )

    @classmethod
    def parse(cls, text: str) -> PreferredViews:
        """``"FRACTION,DEGREES"`` (e.g. ``"0.8,20"``), as the command line gives it."""
        parts = [p.strip() for p in str(text).split(",")]
        try:
            if len(parts) != 2:
                raise ValueError
            fraction, cone = float(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(
                f"preferred views must be FRACTION,DEGREES (e.g. 0.8,20), got {text!r}"
            ) from None
        return cls(fraction, cone)

    def share_within_cone(self) -> float:
        """The expected share of all views within the cone: the preferred ones and the uniform
        ones that fall in it (tilt uniform in cosine on [0°, 180°])."""
        cap = (1.0 - math.cos(math.radians(self.cone_degrees))) / 2.0
        return self.fraction + (1.0 - self.fraction) * cap


def preferred_rotations(n: int, views: PreferredViews, rng: np.random.Generator) -> np.ndarray:
    """``n`` map→image matrices, ``round(fraction · n)`` of them within the cone, in random order.

    Returns float64 (n, 3, 3).
    """
    if n < 0:
        raise ValueError(f"number of views must be non-negative, got {n}")
    k = int(round(views.fraction * n))
    cos_tilt = rng.uniform(math.cos(math.radians(views.cone_degrees)), 1.0, k)
    rot, psi = rng.uniform(-180.0, 180.0, (2, k))
    tilted = euler_relion_to_matrix(rot, np.degrees(np.arccos(cos_tilt)), psi)
    rotations = np.concatenate([tilted.reshape(k, 3, 3), random_rotations(n - k, rng)])
    return rotations[rng.permutation(n)]


def check_view_source(views_file: Path | None, preferred: PreferredViews | None) -> None:
    """Raise :class:`InputError` when both a views file and preferred views are given."""
    if views_file is not None and preferred is not None:
        raise InputError("give a views file or preferred views, not both")


def sample_views(
    n: int,
    rng: np.random.Generator,
    views_file: Path | None = None,
    preferred: PreferredViews | None = None,
) -> np.ndarray:
    """The views of ``n`` particles: from ``views_file`` (its rotations sampled, without
    replacement when it has at least ``n`` rows), ``preferred``, or uniform (neither).

    Returns float64 (n, 3, 3) map→image matrices.
    """
    check_view_source(views_file, preferred)
    if preferred is not None:
        return preferred_rotations(n, preferred, rng)
    if views_file is None:
        return random_rotations(n, rng)
    source = read_particles(views_file, require_images=False)
    if source.rotations is None:
        raise InputError(f"{views_file}: no angles/poses to take views from")
    rows = rng.choice(len(source), size=n, replace=n > len(source))
    return np.asarray(source.rotations, dtype=np.float64)[rows]
