"""Defocus recorded with errors, as every CTF estimate leaves it.

A benchmark set's images are made with the true CTF; ``particles.star``, which every method is
given, may hold each particle's defocus moved by a normal error instead
(``DatasetSpec.defocus_error_angstrom``): a per-micrograph estimate misses each particle's
height in the ice (a few hundred ångströms of ice), and the fit itself errs by tens of
ångströms. The error shifts the CTF's phase by ``π λ Δz s²``: about a radian at 3 Å for 200 Å, a
tenth of one at 10 Å, so it weighs on the sets that reach high resolution.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cryosplat.core.ctf import CTFParams


def recorded_defocus(
    ctf: CTFParams,
    sd_angstrom: float,
    seed: int,
    micrographs: np.ndarray | None = None,
    micrograph_sd_angstrom: float = 0.0,
) -> CTFParams:
    """``ctf`` with each particle's defocus (U and V alike, so its astigmatism kept) moved by a
    normal error of ``sd_angstrom``, drawn from the set's own stream for it (the rest of the
    set is drawn apart from it), plus, where ``micrographs`` (N,) numbers each particle's
    micrograph, one error of ``micrograph_sd_angstrom`` per micrograph (its estimate's, shared
    by its particles; another stream); 0 and 0 leave it as it is."""
    if sd_angstrom < 0 or micrograph_sd_angstrom < 0:
        raise ValueError(
            f"defocus error s.d. must be >= 0 Å, got {sd_angstrom} and {micrograph_sd_angstrom}"
        )
    error = np.zeros(len(ctf))
    if sd_angstrom:
        error = np.random.default_rng([seed, 67]).normal(scale=sd_angstrom, size=len(ctf))
    if micrograph_sd_angstrom:
        if micrographs is None:
            raise ValueError("an error per micrograph needs each particle's micrograph")
        shared = np.random.default_rng([seed, 68]).normal(
            scale=micrograph_sd_angstrom, size=int(micrographs.max()) + 1
        )
        error = error + shared[micrographs]
    if not (sd_angstrom or micrograph_sd_angstrom):
        return ctf
    return replace(
        ctf,
        defocus_u_angstrom=np.asarray(ctf.defocus_u_angstrom, dtype=np.float64) + error,
        defocus_v_angstrom=np.asarray(ctf.defocus_v_angstrom, dtype=np.float64) + error,
    )


def one_defocus_per_micrograph(
    ctf: CTFParams, micrographs: np.ndarray, height_sd_angstrom: float, seed: int
) -> tuple[CTFParams, CTFParams]:
    """``(imaged, estimated)``: each micrograph's particles (``micrographs`` (N,), numbered from
    0) given the CTF of its first particle, as one estimate per micrograph records it
    (``estimated``), and imaged at that defocus plus each one's height in the ice, a normal of
    ``height_sd_angstrom`` (U and V alike; its own stream) (``imaged``)."""
    if height_sd_angstrom < 0:
        raise ValueError(f"height s.d. must be >= 0 Å, got {height_sd_angstrom}")
    first = np.unique(micrographs, return_index=True)[1]
    estimated = ctf.subset(first[micrographs])
    height = np.random.default_rng([seed, 69]).normal(scale=height_sd_angstrom, size=len(ctf))
    imaged = replace(
        estimated,
        defocus_u_angstrom=np.asarray(estimated.defocus_u_angstrom, dtype=np.float64) + height,
        defocus_v_angstrom=np.asarray(estimated.defocus_v_angstrom, dtype=np.float64) + height,
    )
    return imaged, estimated


def recorded_astigmatism(
    ctf: CTFParams, micrographs: np.ndarray | None, sd_angstrom: float, seed: int
) -> CTFParams:
    """``ctf`` with each micrograph's astigmatism (``micrographs`` (N,), numbered from 0) moved
    by one normal error of ``sd_angstrom`` along each of its components
    (:meth:`~cryosplat.core.ctf.CTFParams.astigmatism_components`; its own stream), as a CTF
    estimate per micrograph errs in it; the mean defocus kept."""
    if sd_angstrom < 0:
        raise ValueError(f"astigmatism error s.d. must be >= 0 Å, got {sd_angstrom}")
    if not sd_angstrom:
        return ctf
    if micrographs is None:
        raise ValueError("an astigmatism error per micrograph needs each particle's micrograph")
    moves = np.random.default_rng([seed, 70]).normal(
        scale=sd_angstrom, size=(int(micrographs.max()) + 1, 2)
    )
    return ctf.moved(0.0, moves[micrographs])
