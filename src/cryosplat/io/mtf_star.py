"""A detector's modulation transfer function (MTF) as RELION tabulates it.

RELION's ``data/mtf_*.star`` files (and the curves detector makers publish in that form) hold one
loop of ``_rlnResolutionInversePixel`` (the frequency in cycles per *detector* pixel, 0 to 0.5 at
the detector's Nyquist) and ``_rlnMtfValue`` (the fraction of the signal's amplitude the detector
passes there). ``relion_postprocess --mtf FILE --mtf_angpix A`` divides a map by it, reading a
frequency ``s`` (1/Å) of the map at ``s · A`` cycles per detector pixel, where ``A`` is the raw
micrographs' pixel size (not a super-resolution one): a binned map's Nyquist sits at less than
the detector's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosplat.core.errors import InputError
from cryosplat.io.star import read_star

__all__ = ["MTF_COLUMNS", "MTFCurve", "read_mtf_star"]

MTF_COLUMNS = ("rlnResolutionInversePixel", "rlnMtfValue")


@dataclass(frozen=True)
class MTFCurve:
    """A tabulated MTF.

    Attributes
    ----------
    inverse_pixel : numpy.ndarray, float64, shape (n,)
        Frequencies in cycles per detector pixel, strictly increasing.
    value : numpy.ndarray, float64, shape (n,)
        The MTF there, positive.
    """

    inverse_pixel: np.ndarray
    value: np.ndarray

    def __post_init__(self) -> None:
        x, y = np.asarray(self.inverse_pixel), np.asarray(self.value)
        if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
            raise ValueError(
                f"an MTF needs at least two (frequency, value) rows, got shapes {x.shape} and "
                f"{y.shape}"
            )
        if not np.all(np.diff(x) > 0):
            row = int(np.flatnonzero(np.diff(x) <= 0)[0]) + 2
            raise ValueError(
                f"the MTF's frequencies must increase, row {row} does not ({x[row - 1]})"
            )
        if not np.all(y > 0):
            row = int(np.flatnonzero(~(y > 0))[0]) + 1
            raise ValueError(f"the MTF must be positive, row {row} holds {y[row - 1]}")

    def at(self, inverse_pixel: np.ndarray) -> np.ndarray:
        """The MTF at ``inverse_pixel`` (cycles per detector pixel), linear between rows; the
        first row's value before it and the last row's past it, as RELION reads it."""
        return np.interp(inverse_pixel, self.inverse_pixel, self.value)


def read_mtf_star(path: str | Path) -> MTFCurve:
    """The MTF in ``path``: the first loop holding both :data:`MTF_COLUMNS`.

    Raises
    ------
    InputError
        No such loop, a value that is not a number, frequencies that do not increase or a value
        that is not positive (naming the file and row).
    """
    path = Path(path)
    blocks = read_star(path)
    for block in blocks.values():
        if block.is_loop and all(c in block for c in MTF_COLUMNS):
            try:
                return MTFCurve(*(block.get_float(c) for c in MTF_COLUMNS))
            except ValueError as exc:
                raise InputError(f"{path}: {exc}") from None
    raise InputError(
        f"{path}: no loop with _{MTF_COLUMNS[0]} and _{MTF_COLUMNS[1]} (a RELION MTF STAR file, "
        "as its data/mtf_*.star)"
    )
