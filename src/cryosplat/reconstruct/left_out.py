"""The particles a run left out for the structure in their background, written for the user.

Images whose background holds a support film's edge or contamination weigh 0
(:mod:`cryosplat.reconstruct.grid.background_structure`). The run says which they are, so that
they can be looked at (``relion_display --i background_structure.star``) and left out of other
work, in the run folder:

* ``background_structure.npy``: their rows of the input file (0-based, sorted, as ``--ind`` and
  cryoDRGN read an index file);
* ``background_structure.star`` (a STAR input) or ``background_structure.cs`` (a cryoSPARC
  ``.cs``): the input with only those particles, every value as written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryosplat.io.atomic import atomic_path
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.selection import write_metadata_rows

__all__ = ["LEFT_OUT_STEM", "write_left_out"]

LEFT_OUT_STEM = "background_structure"


def write_left_out(folder: str | Path, particles: ParticleSet, rows: np.ndarray) -> list[Path]:
    """Write the particles at ``rows`` (of ``particles``) into ``folder`` as the module says;
    return the files written (none where ``rows`` is empty)."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return []
    stem = Path(folder) / LEFT_OUT_STEM
    in_file = np.sort(particles.rows_in_file()[rows])
    with atomic_path(stem.with_suffix(".npy"), suffix=".npy") as tmp:
        np.save(tmp, in_file)
    written = [stem.with_suffix(".npy")]
    if (metadata := write_metadata_rows(particles.source, in_file, stem)) is not None:
        written.append(metadata)
    return written
