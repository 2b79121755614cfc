"""The views of a simulated data set: uniform, taken from a real particle file, or preferred.

Real data sets are rarely uniform in their views: molecules lying on the air-water interface or
the support show one face far more often than the others (*preferred orientation*), which leaves
a cone of Fourier space sampled thinly, and many show two or three such faces (a top view and a
side view). :class:`PreferredViews` is one such cone: a share of the particles seen within
``cone_degrees`` of one view (by default the map's z axis, RELION tilt at most ``cone_degrees``;
every in-plane angle alike, the view direction uniform on the cap). :func:`preferred_rotations`
draws one or several cones, the rest of the particles uniform on SO(3). A view direction ``d``
and ``-d`` give the same central slice, so a cone of 90° covers every slice once, and one cone of
share 1 and ``cone_degrees`` below 90 leaves the side views out altogether (a tilt limit).

Views are map→image matrices ``A`` (:mod:`cryosplat.core.conventions`): the beam runs along
``A⁻¹ z``, at tilt ``arccos(A[2, 2])`` from the map's z axis. A cone about the view of RELION
angles ``(rot, tilt)`` is the cone about z turned by ``E = A(rot, tilt, 0)``: ``A' = A E``, whose
beam ``Eᵀ A⁻¹ z`` lies as far from ``Eᵀ z`` (that view's beam) as ``A⁻¹ z`` from z.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosplat.core.conventions import euler_relion_to_matrix
from cryosplat.core.errors import InputError
from cryosplat.core.rotations import random_rotations
from cryosplat.particles.read import read_particles

__all__ = [
    "PreferredViews",
    "as_cones",
    "check_view_source",
    "preferred_rotations",
    "sample_views",
]


@dataclass(frozen=True)
class PreferredViews:
    """A share ``fraction`` of the views within ``cone_degrees`` of one view.

    Attributes
    ----------
    fraction : float
        In ``[0, 1]``: the share of particles drawn within the cone.
    cone_degrees : float
        In ``(0, 90]``: the largest angle (degrees) between a preferred view's beam and the
        cone's axis.
    axis_tilt_degrees, axis_rot_degrees : float
        The cone's axis: the beam of the view of these RELION angles (tilt in ``[0, 180]``);
        ``0, 0`` (the default): the map's z axis, the cone then the views of tilt at most
        ``cone_degrees``.
    """

    fraction: float
    cone_degrees: float
    axis_tilt_degrees: float = 0.0
    axis_rot_degrees: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"preferred-view fraction must be in [0, 1], got {self.fraction}")
        if not 0.0 < self.cone_degrees <= 90.0:
            raise ValueError(
                f"preferred-view cone must be in (0, 90] degrees, got {self.cone_degrees}"
            )
        if not 0.0 <= self.axis_tilt_degrees <= 180.0:
            raise ValueError(
                f"preferred-view axis tilt must be in [0, 180] degrees, got "
                f"{self.axis_tilt_degrees}"
            )
        if not math.isfinite(self.axis_rot_degrees):
            raise ValueError(
                f"preferred-view axis rot must be a finite angle, got {self.axis_rot_degrees}"
            )

    @classmethod
    def parse(cls, text: str) -> PreferredViews:
        """``"FRACTION,DEGREES"`` (e.g. ``"0.8,20"``: about the map's z axis) or
        ``"FRACTION,DEGREES,TILT,ROT"`` (e.g. ``"0.4,12,90,0"``: about the view of RELION tilt
        90°, rot 0°), as the command line gives it."""
        parts = [p.strip() for p in str(text).split(",")]
        try:
            if len(parts) not in (2, 4):
                raise ValueError
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(
                "preferred views must be FRACTION,DEGREES or FRACTION,DEGREES,TILT,ROT (e.g. "
                f"0.8,20 or 0.4,12,90,0), got {text!r}"
            ) from None
        return cls(*values)

    @property
    def about_z(self) -> bool:
        """True when the cone's axis is the map's z axis."""
        return self.axis_tilt_degrees == 0.0

    def share_within_cone(self) -> float:
        """The expected share of all views within the cone when it is the only one: the
        preferred ones and the uniform ones that fall in it (tilt uniform in cosine on
        [0°, 180°])."""
        cap = (1.0 - math.cos(math.radians(self.cone_degrees))) / 2.0
        return self.fraction + (1.0 - self.fraction) * cap


def as_cones(views: PreferredViews | Sequence[PreferredViews]) -> tuple[PreferredViews, ...]:
    """One cone or several as a tuple, their shares checked to sum to at most 1."""
    cones = (views,) if isinstance(views, PreferredViews) else tuple(views)
    if not cones or not all(isinstance(c, PreferredViews) for c in cones):
        raise ValueError(f"preferred views must be one or more PreferredViews, got {views!r}")
    total = sum(c.fraction for c in cones)
    if total > 1.0 + 1e-9:
        shares = " + ".join(f"{c.fraction:g}" for c in cones)
        raise ValueError(
            f"preferred-view fractions must sum to at most 1, got {shares} = {total:g}"
        )
    return cones


def preferred_rotations(
    n: int, views: PreferredViews | Sequence[PreferredViews], rng: np.random.Generator
) -> np.ndarray:
    """``n`` map→image matrices: ``round(fraction · n)`` of them within each cone (in the order
    given, while particles are left), the rest uniform on SO(3), in random order.

    Returns float64 (n, 3, 3).
    """
    if n < 0:
        raise ValueError(f"number of views must be non-negative, got {n}")
    parts, left = [], n
    for cone in as_cones(views):
        k = min(left, int(round(cone.fraction * n)))
        left -= k
        cos_tilt = rng.uniform(math.cos(math.radians(cone.cone_degrees)), 1.0, k)
        rot, psi = rng.uniform(-180.0, 180.0, (2, k))
        tilted = euler_relion_to_matrix(rot, np.degrees(np.arccos(cos_tilt)), psi).reshape(k, 3, 3)
        if not cone.about_z:
            axis = euler_relion_to_matrix(cone.axis_rot_degrees, cone.axis_tilt_degrees, 0.0)
            tilted = tilted @ np.asarray(axis, dtype=np.float64).reshape(3, 3)
        parts.append(tilted)
    rotations = np.concatenate([*parts, random_rotations(left, rng)])
    return rotations[rng.permutation(n)]


def check_view_source(
    views_file: Path | None, preferred: PreferredViews | Sequence[PreferredViews] | None
) -> None:
    """Raise :class:`InputError` when both a views file and preferred views are given."""
    if views_file is not None and preferred is not None:
        raise InputError("give a views file or preferred views, not both")


def sample_views(
    n: int,
    rng: np.random.Generator,
    views_file: Path | None = None,
    preferred: PreferredViews | Sequence[PreferredViews] | None = None,
) -> np.ndarray:
    """The views of ``n`` particles: from ``views_file`` (its rotations sampled, without
    replacement when it has at least ``n`` rows), ``preferred`` (one cone or several,
    :func:`preferred_rotations`), or uniform (neither).

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
