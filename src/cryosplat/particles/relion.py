"""RELION particle STAR files (3.0 and 3.1+) to a :class:`~cryosplat.particles.particle_set.ParticleSet`.

RELION 3.1+ files have a ``data_optics`` table (``rlnImagePixelSize``, ``rlnImageSize``, voltage,
Cs, amplitude contrast per group) and a ``data_particles`` table whose ``rlnOpticsGroup`` refers to
it; origins are ``rlnOriginXAngst/YAngst`` (Å). RELION 3.0 files have one table with per-particle
voltage, Cs and Q; the pixel size is ``rlnDetectorPixelSize`` (µm) × 10⁴ / ``rlnMagnification`` (or
``rlnImagePixelSize``), and origins ``rlnOriginX/Y`` are in pixels. Optics groups are then made from
the distinct (pixel size, voltage, Cs, Q). Angles and shifts are kept in RELION's convention
(:mod:`cryosplat.core.conventions`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from cryosplat.core.conventions import euler_relion_to_matrix
from cryosplat.core.ctf import CTFParams
from cryosplat.core.distinct import distinct_rows
from cryosplat.core.errors import InputError
from cryosplat.io.mrc import MRCStack
from cryosplat.io.stackrefs import (
    check_unnumbered_names,
    header_pixel_notes,
    open_stacks,
    search_dirs,
    split_image_names,
    stack_place_notes,
)
from cryosplat.io.star import StarBlock, read_star
from cryosplat.particles.aberrations import (
    relion_aberration_warnings,
    relion_even_zernike,
    relion_mag_matrices,
    relion_odd_zernike,
)
from cryosplat.particles.close_picks import relion_pick_centres
from cryosplat.particles.mixed_boxes import one_box
from cryosplat.particles.particle_set import (
    ClassLabels,
    OpticsGroup,
    ParticleSet,
    number_micrographs,
)
from cryosplat.particles.shared_patches import patch_findings, tube_keys
from cryosplat.particles.star_tables import (
    ANGLE_COLUMNS,
    CTF_COLUMNS,
    CTF_IN_IMAGES_COLUMNS,
    particle_block,
)
from cryosplat.particles.validate import check_ctf_columns, check_range

__all__ = ["particles_from_star"]

_OPTICS_COLUMNS = {
    "voltage_kv": "rlnVoltage",
    "cs_mm": "rlnSphericalAberration",
    "amplitude_contrast": "rlnAmplitudeContrast",
}
_PARTICLECTF_COLUMNS = {
    "defocus_u_angstrom": "rlnDefocusU",
    "defocus_v_angstrom": "rlnDefocusV",
    "defocus_angle_degrees": "rlnDefocusAngle",
    "phase_shift_degrees": "rlnPhaseShift",
    "bfactor_angstrom2": "rlnCtfBfactor",
    "scale": "rlnCtfScalefactor",
}


def _optics_31(optics: StarBlock, particles: StarBlock, path: Path):
    """Optics groups and each particle's group index from a RELION 3.1 ``data_optics``."""
    n_groups = optics.n_rows
    ids = (
        optics.get_int("rlnOpticsGroup")
        if "rlnOpticsGroup" in optics
        else np.arange(1, n_groups + 1)
    )
    names = (
        optics.get_str("rlnOpticsGroupName")
        if "rlnOpticsGroupName" in optics
        else np.array([f"opticsGroup{i}" for i in ids])
    )
    if "rlnImagePixelSize" not in optics:
        raise InputError(f"{path}: data_optics: required column _rlnImagePixelSize is missing")
    if "rlnImageDimensionality" in optics:
        dims = optics.get_int("rlnImageDimensionality")
        if (dims != 2).any():
            g = int(np.flatnonzero(dims != 2)[0])
            raise InputError(
                f"{path}: data_optics, column rlnImageDimensionality, row {g + 1}: {dims[g]}-D "
                "images (subtomograms); cryosplat reconstructs from 2-D particle images"
            )
    pixel = optics.get_float("rlnImagePixelSize")
    check_range(pixel, "pixel_size_angstrom", path, "data_optics, column rlnImagePixelSize")
    for quantity, column in _OPTICS_COLUMNS.items():
        if column in optics:
            check_range(optics.get_float(column), quantity, path, f"data_optics, column {column}")
    box = optics.get_int("rlnImageSize") if "rlnImageSize" in optics else np.zeros(n_groups, int)

    def opt(name: str, default: float = np.nan) -> np.ndarray:
        return optics.get_float(name) if name in optics else np.full(n_groups, default)

    voltage, cs, q = opt("rlnVoltage"), opt("rlnSphericalAberration"), opt("rlnAmplitudeContrast")
    groups = [
        OpticsGroup(
            str(names[g]),
            float(pixel[g]),
            int(box[g]),
            float(voltage[g]),
            float(cs[g]),
            float(q[g]),
        )
        for g in range(n_groups)
    ]
    if "rlnOpticsGroup" in particles:
        pid = particles.get_int("rlnOpticsGroup")
    elif n_groups == 1:
        pid = np.full(particles.n_rows, ids[0])
    else:
        raise InputError(
            f"{path}: data_particles: required column _rlnOpticsGroup is missing "
            f"({n_groups} optics groups)"
        )
    lookup = {int(i): g for g, i in enumerate(ids)}
    unknown = np.flatnonzero(~np.isin(pid, ids))
    if unknown.size:
        r = int(unknown[0])
        raise InputError(
            f"{path}: data_particles: column rlnOpticsGroup, row {r + 1}: group "
            f"{pid[r]} is not in data_optics (groups {', '.join(map(str, ids))})"
        )
    group_of = np.array([lookup[int(i)] for i in pid], dtype=np.int64)
    per_particle = {
        "pixel": pixel[group_of],
        "voltage": voltage[group_of],
        "cs": cs[group_of],
        "q": q[group_of],
    }
    return groups, group_of, per_particle


def _optics_30(particles: StarBlock, path: Path):
    """Optics groups implied by a RELION 3.0 table's per-particle columns."""
    n = particles.n_rows

    def col(name: str) -> np.ndarray:
        return particles.get_float(name) if name in particles else np.full(n, np.nan)

    table = f"data_{particles.name}"
    if "rlnImagePixelSize" in particles:
        pixel = particles.get_float("rlnImagePixelSize")
        check_range(pixel, "pixel_size_angstrom", path, f"{table}, column rlnImagePixelSize")
    elif "rlnMagnification" in particles and "rlnDetectorPixelSize" in particles:
        mag = particles.get_float("rlnMagnification")
        check_range(mag, "magnification", path, f"{table}, column rlnMagnification")
        detector = particles.get_float("rlnDetectorPixelSize")
        check_range(detector, "detector_pixel_um", path, f"{table}, column rlnDetectorPixelSize")
        pixel = detector * 1e4 / mag
        check_range(
            pixel,
            "pixel_size_angstrom",
            path,
            f"{table}, rlnDetectorPixelSize × 10⁴ / rlnMagnification",
        )
    else:
        pixel = np.full(n, np.nan)
    voltage, cs, q = col("rlnVoltage"), col("rlnSphericalAberration"), col("rlnAmplitudeContrast")
    for quantity, column in _OPTICS_COLUMNS.items():
        if column in particles:
            check_range(particles.get_float(column), quantity, path, f"{table}, column {column}")
    keys = np.round(np.stack([pixel, voltage, cs, q], axis=1), 6)
    uniq, group_of = distinct_rows(np.nan_to_num(keys, nan=-1.0))
    groups = []
    for g in range(len(uniq)):
        first = int(np.flatnonzero(group_of == g)[0])
        groups.append(
            OpticsGroup(
                f"group{g + 1}",
                float(pixel[first]),
                0,
                float(voltage[first]),
                float(cs[first]),
                float(q[first]),
            )
        )
    per_particle = {"pixel": pixel, "voltage": voltage, "cs": cs, "q": q}
    return groups, group_of, per_particle


def _ctf_in_images(
    optics: StarBlock | None, group_of: np.ndarray, particles: StarBlock, path: Path
) -> tuple[np.ndarray | None, list[str]]:
    """Each particle's :data:`~cryosplat.core.ctf.CTF_IN_IMAGES` code from RELION's flags (in
    ``data_optics`` per group, or per particle), None when every image is raw; and a note."""
    n = particles.n_rows
    codes = np.zeros(n, dtype=np.int64)
    for code, column in CTF_IN_IMAGES_COLUMNS.items():
        for table in (optics, particles):
            if table is None or column not in table:
                continue
            flag = table.get_float(column)
            flag = flag[group_of] if table is optics else flag
            where = f"data_{table.name}, column {column}"
            bad = np.flatnonzero(~np.isin(flag, (0.0, 1.0)))
            if bad.size:
                raise InputError(f"{path}: {where}: must be 0 or 1, got {flag[bad[0]]:g}")
            both = np.flatnonzero((flag == 1) & (codes != 0) & (codes != code))
            if both.size:
                raise InputError(
                    f"{path}: particle {both[0] + 1} is both phase-flipped and CTF-premultiplied "
                    "(rlnCtfDataArePhaseFlipped and rlnCtfDataAreCtfPremultiplied are 1): one "
                    "image cannot be both; fix the metadata"
                )
            codes[flag == 1] = code
    if not codes.any():
        return None, []
    counts = [
        f"{int((codes == code).sum())} {label}"
        for code, label in ((1, "phase-flipped"), (2, "CTF-premultiplied"))
        if (codes == code).any()
    ]
    note = (
        f"CTF already in the images: {', '.join(counts)} of {n} (RELION's "
        "rlnCtfDataArePhaseFlipped / rlnCtfDataAreCtfPremultiplied); modelled so (|CTF| or CTF² "
        "times the projection)"
    )
    return codes, [note]


def _ctf(particles: StarBlock, per_particle: dict, path: Path) -> CTFParams | None:
    present = [c for c in CTF_COLUMNS + ("rlnPhaseShift", "rlnCtfBfactor") if c in particles]
    if not any(c in particles for c in CTF_COLUMNS):
        return None
    if "rlnDefocusU" not in particles:
        raise InputError(
            f"{path}: required column _rlnDefocusU is missing (the file has CTF "
            f"columns {', '.join(present)})"
        )
    n = particles.n_rows
    du = particles.get_float("rlnDefocusU")
    dv = particles.get_float("rlnDefocusV") if "rlnDefocusV" in particles else du.copy()
    for key, label in (
        ("voltage", "rlnVoltage"),
        ("cs", "rlnSphericalAberration"),
        ("q", "rlnAmplitudeContrast"),
    ):
        missing = np.flatnonzero(np.isnan(per_particle[key]))
        if missing.size:
            raise InputError(
                f"{path}: the CTF needs _{label} (in data_optics for RELION 3.1, per "
                f"particle for 3.0); missing for row {missing[0] + 1}"
            )

    def col(name: str, default: float) -> np.ndarray:
        return particles.get_float(name) if name in particles else np.full(n, default)

    check_ctf_columns(
        path,
        {
            quantity: (f"data_{particles.name}, column {column}", particles.get_float(column))
            for quantity, column in _PARTICLECTF_COLUMNS.items()
            if column in particles
        },
    )
    try:
        return CTFParams(
            defocus_u_angstrom=du,
            defocus_v_angstrom=dv,
            defocus_angle_degrees=col("rlnDefocusAngle", 0.0),
            voltage_kv=per_particle["voltage"],
            cs_mm=per_particle["cs"],
            amplitude_contrast=per_particle["q"],
            phase_shift_degrees=col("rlnPhaseShift", 0.0),
            bfactor_angstrom2=col("rlnCtfBfactor", 0.0),
            scale=col("rlnCtfScalefactor", 1.0),
        )
    except ValueError as exc:
        raise InputError(f"{path}: bad CTF parameters: {exc}") from None


def _poses(particles: StarBlock, pixel: np.ndarray, path: Path, notes: list[str]):
    """Rotations (N,3,3) or None, shifts (N,2) in Å or None."""
    n = particles.n_rows
    rotations = None
    if "rlnAngleRot" in particles or "rlnAngleTilt" in particles:
        for name in ANGLE_COLUMNS:
            if name not in particles:
                raise InputError(
                    f"{path}: required column _{name} is missing (the file has other Euler angles)"
                )
        rotations = euler_relion_to_matrix(*(particles.get_float(a) for a in ANGLE_COLUMNS))
    elif "rlnAnglePsi" in particles:
        notes.append("only rlnAnglePsi (2D alignment) in the metadata: no 3D poses")
    shifts = None
    if "rlnOriginXAngst" in particles or "rlnOriginYAngst" in particles:
        shifts = np.stack(
            [particles.get_float("rlnOriginXAngst"), particles.get_float("rlnOriginYAngst")], axis=1
        )
    elif "rlnOriginX" in particles or "rlnOriginY" in particles:
        shifts_px = np.stack(
            [particles.get_float("rlnOriginX"), particles.get_float("rlnOriginY")], axis=1
        )
        if np.isnan(pixel).any():
            raise InputError(
                f"{path}: origins rlnOriginX/Y are in pixels but the pixel size is "
                "unknown (no rlnImagePixelSize, rlnMagnification/DetectorPixelSize)"
            )
        shifts = shifts_px * pixel[:, None]
    if shifts is None and rotations is not None:
        shifts = np.zeros((n, 2))
    return rotations, shifts


def _images(
    particles: StarBlock,
    groups: list[OpticsGroup],
    path: Path,
    datadir: str | Path | None,
    require_images: bool,
    notes: list[str],
) -> tuple[list[MRCStack], np.ndarray, np.ndarray]:
    """The stacks ``rlnImageName`` names, opened: ``(stacks, stack_index, image_index)``.
    Without images (allowed where ``require_images`` is False, with a note where they cannot be
    read) no stacks and every ``stack_index`` −1; the groups' boxes (``data_optics``) must then
    be known."""
    n = particles.n_rows
    stacks, stack_index, image_index = [], np.full(n, -1, dtype=np.int64), np.arange(n)
    box = min(int(g.box) for g in groups)
    if "rlnImageName" in particles:
        image_index, names = split_image_names(particles.get_str("rlnImageName"), path)
        try:
            dirs = search_dirs(path, datadir)
            stacks, stack_index = open_stacks(names, image_index, path, dirs)
            notes += stack_place_notes(names, stacks, stack_index, dirs)
        except InputError as exc:
            if require_images or box <= 0:
                raise
            notes.append(f"images not read: {exc}")
            image_index, stacks = np.arange(n), []
        if stacks:
            check_unnumbered_names(particles.get_str("rlnImageName"), stacks, stack_index, path)
    elif require_images:
        raise InputError(
            f"{path}: required column _rlnImageName is missing (particle images are needed)"
        )
    if not stacks and box <= 0:
        raise InputError(
            f"{path}: the image size is unknown: no rlnImageName and no rlnImageSize in data_optics"
        )
    return stacks, stack_index, image_index


def _pixel_sizes(
    pixel_per_particle: np.ndarray,
    stacks: list[MRCStack],
    stack_index: np.ndarray,
    groups: list[OpticsGroup],
    path: Path,
) -> np.ndarray:
    """Each particle's pixel size (Å): the metadata's, or where it holds none the stack
    header's (the optics groups' set to it); an error where neither says."""
    if not np.isnan(pixel_per_particle).any():
        return pixel_per_particle
    if not stacks or stacks[0].pixel_size_angstrom in (0.0, 1.0):
        raise InputError(
            f"{path}: the pixel size is unknown: no rlnImagePixelSize (data_optics "
            "or particles) and no rlnMagnification with rlnDetectorPixelSize"
        )
    from_headers = np.array([stacks[s].pixel_size_angstrom for s in stack_index])
    for g in groups:
        g.pixel_size_angstrom = float(from_headers[0])
    return from_headers


def particles_from_star(
    path: str | Path, datadir: str | Path | None = None, require_images: bool = True
) -> ParticleSet:
    """Read a RELION 3.0 or 3.1+ particle STAR file.

    Parameters
    ----------
    path : str or Path
    datadir : str or Path, optional
        Folder to resolve relative ``rlnImageName`` stacks against first (then the STAR file's
        folder, then the current directory).
    require_images : bool
        If False, a file without ``rlnImageName`` is accepted (``stacks=[]``, ``stack_index=-1``,
        ``image_index=arange(N)``); box and pixel size then come from ``data_optics``.

    Returns
    -------
    ParticleSet
        Rotations ``A`` (or None without angles), shifts in Å (RELION origins), CTF (or None), the
        optics groups, ``rlnRandomSubset``. The pixel size is the metadata's (the most common one if
        optics groups differ, with a note; each group keeps its own in ``optics``).
    """
    path = Path(path)
    blocks = read_star(path)
    particles = particle_block(blocks, path)
    n = particles.n_rows
    if n == 0:
        raise InputError(f"{path}: data_{particles.name} has no particles")
    notes: list[str] = []
    optics = blocks["optics"] if "optics" in blocks and particles.name != "optics" else None
    if optics is not None:
        groups, group_of, per_particle = _optics_31(optics, particles, path)
    else:
        groups, group_of, per_particle = _optics_30(particles, path)
    ctf = _ctf(particles, per_particle, path)
    even_zernike = relion_even_zernike(optics, group_of, path)
    if ctf is not None and even_zernike is not None:
        ctf = replace(ctf, even_zernike=even_zernike)
        notes.append(
            "aberrations: symmetric (even Zernike) aberrations of "
            f"{int(np.any(even_zernike != 0, axis=1).sum())} particles added to their CTF "
            "as RELION does"
        )
    stacks, stack_index, image_index = _images(
        particles, groups, path, datadir, require_images, notes
    )
    pixel_per_particle = _pixel_sizes(per_particle["pixel"], stacks, stack_index, groups, path)
    if np.isnan(per_particle["pixel"]).any():
        notes.append(
            f"pixel size: none in the metadata; using the stack header's "
            f"{pixel_per_particle[0]:g} Å"
        )
    if stacks:
        notes += header_pixel_notes(stacks, stack_index, pixel_per_particle)
    read = one_box(stacks, stack_index, group_of, groups, path)
    notes += read.notes
    pixel, note = read.map_pixel(pixel_per_particle)
    notes += [note] if note else []
    rotations, shifts = _poses(particles, pixel_per_particle, path, notes)
    subset = particles.get_int("rlnRandomSubset") if "rlnRandomSubset" in particles else None
    classes = None
    if "rlnClassNumber" in particles:
        classes = ClassLabels(particles.get_int("rlnClassNumber"), "rlnClassNumber")
    micrographs = centres = tubes = None
    if "rlnMicrographName" in particles:
        micrographs = number_micrographs(particles.get_str("rlnMicrographName"))
        centres = relion_pick_centres(particles, optics, group_of, pixel_per_particle, shifts)
        if "rlnHelicalTubeID" in particles:  # numbered per micrograph
            tubes = tube_keys(micrographs, particles.get_float("rlnHelicalTubeID"))
    names = particles.get_str("rlnImageName") if "rlnImageName" in particles else None
    patches, patch_notes, patch_warnings = patch_findings(
        micrographs,
        centres,
        tubes,
        subset,
        ("rlnHelicalTubeID", "rlnRandomSubset"),
        None if names is None else np.unique(names, return_inverse=True)[1].reshape(-1),
    )
    notes += patch_notes
    ctf_in_images, ctf_notes = _ctf_in_images(optics, group_of, particles, path)
    notes += ctf_notes
    odd_zernike = relion_odd_zernike(optics, particles, group_of, per_particle, path)
    mag_matrices = relion_mag_matrices(optics, group_of, path)
    if mag_matrices is not None:
        notes.append(
            "aberrations: anisotropic magnification (rlnMagMat) of "
            f"{int(np.any(np.abs(mag_matrices - np.eye(2)) > 1e-6, axis=(1, 2)).sum())} "
            "particles: their CTF, aberrations and Fourier samples placed through it as RELION does"
        )
    if odd_zernike is not None:
        notes.append(
            "aberrations: beam tilt / antisymmetric (odd Zernike) aberrations of "
            f"{int(np.any(odd_zernike != 0, axis=1).sum())} particles taken out of their images "
            "as relion_reconstruct does"
        )
    return ParticleSet(
        box=read.box,
        pixel_size_angstrom=pixel,
        stacks=read.stacks,
        stack_index=stack_index,
        image_index=image_index,
        rotations=rotations,
        shifts_angstrom=shifts,
        ctf=ctf,
        optics_group=read.optics_group,
        optics=read.optics,
        random_subset=subset,
        ctf_in_images=ctf_in_images,
        odd_zernike=odd_zernike,
        mag_matrices=mag_matrices,
        classes=classes,
        micrographs=micrographs,
        patch_groups=patches,
        source=path,
        notes=notes,
        warnings=relion_aberration_warnings(particles, optics) + patch_warnings,
    )
