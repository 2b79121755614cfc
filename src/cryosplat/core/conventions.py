"""The conventions of cryosplat, written once.

Every other module refers to this one for which way a rotation maps, where the origin of an image or
a map is, and what sign and unit a particle shift has. We follow RELION 3.1.

Frames and grids
----------------
* Coordinates are ``(x, y, z)`` in Ångström. Arrays are indexed ``image[y, x]`` and ``map[z, y, x]``
  (the MRC order).
* The origin of a D×D image is pixel ``(D // 2, D // 2)`` and the origin of a D³ map is voxel
  ``(D // 2, D // 2, D // 2)``: exactly where a centred FFT (``fftshift``) puts zero frequency, as
  in RELION and cryoDRGN. Pixel index ``i`` sits at coordinate ``(i - D // 2) * pixel_size``.
* Files (MRC maps, exported pseudo-atoms) use the *file frame*: voxel 0 at 0 Å, as RELION writes
  maps and ChimeraX reads them. ``file = internal + (D // 2) * pixel_size`` on every axis.

Rotations
---------
RELION's ZYZ Euler angles ``(rot, tilt, psi)`` in degrees give the matrix ``A`` of RELION's
``Euler_angles2matrix``. ``A`` maps the map frame to the image frame: a map point ``r`` projects to
image position ``(A @ r)[:2]`` and the projection integrates along ``(A @ r)[2]``.

Shifts
------
RELION's ``rlnOriginX/Y`` (pixels, RELION <= 3.0) and ``rlnOriginXAngst/YAngst`` (Å, 3.1+) are the
offset ``o`` of an image: the image holds the centred projection moved by ``-o``, so the particle
centre sits at ``-o``. We store ``shifts_angstrom = o`` (the RELION sign) and apply ``image(p) =
projection(p + o)``, a Fourier phase ``exp(+2πi k·o)``.

Peers
-----
* cryoSPARC ``alignments3D/pose`` is a rotation vector (axis × angle, radians) whose Rodrigues
  matrix ``R_cs`` is the transpose of RELION's ``A``: ``A = R_cs.T``. ``alignments3D/shift`` is in
  pixels with the RELION sign: ``shifts_angstrom = shift * pixel_size``.
* cryoDRGN ``poses.pkl`` holds ``(rotations, translations)``; rotations are ``A`` itself:
  cryoDRGN's ``R_from_relion(rot, tilt, psi)`` is ``S Rz(psi) Ry'(tilt) Rz(rot) S`` with active
  ``Rz``, RELION's ``Ry'`` and ``S = diag(1, -1, 1)``, which equals RELION's
  ``Euler_angles2matrix``; its cryoSPARC reading stores ``R_cs.T``. Translations are the RELION
  origin in fractions of the box, same sign (``rlnOriginX / D`` from a STAR, ``shift / D`` from a
  .cs): ``shifts_angstrom = translations * D * pixel_size``. Its ``ctf.pkl`` has 9 columns
  ``[D, pixel_size, dfU, dfV, dfang_deg, kV, Cs_mm, amp_contrast, phase_shift_deg]``, the angles
  converted from the .cs radians.
  Verified on ``metadata/cryosparc_P12_J24_001_particles.cs`` against cryoDRGN's ``pose.cs.pkl``
  and ``ctf2.pkl`` of the same 2,019 particles (``tests/test_cryosparc.py``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "CRYODRGN_CTF_COLUMNS",
    "center_index",
    "coordinates_1d",
    "euler_relion_to_matrix",
    "matrix_to_euler_relion",
    "rotvec_to_matrix",
    "matrix_to_rotvec",
    "file_origin_angstrom",
    "cropped_map_origin_angstrom",
    "source_box_to_write",
    "mirrored_map",
]

CRYODRGN_CTF_COLUMNS = (
    "box",
    "pixel_size_angstrom",
    "defocus_u_angstrom",
    "defocus_v_angstrom",
    "defocus_angle_degrees",
    "voltage_kv",
    "cs_mm",
    "amplitude_contrast",
    "phase_shift_degrees",
)


def center_index(box: int) -> int:
    """Index of the origin pixel/voxel along an axis of length ``box`` (``box // 2``)."""
    return box // 2


def coordinates_1d(box: int, pixel_size_angstrom: float = 1.0) -> np.ndarray:
    """Coordinates (Å) of the ``box`` pixel centres along one axis, 0 at index ``box // 2``."""
    return (np.arange(box) - box // 2) * float(pixel_size_angstrom)


def mirrored_map(volume: np.ndarray) -> np.ndarray:
    """A map ``volume[z, y, x]`` mirrored through the plane z = D // 2 (the origin voxel stays):
    the other hand. Twice, the map itself."""
    box = volume.shape[0]
    return volume[(2 * center_index(box) - np.arange(box)) % box]


def file_origin_angstrom(box: int, pixel_size_angstrom: float) -> float:
    """Offset (Å) from the internal frame to the file frame on each axis: ``(box // 2) * pixel``."""
    return (box // 2) * float(pixel_size_angstrom)


def centre_voxel_xyz_angstrom(
    origin_xyz_angstrom: np.ndarray, shape_zyx: tuple[int, int, int], pixel_size_angstrom: float
) -> np.ndarray:
    """Where a map's centre voxel (``D // 2`` along each axis) lies (Å; x, y, z) when its first
    voxel lies at ``origin_xyz_angstrom`` (a header's placement, as ChimeraX reads it); the map
    ``volume[z, y, x]`` of ``shape_zyx`` need not be cubic."""
    sizes = tuple(shape_zyx)[::-1]  # x, y, z
    offsets = [file_origin_angstrom(int(n), pixel_size_angstrom) for n in sizes]
    return np.asarray(origin_xyz_angstrom, dtype=np.float64) + np.array(offsets)


def cropped_map_origin_angstrom(
    source_box: int, source_pixel_angstrom: float, box: int, pixel_size_angstrom: float
) -> float:
    """Header origin (Å, each axis) of a map made at ``box`` from images of ``source_box``
    Fourier-cropped to it, so that it lies where a map at the source box would.

    The rotation centre is voxel ``D//2`` of either grid (the FFT-aligned convention), at
    ``file_origin_angstrom`` from its first voxel; the two differ by half a source pixel when
    ``source_box`` is odd (``D − 1`` voxels of ``p·D/(D − 1)``), and not at all between even boxes.
    """
    source = file_origin_angstrom(source_box, source_pixel_angstrom)
    return round(source - file_origin_angstrom(box, pixel_size_angstrom), 6) + 0.0  # not -0.0


def source_box_to_write(source_box: int, box: int) -> int | None:
    """The box a run's maps go back to: ``source_box`` where it is odd and the images were
    cropped to the even box below it for that alone (the engines work at even boxes;
    :mod:`cryosplat.reconstruct.written_grid`); None (the working box) otherwise."""
    if source_box % 2 == 1 and box == source_box - 1:
        return source_box
    return None


def euler_relion_to_matrix(
    rot_deg: ArrayLike, tilt_deg: ArrayLike, psi_deg: ArrayLike
) -> np.ndarray:
    """RELION's ``Euler_angles2matrix``: ZYZ angles in degrees to the map→image matrix ``A``.

    Parameters
    ----------
    rot_deg, tilt_deg, psi_deg : array_like, shape (...)
        RELION ``rlnAngleRot``, ``rlnAngleTilt``, ``rlnAnglePsi`` in degrees.

    Returns
    -------
    np.ndarray, shape (..., 3, 3), float64
        ``A`` such that map point ``r`` lands at image position ``(A @ r)[:2]``.
    """
    a, b, g = (np.deg2rad(np.asarray(v, dtype=np.float64)) for v in (rot_deg, tilt_deg, psi_deg))
    a, b, g = np.broadcast_arrays(a, b, g)
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    m = np.empty(a.shape + (3, 3), dtype=np.float64)
    m[..., 0, 0] = cg * cc - sg * sa
    m[..., 0, 1] = cg * cs + sg * ca
    m[..., 0, 2] = -cg * sb
    m[..., 1, 0] = -sg * cc - cg * sa
    m[..., 1, 1] = -sg * cs + cg * ca
    m[..., 1, 2] = sg * sb
    m[..., 2, 0] = sc
    m[..., 2, 1] = ss
    m[..., 2, 2] = cb
    return m


def matrix_to_euler_relion(matrix: ArrayLike) -> np.ndarray:
    """Inverse of :func:`euler_relion_to_matrix` (RELION's ``Euler_matrix2angles``).

    Parameters
    ----------
    matrix : array_like, shape (..., 3, 3)

    Returns
    -------
    np.ndarray, shape (..., 3)
        ``(rot, tilt, psi)`` in degrees, tilt in [0, 180].
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have shape (..., 3, 3), got {m.shape}")
    abs_sb = np.sqrt(m[..., 0, 2] ** 2 + m[..., 1, 2] ** 2)
    regular = abs_sb > 16 * np.finfo(np.float32).eps
    gamma = np.arctan2(m[..., 1, 2], -m[..., 0, 2])
    alpha = np.arctan2(m[..., 2, 1], m[..., 2, 0])
    sin_g, cos_g = np.sin(gamma), np.cos(gamma)
    sign_from_cos = np.sign(-m[..., 0, 2] * np.sign(cos_g))
    sign_from_sin = np.where(sin_g > 0, np.sign(m[..., 1, 2]), -np.sign(m[..., 1, 2]))
    sign_sb = np.where(np.abs(sin_g) < np.finfo(np.float32).eps, sign_from_cos, sign_from_sin)
    beta = np.arctan2(sign_sb * abs_sb, m[..., 2, 2])
    # Gimbal lock (tilt 0 or 180): only rot ± psi is defined; RELION puts it all in psi.
    up = m[..., 2, 2] > 0
    gamma_lock = np.where(
        up, np.arctan2(-m[..., 1, 0], m[..., 0, 0]), np.arctan2(m[..., 1, 0], -m[..., 0, 0])
    )
    alpha = np.where(regular, alpha, 0.0)
    beta = np.where(regular, beta, np.where(up, 0.0, np.pi))
    gamma = np.where(regular, gamma, gamma_lock)
    return np.rad2deg(np.stack([alpha, beta, gamma], axis=-1))


def rotvec_to_matrix(rotvec: ArrayLike) -> np.ndarray:
    """Rodrigues' formula: rotation vectors (axis × angle, radians) to active rotation matrices.

    Parameters
    ----------
    rotvec : array_like, shape (..., 3)

    Returns
    -------
    np.ndarray, shape (..., 3, 3)
    """
    v = np.asarray(rotvec, dtype=np.float64)
    if v.shape[-1] != 3:
        raise ValueError(f"rotation vectors must have shape (..., 3), got {v.shape}")
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    theta2 = x * x + y * y + z * z
    theta = np.sqrt(theta2)
    small = theta < 1e-8
    t = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta2 / 6.0, np.sin(t) / t)
    b = np.where(small, 0.5 - theta2 / 24.0, (1.0 - np.cos(t)) / t**2)
    # I + aK + bK² with K² = v vᵀ − |v|² I, element by element (stacked 3×3 products took 1 s
    # for 500,000 poses)
    c = 1.0 - b * theta2
    r = np.empty(v.shape[:-1] + (3, 3))
    r[..., 0, 0], r[..., 0, 1], r[..., 0, 2] = c + b * x * x, b * x * y - a * z, b * x * z + a * y
    r[..., 1, 0], r[..., 1, 1], r[..., 1, 2] = b * x * y + a * z, c + b * y * y, b * y * z - a * x
    r[..., 2, 0], r[..., 2, 1], r[..., 2, 2] = b * x * z - a * y, b * y * z + a * x, c + b * z * z
    return r


def matrix_to_rotvec(matrix: ArrayLike) -> np.ndarray:
    """Inverse of :func:`rotvec_to_matrix`: the rotation vector (axis × angle, the angle in
    [0, π]) of each rotation matrix (..., 3, 3).

    The angle is read from both the trace and the antisymmetric part (``atan2``), precise over the
    whole range. Past a quarter turn the axis is read from the symmetric part, where the
    antisymmetric one (``2 sin θ`` times the axis) fades: at a half turn it is zero, and a half
    turn read from it alone came out as no turn at all (round 2, session 92). The half turn's two
    vectors (±π times the axis) are the same rotation.
    """
    m = np.asarray(matrix, dtype=np.float64)
    cos_t = np.clip((np.trace(m, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    w = np.stack(
        [m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]],
        axis=-1,
    )
    sin_t = np.linalg.norm(w, axis=-1) / 2.0
    theta = np.arctan2(sin_t, cos_t)
    scale = np.where(sin_t < 1e-12, 0.5, theta / (2.0 * np.where(sin_t < 1e-12, 1.0, sin_t)))
    vectors = w * scale[..., None]
    wide = cos_t < 0.0
    if wide.any():  # (m + mᵀ)/2 − cos θ·I = (1 − cos θ)·n nᵀ: its largest column holds n
        turns, cos_wide = m[wide], cos_t[wide]
        sym = (turns + np.swapaxes(turns, -1, -2)) / 2.0
        sym = sym - cos_wide[..., None, None] * np.eye(3)
        k = np.argmax(np.diagonal(sym, axis1=-2, axis2=-1), axis=-1)
        column = np.take_along_axis(sym, k[..., None, None], axis=-1)[..., 0]
        axis = column / np.linalg.norm(column, axis=-1, keepdims=True)
        sign = np.where(np.sum(axis * w[wide], axis=-1) < 0.0, -1.0, 1.0)
        vectors[wide] = axis * (sign * theta[wide])[..., None]
    return vectors
