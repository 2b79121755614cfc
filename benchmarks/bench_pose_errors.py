"""Poses recorded with errors, as every refinement leaves them.

A benchmark set's images are projected with the true views and shifts; ``particles.star``, which
every method is given, may hold them with errors instead (``DatasetSpec.pose_error_degrees``,
``DatasetSpec.shift_error_angstrom``). Real poses come from a refinement against noisy images
and are never exact: at the resolutions these sets reach, errors of a degree or two and of an
ångström or two are usual, more for small particles. Their effect on a map is a blur that grows
with the distance from the centre of rotation and with the frequency, the same for every method
given the same poses.
"""

from __future__ import annotations

import numpy as np

from cryosplat.core.conventions import rotvec_to_matrix


def small_rotations(n: int, rms_degrees: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` random rotations (n, 3, 3) whose angles have root-mean-square ``rms_degrees``.

    Each is made from a rotation vector drawn from an isotropic normal distribution with
    ``E|v|² = rms²`` (its axis uniform on the sphere), made a matrix by
    :func:`cryosplat.core.conventions.rotvec_to_matrix`.
    """
    if rms_degrees < 0:
        raise ValueError(f"rms_degrees must be >= 0, got {rms_degrees}")
    vectors = rng.normal(scale=np.radians(rms_degrees) / np.sqrt(3.0), size=(n, 3))
    return rotvec_to_matrix(vectors)


def recorded_poses(
    rotations: np.ndarray,
    shifts_angstrom: np.ndarray,
    rms_degrees: float,
    shift_sd_angstrom: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The poses as a refinement would record them: each view turned by a small random rotation
    of root-mean-square angle ``rms_degrees`` (applied in the image's frame, ``ΔR · A``), each
    shift moved by a normal error of ``shift_sd_angstrom`` per axis.

    Parameters
    ----------
    rotations : (N, 3, 3) array
        The true projection matrices (RELION's ``A``: map point ``r`` lands at ``(A r)_xy``).
    shifts_angstrom : (N, 2) array
        The true shifts (Å).
    rms_degrees, shift_sd_angstrom : float
        The errors' sizes; 0 leaves that part as it is.
    seed : int
        The errors' own stream (the rest of the set is drawn apart from it).

    Returns
    -------
    (N, 3, 3) array, (N, 2) array
        The recorded rotations and shifts (new arrays).
    """
    if shift_sd_angstrom < 0:
        raise ValueError(f"shift_sd_angstrom must be >= 0, got {shift_sd_angstrom}")
    rng = np.random.default_rng([seed, 59])
    n = len(rotations)
    turned = small_rotations(n, rms_degrees, rng) @ np.asarray(rotations, dtype=np.float64)
    moved = np.asarray(shifts_angstrom, dtype=np.float64) + rng.normal(
        scale=shift_sd_angstrom, size=(n, 2)
    )
    return turned, moved
