"""An image stack with cryoDRGN ``poses.pkl``/``ctf.pkl`` as a :class:`~cryosplat.particles.particle_set.ParticleSet`.

* ``poses.pkl``: a pickled tuple ``(rotations (N, 3, 3), translations (N, 2))`` (or rotations only).
  The rotations are RELION's ``A`` (cryoDRGN's ``R_from_relion``); translations are the RELION
  origin in fractions of the box, so ``shifts_angstrom = translations × D × pixel_size``.
* ``ctf.pkl``: an (N, 9) array ``[D, pixel_size, dfU, dfV, dfang_deg, kV, Cs_mm, amp_contrast,
  phase_shift_deg]`` (:data:`cryosplat.core.conventions.CRYODRGN_CTF_COLUMNS`).

The pixel size comes from ``ctf.pkl`` when given, else from the stack header.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from cryosplat.core.conventions import CRYODRGN_CTF_COLUMNS
from cryosplat.core.ctf import CTFParams
from cryosplat.core.errors import InputError
from cryosplat.io.atomic import atomic_path
from cryosplat.io.mrc import MRCStack
from cryosplat.io.stackrefs import UNSET_HEADER_PIXELS, header_pixel_notes
from cryosplat.particles.particle_set import OpticsGroup, ParticleSet, pose_arrays
from cryosplat.particles.validate import check_ctf_columns, check_range

__all__ = [
    "load_pickle",
    "read_cryodrgn_poses",
    "read_cryodrgn_ctf",
    "read_ctf_table",
    "read_stack_with_pickles",
    "write_ctf_pickle_defocus",
    "write_poses_pickle",
    "write_index_pickle",
]


def load_pickle(path: Path, what: str):
    """The object pickled in ``path`` (a cryoDRGN file); InputError naming ``what`` where the file
    is missing or not a pickle."""
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as exc:
        raise InputError(f"{path}: not a readable {what} pickle ({exc})") from None


def write_index_pickle(rows: np.ndarray, out: str | Path) -> None:
    """Write 0-based particle rows as cryoDRGN's ``--ind`` reads them (a pickled int64 array),
    atomically."""
    with atomic_path(out, suffix=".pkl") as tmp, open(tmp, "wb") as fh:
        pickle.dump(np.asarray(rows, dtype=np.int64), fh)


def write_ctf_pickle_defocus(
    source: str | Path, rows: np.ndarray, ctf: CTFParams, out: str | Path
) -> None:
    """Write cryoDRGN's ``ctf.pkl`` ``source`` to ``out`` with the defocus values and angle of
    ``ctf`` (one row per entry of ``rows``) in its columns ``defocus_u_angstrom``,
    ``defocus_v_angstrom`` and ``defocus_angle_degrees``; written atomically."""
    table = np.array(read_ctf_table(Path(source)), dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    if len(ctf) != len(rows):
        raise ValueError(f"ctf has {len(ctf)} rows for {len(rows)} rows of the table")
    for name in ("defocus_u_angstrom", "defocus_v_angstrom", "defocus_angle_degrees"):
        table[rows, CRYODRGN_CTF_COLUMNS.index(name)] = getattr(ctf, name)
    with atomic_path(out, suffix=".pkl") as tmp, open(tmp, "wb") as fh:
        pickle.dump(table, fh)


def write_poses_pickle(
    source: str | Path,
    rows: np.ndarray,
    rotations: np.ndarray,
    shifts_angstrom: np.ndarray,
    box_angstrom: float,
    out: str | Path,
) -> None:
    """Write cryoDRGN's ``poses.pkl`` ``source`` to ``out`` with the poses ``rotations``
    (RELION's ``A``, (n, 3, 3)) and ``shifts_angstrom`` ((n, 2)), one per entry of ``rows``: the
    translations as fractions of the box (``box_angstrom``, the images' box times their pixel
    size); written atomically, a tuple ``(rotations, translations)`` (a pickle of rotations only
    gains its translations, zero for the other rows)."""
    if not (np.isfinite(box_angstrom) and box_angstrom > 0):
        raise ValueError(f"box_angstrom must be positive, got {box_angstrom}")
    rot, trans = read_cryodrgn_poses(source)
    rows = np.asarray(rows, dtype=np.int64)
    rot = rot.copy()
    trans = np.zeros((len(rot), 2)) if trans is None else trans.copy()
    rot[rows], shifts = pose_arrays(rotations, shifts_angstrom, len(rows))
    trans[rows] = shifts / box_angstrom
    with atomic_path(out, suffix=".pkl") as tmp, open(tmp, "wb") as fh:
        pickle.dump((rot, trans), fh)


def _check_finite(path: Path, name: str, values: np.ndarray) -> None:
    bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: {name}, row {row + 1}: NaN or infinite value")


def read_cryodrgn_poses(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a cryoDRGN ``poses.pkl``.

    Returns
    -------
    rotations : np.ndarray, shape (N, 3, 3), float64
        RELION's ``A`` (map → image).
    translations : np.ndarray or None, shape (N, 2), float64
        Fractions of the box, RELION's origin sign; None when the pickle holds rotations only.
    """
    path = Path(path)
    obj = load_pickle(path, "poses")
    rot, trans = obj if isinstance(obj, tuple) and len(obj) == 2 else (obj, None)
    try:
        rot = np.asarray(rot, dtype=np.float64)
        trans = None if trans is None else np.asarray(trans, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: expected (rotations, translations) arrays") from None
    if rot.ndim != 3 or rot.shape[1:] != (3, 3):
        raise InputError(f"{path}: rotations should have shape (N, 3, 3), got {rot.shape}")
    _check_finite(path, "rotations", rot)
    if trans is not None:
        if trans.shape != (rot.shape[0], 2):
            raise InputError(
                f"{path}: translations should have shape ({rot.shape[0]}, 2), got {trans.shape}"
            )
        _check_finite(path, "translations", trans)
    return rot, trans


def read_ctf_table(path: Path) -> np.ndarray:
    """cryoDRGN's ``ctf.pkl`` as its (N, 9) float64 table, shape checked."""
    try:
        table = np.asarray(load_pickle(path, "CTF"), dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: expected an (N, 9) CTF array") from None
    if table.ndim != 2 or table.shape[1] != len(CRYODRGN_CTF_COLUMNS):
        raise InputError(
            f"{path}: expected an (N, 9) CTF array "
            f"[{', '.join(CRYODRGN_CTF_COLUMNS)}], got shape {table.shape}"
        )
    return table


def read_cryodrgn_ctf(path: str | Path) -> tuple[CTFParams, int, float]:
    """Read a cryoDRGN ``ctf.pkl`` (N, 9).

    Returns
    -------
    ctf : CTFParams
    box : int
        Column ``D`` (must be one value).
    pixel_size_angstrom : float
        Column ``Apix`` (must be one value).
    """
    path = Path(path)
    table = read_ctf_table(path)
    for j, name in enumerate(CRYODRGN_CTF_COLUMNS):
        bad = np.flatnonzero(~np.isfinite(table[:, j]))
        if bad.size:
            raise InputError(f"{path}: column {j} ({name}), row {bad[0] + 1}: NaN or infinite")
    for j, name in enumerate(CRYODRGN_CTF_COLUMNS[:2]):
        if np.unique(table[:, j]).size > 1:
            raise InputError(
                f"{path}: column {j} ({name}) takes several values "
                f"{np.unique(table[:, j])[:5]}; one stack has one {name}"
            )
    cols = {name: table[:, j] for j, name in enumerate(CRYODRGN_CTF_COLUMNS[2:], start=2)}
    check_range(table[:, 1], "pixel_size_angstrom", path, f"column 1 ({CRYODRGN_CTF_COLUMNS[1]})")
    check_ctf_columns(
        path,
        {
            name: (f"column {j} ({name})", table[:, j])
            for j, name in enumerate(CRYODRGN_CTF_COLUMNS[2:], start=2)
        },
    )
    try:
        ctf = CTFParams(**cols, bfactor_angstrom2=np.zeros(len(table)), scale=np.ones(len(table)))
    except ValueError as exc:
        raise InputError(f"{path}: bad CTF parameters: {exc}") from None
    return ctf, int(round(table[0, 0])), float(table[0, 1])


def read_stack_with_pickles(
    stack: str | Path, poses: str | Path | None = None, ctf: str | Path | None = None
) -> ParticleSet:
    """Read an ``.mrcs`` stack with optional cryoDRGN ``poses.pkl`` and ``ctf.pkl``.

    Parameters
    ----------
    stack : str or Path
        N images of D×D pixels.
    poses, ctf : str or Path, optional
        cryoDRGN pickles with N rows each.

    Returns
    -------
    ParticleSet
        Image ``i`` of the stack is particle ``i``.
    """
    stack = Path(stack)
    st = MRCStack(stack)
    n, notes = st.n_images, []
    params = None
    header = round(float(st.pixel_size_angstrom), 4)
    if ctf is not None:
        params, box, pixel = read_cryodrgn_ctf(ctf)
        if len(params) != n:
            raise InputError(f"{ctf}: {len(params)} rows but the stack {stack} has {n} images")
        if box != st.box:
            raise InputError(
                f"{ctf}: column D says {box} but the stack {stack} holds {st.box}x{st.box} images"
            )
        notes += header_pixel_notes([st], np.zeros(n, dtype=np.int64), np.full(n, pixel))
    elif header > 0:
        pixel = header
        if header in UNSET_HEADER_PIXELS:
            notes.append(
                f"pixel size: {header:g} Å from the header of {stack} (no ctf.pkl; this "
                "is the value MRC writers put when it is unset)"
            )
    else:
        raise InputError(
            f"{stack}: the pixel size is unknown: the header says 0 and no ctf.pkl was given"
        )
    rotations = shifts = None
    if poses is not None:
        rotations, trans = read_cryodrgn_poses(poses)
        if rotations.shape[0] != n:
            raise InputError(
                f"{poses}: {rotations.shape[0]} poses but the stack {stack} has {n} images"
            )
        if trans is None:
            notes.append(
                f"{poses}: the pickle holds rotations only, no translations: every shift is "
                "taken as 0 (right only for particles already centred)"
            )
        shifts = np.zeros((n, 2)) if trans is None else trans * st.box * pixel
    optics = [
        OpticsGroup(
            "stack",
            pixel,
            st.box,
            *(
                (
                    float(params.voltage_kv[0]),
                    float(params.cs_mm[0]),
                    float(params.amplitude_contrast[0]),
                )
                if params is not None
                else (np.nan, np.nan, np.nan)
            ),
        )
    ]
    return ParticleSet(
        box=st.box,
        pixel_size_angstrom=pixel,
        stacks=[st],
        stack_index=np.zeros(n, dtype=np.int64),
        image_index=np.arange(n),
        rotations=rotations,
        shifts_angstrom=shifts,
        ctf=params,
        optics=optics,
        source=stack,
        notes=notes,
    )
