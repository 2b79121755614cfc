"""Real maps as benchmark truths: the settings every map-based set shares, and a table of them.

The real view distribution of a cryoSPARC refinement and the real defocus of EMPIAR-10028
(issue 11) unless a set says otherwise; the noise stacks the coloured sets take their spectrum
from.
"""

from __future__ import annotations

from bench_datasets import DatasetSpec

REAL_VIEWS = "metadata/cryosparc_P12_J24_001_particles.cs"
RIBOSOME = "particles/empiar10076_7/empiar_10076_7.mrc"
TUTORIAL = "particles/relion31_5/relion31.mrcs"


def map_spec(
    name: str, model: str, box: int, pixel: float, n: int, snr: float, **other
) -> DatasetSpec:
    """A real map as the truth, EMPIAR-10028's defocus, real views unless ``other`` says."""
    settings = {"ctf_table": "metadata/empiar10028_ctf.pkl", "cs_mm": 2.0, "views": REAL_VIEWS}
    return DatasetSpec(name, model, box, pixel, n, snr, **{**settings, **other})


def map_table(rows) -> list[DatasetSpec]:
    """A :func:`map_spec` for each row ``(name, model, (box, pixel, n, snr, seed), other)``."""
    return [
        map_spec(name, model, box, pixel, n, snr, seed=seed, **other)
        for name, model, (box, pixel, n, snr, seed), other in rows
    ]
