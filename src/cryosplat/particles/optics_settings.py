"""Optics settings: the optics groups of a set that differ in how their images were recorded.

RELION splits one session's particles into many optics groups (for their beam tilt) that share a
pixel size, voltage, Cs and amplitude contrast; groups that differ in one of those come from
different sessions, microscopes or processing, as a set merged from several sources is. The data
checks (:mod:`cryosplat.particles.thon_rings`, :mod:`cryosplat.reconstruct.pose_check`,
:mod:`cryosplat.reconstruct.ctf_state_check`) read such a set setting by setting as well as
whole: one source's slip among right ones is diluted in the whole.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cryosplat.particles.particle_set import OpticsGroup, ParticleSet

__all__ = ["optics_settings", "setting_rows"]


def optics_settings(particles: ParticleSet) -> tuple[np.ndarray, list[OpticsGroup]]:
    """Each particle's optics setting (N,), int: its group's pixel size, voltage, Cs and amplitude
    contrast, groups that share all four counted as one; and one group of each setting, its name
    listing them all (none for a set without optics groups)."""
    groups = particles.optics
    if not groups:
        return np.zeros(len(particles), dtype=np.int64), []
    keys = [
        (round(g.pixel_size_angstrom, 4), g.voltage_kv, g.cs_mm, g.amplitude_contrast)
        for g in groups
    ]
    distinct = list(dict.fromkeys(keys))
    named = [
        replace(
            groups[keys.index(key)],
            name=", ".join(g.name for g, k in zip(groups, keys, strict=True) if k == key),
        )
        for key in distinct
    ]
    of_group = np.array([distinct.index(k) for k in keys], dtype=np.int64)
    return of_group[particles.optics_group], named


def setting_rows(particles: ParticleSet, min_rows: int) -> list[tuple[str, np.ndarray]]:
    """The settings of at least ``min_rows`` particles as (name, boolean rows), in the settings'
    order; empty where fewer than two such settings (nothing to read apart)."""
    setting, named = optics_settings(particles)
    rows = [(g.name, setting == s) for s, g in enumerate(named)]
    kept = [(name, mask) for name, mask in rows if int(mask.sum()) >= min_rows]
    return kept if len(kept) > 1 else []
