"""An FSC curve in the XML the EMDB takes with a deposition (as ``relion_postprocess`` writes
``postprocess_fsc.xml``): ``<fsc title=... xaxis="Resolution (A-1)" yaxis="Correlation
Coefficient">`` holding one ``<coordinate><x>…</x><y>…</y></coordinate>`` per shell."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["write_fsc_xml"]


def write_fsc_xml(
    path: str | Path, frequency_per_angstrom: ArrayLike, values: ArrayLike, title: str
) -> None:
    """Write an FSC curve as the EMDB's FSC XML.

    Parameters
    ----------
    path : str or Path
    frequency_per_angstrom : array_like, shape (S,)
        Each shell's spatial frequency (1/Å), increasing.
    values : array_like, shape (S,)
        The FSC at each; shells whose value is not finite are left out.
    title : str
    """
    x = np.asarray(frequency_per_angstrom, dtype=np.float64).reshape(-1)
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"frequencies {x.shape} and values {y.shape} differ in shape")
    lines = [
        f'<fsc title={quoteattr(title)} xaxis="Resolution (A-1)" yaxis="Correlation Coefficient">'
    ]
    for xi, yi in zip(x, y, strict=True):
        if np.isfinite(xi) and np.isfinite(yi):
            lines += [
                "  <coordinate>",
                f"    <x>{xi:.6g}</x>",
                f"    <y>{yi:.6g}</y>",
                "  </coordinate>",
            ]
    lines.append("</fsc>")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
