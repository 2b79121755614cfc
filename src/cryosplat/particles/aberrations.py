"""Optical aberrations that a particle file records: those corrected, and those named in a warning.

cryosplat's CTF (:mod:`cryosplat.core.ctf`) has defocus, astigmatism, Cs, amplitude contrast, phase
shift, B-factor and scale. RELION 3.1 (CTF refinement) and cryoSPARC (global and local CTF
refinement) can also estimate beam tilt, higher-order odd and even aberrations (Zernike
coefficients) and anisotropic magnification; ignored, they cost resolution (phase errors that
grow with frequency).

RELION's antisymmetric ones (``rlnBeamTiltX/Y``, ``rlnOddZernike``) are read into per-particle
coefficients (:func:`relion_odd_zernike`) and taken out of the images as ``relion_reconstruct``
does; its symmetric ones (``rlnEvenZernike``, :func:`relion_even_zernike`) join the CTF
(:mod:`cryosplat.core.aberrations`); its magnification matrices (:func:`relion_mag_matrices`)
place each image's samples. The others (per-particle ``rlnMagMat``, cryoSPARC's fields) are
named by the warnings here instead of ignored silently.
"""

from __future__ import annotations

import numpy as np

from cryosplat.core.aberrations import insert_beam_tilt
from cryosplat.core.ctf import electron_wavelength_angstrom
from cryosplat.core.errors import InputError
from cryosplat.io.star import StarBlock

__all__ = [
    "relion_mag_matrices",
    "relion_odd_zernike",
    "relion_even_zernike",
    "relion_aberration_warnings",
    "cryosparc_aberration_warnings",
]

_RELION_TILT = ("rlnBeamTiltX", "rlnBeamTiltY")
_RELION_MAG = tuple(f"rlnMagMat{i}{j}" for i in (0, 1) for j in (0, 1))
_CRYOSPARC = ("ctf/shift_A", "ctf/tilt_A", "ctf/trefoil_A", "ctf/tetra_A", "ctf/anisomag")


def _message(table: str, names: list[str]) -> str:
    return (
        f"{table}: optical aberration column(s) {', '.join(names)} present and not modelled "
        "(cryosplat models RELION's beam tilt, Zernike aberrations and magnification matrices "
        "per optics group, as RELION 3.1 reads them, not per particle, and not cryoSPARC's "
        "aberrations); high-resolution detail may be lost"
    )


_IDENTITY = {"rlnMagMat00": 1.0, "rlnMagMat01": 0.0, "rlnMagMat10": 0.0, "rlnMagMat11": 1.0}


def _relion_table(block: StarBlock, tilt_read: bool) -> list[str]:
    found = []
    if not tilt_read:
        found += [c for c in _RELION_TILT if c in block and np.any(block.get_float(c) != 0)]
    present = [c for c in _RELION_MAG if c in block]
    if any(not np.allclose(block.get_float(c), _IDENTITY[c], atol=1e-6) for c in present):
        found += present
    return found


def relion_mag_matrices(
    optics: StarBlock | None, group_of: np.ndarray, path: object = ""
) -> np.ndarray | None:
    """Each particle's magnification matrix ``M`` (``rlnMagMat00..11`` of its optics group).

    RELION 3.1 evaluates an image's CTF and aberrations at ``M k`` and places its Fourier sample
    at ``k`` on the map's central slice at ``M k`` (``ObservationModel::applyAnisoMag``): the image
    is the undistorted one seen through ``M``. Missing entries are the identity's.

    Returns
    -------
    np.ndarray, shape (N, 2, 2), or None
        None when every group's matrix is the identity (to 1e-6).
    """
    if optics is None or not any(c in optics for c in _RELION_MAG):
        return None
    n_groups = optics.n_rows
    table = np.empty((n_groups, 2, 2))
    for c in _RELION_MAG:
        values = optics.get_float(c) if c in optics else np.full(n_groups, _IDENTITY[c])
        if not np.all(np.isfinite(values)):
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InputError(f"{path}: data_optics, column {c}, row {row + 1}: {values[row]}")
        table[:, int(c[-2]), int(c[-1])] = values
    det = np.linalg.det(table)
    if np.any(np.abs(det - 1.0) > 0.2):
        row = int(np.flatnonzero(np.abs(det - 1.0) > 0.2)[0])
        raise InputError(
            f"{path}: data_optics, row {row + 1}: magnification matrix {table[row].tolist()} "
            f"has determinant {det[row]:.4g} (a refined one lies within a few % of 1)"
        )
    if np.allclose(table, np.eye(2), atol=1e-6):
        return None
    return table[group_of]


def _coefficient_lists(block: StarBlock, name: str, table: str, path: object) -> list[np.ndarray]:
    out = []
    for row, text in enumerate(block.get_str(name)):
        tokens = str(text).strip().strip("[]").replace(",", " ").split()
        try:
            out.append(np.array([float(x) for x in tokens], dtype=np.float64))
        except ValueError:
            raise InputError(f"{path}: {table}, column {name}, row {row + 1}: {text!r}") from None
        if not np.all(np.isfinite(out[-1])):
            raise InputError(f"{path}: {table}, column {name}, row {row + 1}: not finite: {text!r}")
    return out


def _per_particle(lists: list[np.ndarray], group_of: np.ndarray) -> np.ndarray:
    """Each group's coefficient list, padded with zeros to the longest, for each particle."""
    table = np.zeros((len(lists), max(len(c) for c in lists)))
    for g, c in enumerate(lists):
        table[g, : len(c)] = c
    return table[group_of]


def _tilts(block: StarBlock, table: str, path: object) -> np.ndarray | None:
    if not any(c in block for c in _RELION_TILT):
        return None
    columns = []
    for c in _RELION_TILT:
        values = block.get_float(c) if c in block else np.zeros(block.n_rows)
        if not np.all(np.isfinite(values)):
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InputError(f"{path}: {table}, column {c}, row {row + 1}: {values[row]}")
        columns.append(values)
    return np.stack(columns, axis=1)


def relion_odd_zernike(
    optics: StarBlock | None,
    particles: StarBlock,
    group_of: np.ndarray,
    per_particle: dict[str, np.ndarray],
    path: object = "",
) -> np.ndarray | None:
    """Each particle's antisymmetric aberration coefficients, as RELION 3.1 reads them.

    Parameters
    ----------
    optics : StarBlock or None
        ``data_optics``: ``rlnOddZernike`` (a list per group) and ``rlnBeamTiltX/Y`` (mrad).
    particles : StarBlock
        The particle table: ``rlnBeamTiltX/Y`` per particle in a RELION 3.0 file (no
        ``optics``); in a 3.1 file RELION reads the tilt from ``data_optics`` only, and one per
        particle is named in a warning (:func:`relion_aberration_warnings`).
    group_of : np.ndarray, shape (N,), int
        Each particle's row of ``optics``.
    per_particle : dict
        ``"voltage"`` (kV) and ``"cs"`` (mm) per particle, for the beam tilt's coma.
    path : str or Path
        For messages.

    Returns
    -------
    np.ndarray, shape (N, K), or None
        Coefficients in RELION's order (:func:`cryosplat.core.aberrations.odd_index_to_mn`) with
        the beam tilt folded in (:func:`cryosplat.core.aberrations.insert_beam_tilt`); None when
        every one is zero.
    """
    n = len(group_of)
    base = np.zeros((n, 0))
    tilt = None
    if optics is not None:
        if "rlnOddZernike" in optics:
            groups = _coefficient_lists(optics, "rlnOddZernike", "data_optics", path)
            base = _per_particle(groups, group_of)
        group_tilt = _tilts(optics, "data_optics", path)
        tilt = None if group_tilt is None else group_tilt[group_of]
    else:  # a RELION 3.0 file: the tilt per particle (RELION 3.1 makes optics groups of it)
        tilt = _tilts(particles, f"data_{particles.name}", path)
    if tilt is not None and np.any(tilt != 0):
        cs, voltage = per_particle["cs"], per_particle["voltage"]
        tilted = np.any(tilt != 0, axis=1)
        if np.any(tilted & (~np.isfinite(cs) | ~np.isfinite(voltage))):
            raise InputError(
                f"{path}: a beam tilt needs the voltage and Cs of every particle (rlnVoltage, "
                "rlnSphericalAberration)"
            )
        folded = insert_beam_tilt(
            base[tilted],
            tilt[tilted, 0],
            tilt[tilted, 1],
            cs[tilted],
            electron_wavelength_angstrom(voltage[tilted]),
        )
        widened = np.zeros((n, folded.shape[1]))
        widened[:, : base.shape[1]] = base
        widened[tilted] = folded
        base = widened
    if base.size == 0 or not np.any(base != 0):
        return None
    return base


def relion_even_zernike(
    optics: StarBlock | None, group_of: np.ndarray, path: object = ""
) -> np.ndarray | None:
    """Each particle's symmetric aberration coefficients (``rlnEvenZernike`` of its optics group,
    RELION's order: :func:`cryosplat.core.aberrations.even_index_to_mn`), shape (N, K); None when
    there are none or all are zero."""
    if optics is None or "rlnEvenZernike" not in optics:
        return None
    groups = _coefficient_lists(optics, "rlnEvenZernike", "data_optics", path)
    out = _per_particle(groups, group_of)
    return out if out.size and np.any(out != 0) else None


def relion_aberration_warnings(particles: StarBlock, optics: StarBlock | None) -> list[str]:
    """Warnings for RELION aberration columns of the particle table that are not modelled: a
    magnification matrix per particle that is not the identity (RELION 3.1 reads the matrix per
    optics group only), and, in a 3.1 file (``optics`` given), a beam tilt per particle.

    Everything ``data_optics`` holds is modelled (:func:`relion_odd_zernike`,
    :func:`relion_even_zernike`, :func:`relion_mag_matrices`); so is a RELION 3.0 table's
    per-particle beam tilt.

    Returns
    -------
    list of str
        One warning naming the columns, or none.
    """
    found = _relion_table(particles, tilt_read=optics is None)
    return [_message(f"data_{particles.name}", found)] if found else []


def cryosparc_aberration_warnings(table: np.ndarray) -> list[str]:
    """Warnings for cryoSPARC ``ctf/shift_A``, ``tilt_A``, ``trefoil_A``, ``tetra_A``, ``anisomag``.

    A field counts when any of its values is non-zero (cryoSPARC writes zeros when the refinement
    was not run).
    """
    names = table.dtype.names or ()
    found = [
        n for n in _CRYOSPARC if n in names and bool(np.any(np.nan_to_num(table[n], nan=0) != 0))
    ]
    return [_message("cryoSPARC ctf", found)] if found else []
