"""Optical aberrations that a particle file records and cryosplat does not model.

cryosplat's CTF (:mod:`cryosplat.core.ctf`) has defocus, astigmatism, Cs, amplitude contrast, phase
shift, B-factor and scale. RELION 3.1 (CTF refinement) and cryoSPARC (global and local CTF
refinement) can also estimate beam tilt, higher-order odd and even aberrations (Zernike
coefficients) and anisotropic magnification; ignored, they cost resolution (phase errors that
grow with frequency). Each function here names the columns present with a non-trivial value, so
that the readers can warn instead of ignoring them silently.
"""

from __future__ import annotations

import re

import numpy as np

from cryosplat.io.star import StarBlock

__all__ = ["relion_aberration_warnings", "cryosparc_aberration_warnings"]

_RELION_SCALAR = ("rlnBeamTiltX", "rlnBeamTiltY")
_RELION_LIST = ("rlnOddZernike", "rlnEvenZernike")
_RELION_MAG = tuple(f"rlnMagMat{i}{j}" for i in (0, 1) for j in (0, 1))
_CRYOSPARC = ("ctf/shift_A", "ctf/tilt_A", "ctf/trefoil_A", "ctf/tetra_A", "ctf/anisomag")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _message(table: str, names: list[str]) -> str:
    return (
        f"{table}: optical aberration column(s) {', '.join(names)} present and not modelled "
        "(cryosplat's CTF has no beam tilt, higher-order aberrations or anisotropic "
        "magnification); high-resolution detail may be lost"
    )


def _nonzero_floats(block: StarBlock, name: str) -> bool:
    try:
        values = block.get_float(name)
    except (ValueError, KeyError):
        return True
    return bool(np.any(np.nan_to_num(values) != 0))


def _nonzero_lists(block: StarBlock, name: str) -> bool:
    for text in block.get_str(name):
        if any(float(x) != 0 for x in _NUMBER.findall(str(text))):
            return True
    return False


def _relion_table(block: StarBlock) -> list[str]:
    found = [c for c in _RELION_SCALAR if c in block and _nonzero_floats(block, c)]
    found += [c for c in _RELION_LIST if c in block and _nonzero_lists(block, c)]
    present = [c for c in _RELION_MAG if c in block]
    if present:
        identity = {"rlnMagMat00": 1.0, "rlnMagMat01": 0.0, "rlnMagMat10": 0.0, "rlnMagMat11": 1.0}
        if any(not np.allclose(block.get_float(c), identity[c], atol=1e-6) for c in present):
            found += present
    return found


def relion_aberration_warnings(optics: StarBlock | None, particles: StarBlock) -> list[str]:
    """Warnings for RELION aberration columns (optics and per particle) that are not trivial.

    Parameters
    ----------
    optics : StarBlock or None
        The ``data_optics`` table (RELION 3.1+): ``rlnBeamTiltX/Y`` (mrad), ``rlnOddZernike``,
        ``rlnEvenZernike`` (lists of coefficients), ``rlnMagMat00..11`` (ignored when identity).
    particles : StarBlock
        The particle table: per-particle ``rlnBeamTiltX/Y`` (RELION 3.0) and the same columns.

    Returns
    -------
    list of str
        One warning per table that has any, naming the columns.
    """
    warnings = []
    for label, block in (("data_optics", optics), (f"data_{particles.name}", particles)):
        if block is None:
            continue
        found = _relion_table(block)
        if found:
            warnings.append(_message(label, found))
    return warnings


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
