"""cryoSPARC ``.cs`` particle tables to a :class:`~cryosplat.particles.particle_set.ParticleSet`.

A ``.cs`` file is a numpy structured array (``np.load``). Fields read:

* ``blob/path`` (bytes; often starting with ``>`` for imported files or with a job folder such as
  ``J19/extract/``), ``blob/idx`` (0-based), ``blob/shape`` (pixels), ``blob/psize_A`` (Å).
* ``alignments3D/pose``: rotation vector whose Rodrigues matrix ``R_cs`` is the transpose of
  RELION's ``A`` (:mod:`cryosplat.core.conventions`); ``alignments3D/shift`` in pixels of
  ``alignments3D/psize_A`` (Å), RELION's sign; ``alignments3D/split`` (0/1) becomes the random
  subset 1/2.
* ``ctf/shift_A``, ``ctf/tilt_A``, ``ctf/trefoil_A``, ``ctf/tetra_A``, ``ctf/anisomag``: not
  modelled; a warning names those with non-zero values.
* ``ctf/df1_A``, ``ctf/df2_A``, ``ctf/df_angle_rad``, ``ctf/accel_kv``, ``ctf/cs_mm``,
  ``ctf/amp_contrast``, ``ctf/phase_shift_rad``, and ``ctf/bfactor``, ``ctf/scale`` if present.

Stack paths are tried against ``datadir``, the ``.cs`` folder and the current directory, each also
with only the file name.

A cryoSPARC job writes the fields it made (``J24_005_particles.cs``: the poses) apart from those it
passed through from earlier jobs (``J24_passthrough_particles.cs``: the images, the CTF): where such
a file of the same job lies beside the one given, the fields the given file lacks are taken from it,
row by row by ``uid`` (:func:`with_passthrough`), with a note.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from tokenize import TokenError

import numpy as np

from cryosplat.core.conventions import matrix_to_rotvec, rotvec_to_matrix
from cryosplat.core.ctf import CTFParams
from cryosplat.core.distinct import distinct_rows
from cryosplat.core.errors import InputError
from cryosplat.io.atomic import atomic_path
from cryosplat.io.stackrefs import (
    header_pixel_notes,
    open_stacks,
    search_dirs,
    stack_place_notes,
)
from cryosplat.particles.aberrations import cryosparc_aberration_warnings
from cryosplat.particles.close_picks import cryosparc_pick_centres
from cryosplat.particles.mixed_boxes import one_box
from cryosplat.particles.particle_set import (
    ClassLabels,
    OpticsGroup,
    ParticleSet,
    number_micrographs,
    pose_arrays,
)
from cryosplat.particles.shared_patches import patch_findings, tube_keys
from cryosplat.particles.validate import check_ctf_columns, check_range

__all__ = [
    "find_passthrough",
    "load_cs",
    "read_cryosparc",
    "with_passthrough",
    "write_cs_defocus",
    "write_cs_poses",
    "write_cs_rows",
]

# where a particle's micrograph is recorded, in the order read (the uid in every job's output,
# the path where a file was made without it)
MICROGRAPH_FIELDS = ("location/micrograph_uid", "location/micrograph_path")


def load_cs(path: str | Path) -> np.ndarray:
    """Load a ``.cs`` file as a structured array (InputError if it is not one)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: cryoSPARC file not found")
    try:
        table = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, MemoryError, SyntaxError, TokenError) as exc:
        # np.load parses the header with Python's tokenizer: corrupt bytes raise any of these
        raise InputError(f"{path}: not a cryoSPARC .cs table ({exc})") from None
    if not isinstance(table, np.ndarray) or table.dtype.names is None or table.ndim != 1:
        raise InputError(f"{path}: not a cryoSPARC .cs table (expected a 1D structured array)")
    if table.shape[0] == 0:
        raise InputError(f"{path}: the table has no particles")
    return table


def find_passthrough(path: Path) -> Path | None:
    """The passthrough file of the job that wrote ``path`` (``J24_005_particles.cs`` →
    ``J24_passthrough_particles.cs``, ``cryosparc_P12_J24_005_particles.cs`` →
    ``P12_J24_passthrough_particles.cs``) in its folder, or None: none, or several that the
    name's tail (``particles.cs``, ``particles_selected.cs``) does not tell apart."""
    if "passthrough" in path.name:
        return None
    jobs = re.findall(r"(?:^|_)(J\d+)_", path.name)
    if not jobs:
        return None
    found = sorted(path.parent.glob(f"*{jobs[-1]}_passthrough_*.cs"))
    if len(found) > 1:
        tail = re.sub(r"^.*?J\d+_(?:\d+_)?", "", path.name)  # e.g. particles_selected.cs
        found = [f for f in found if f.name.endswith(f"_passthrough_{tail}")]
    return found[0] if len(found) == 1 else None


def with_passthrough(table: np.ndarray, path: Path, passthrough: Path) -> tuple[np.ndarray, str]:
    """``table`` with the fields it lacks taken from ``passthrough``'s rows of the same ``uid``,
    and a note naming them (the table itself when it lacks none).

    Raises
    ------
    InputError
        Either file has no ``uid`` field, or a row of ``table`` has no row in ``passthrough``.
    """
    extra = load_cs(passthrough)
    missing = [n for n in extra.dtype.names if n not in table.dtype.names]
    if not missing:
        return table, ""
    for name, t in ((path, table), (passthrough, extra)):
        if "uid" not in t.dtype.names:
            raise InputError(
                f"{name}: no uid field, so the rows of {path.name} and {passthrough.name} "
                "cannot be matched"
            )
    order = np.argsort(extra["uid"], kind="stable")
    at = np.searchsorted(extra["uid"], table["uid"], sorter=order).clip(max=len(order) - 1)
    rows = order[at]
    absent = np.flatnonzero(extra["uid"][rows] != table["uid"])
    if absent.size:
        raise InputError(
            f"{passthrough}: {absent.size} of the {len(table)} particles of {path.name} are not "
            f"in it (row {absent[0] + 1}, uid {table['uid'][absent[0]]})"
        )
    fields = [(n, table.dtype.fields[n][0]) for n in table.dtype.names]
    merged = np.empty(len(table), dtype=fields + [(n, extra.dtype.fields[n][0]) for n in missing])
    for name in table.dtype.names:
        merged[name] = table[name]
    for name in missing:
        merged[name] = extra[name][rows]
    groups = sorted({n.split("/")[0] for n in missing})
    note = (
        f"fields: {', '.join(f'{g}/*' for g in groups)} ({len(missing)} fields) read from "
        f"{passthrough.name}, matched by uid"
    )
    return merged, note


def write_cs_rows(source: str | Path, rows: np.ndarray, out: str | Path) -> None:
    """Write the ``.cs`` table ``source`` to ``out`` with only the particles at ``rows`` (0-based
    rows of the table), every field as stored; the fields a passthrough file beside ``source``
    holds are added (:func:`with_passthrough`), so that ``out`` stands alone wherever it lies.
    Written atomically, as ``np.save`` writes a ``.cs`` file."""
    source = Path(source)
    table = load_cs(source)
    if (passthrough := find_passthrough(source)) is not None:
        table, _ = with_passthrough(table, source, passthrough)
    with atomic_path(out, suffix=".cs") as tmp, open(tmp, "wb") as fh:
        np.save(fh, table[np.asarray(rows, dtype=np.int64)])


def write_cs_defocus(source: str | Path, rows: np.ndarray, ctf: CTFParams, out: str | Path) -> None:
    """Write the ``.cs`` table ``source`` to ``out`` with the defocus values and angle of ``ctf``
    (one row per entry of ``rows``, 0-based rows of the table) in ``ctf/df1_A``, ``ctf/df2_A``
    and ``ctf/df_angle_rad`` where they differ from those stored; every other field as stored,
    the passthrough file's fields added (as :func:`write_cs_rows`). Written atomically."""
    if len(ctf) != len(rows):
        raise ValueError(f"ctf has {len(ctf)} rows for {len(rows)} rows of the table")
    new = {
        "ctf/df1_A": ctf.defocus_u_angstrom,
        "ctf/df2_A": ctf.defocus_v_angstrom,
        "ctf/df_angle_rad": np.deg2rad(ctf.defocus_angle_degrees),
    }
    _write_cs_moved(Path(source), rows, lambda table: new, out)


def write_cs_poses(
    source: str | Path,
    rows: np.ndarray,
    rotations: np.ndarray,
    shifts_angstrom: np.ndarray,
    out: str | Path,
) -> None:
    """Write the ``.cs`` table ``source`` to ``out`` with the poses ``rotations`` (RELION's
    ``A``, (n, 3, 3)) and ``shifts_angstrom`` ((n, 2)), one per entry of ``rows`` (0-based rows
    of the table), in ``alignments3D/pose`` (the rotation vector of ``Aᵀ``) and
    ``alignments3D/shift`` (pixels of ``alignments3D/psize_A``, else ``blob/psize_A``) where they
    differ from those stored; every other field as stored, the passthrough file's fields added.
    Written atomically."""
    source = Path(source)
    rotations, shifts_angstrom = pose_arrays(rotations, shifts_angstrom, len(rows))

    def new(table: np.ndarray) -> dict[str, np.ndarray]:
        pixels = _pose_pixels(table, _field(table, "blob/psize_A", source), source, [])
        return {
            "alignments3D/pose": matrix_to_rotvec(np.swapaxes(rotations, 1, 2)),
            "alignments3D/shift": shifts_angstrom / pixels[np.asarray(rows)][:, None],
        }

    _write_cs_moved(source, rows, new, out)


def _write_cs_moved(
    source: Path,
    rows: np.ndarray,
    new: Callable[[np.ndarray], dict[str, np.ndarray]],
    out: str | Path,
) -> None:
    """Write ``source``'s table (its passthrough fields added) to ``out`` with the fields
    ``new(table)`` gives (a value per entry of ``rows``) where they differ from those stored;
    atomically."""
    table = load_cs(source)
    if (passthrough := find_passthrough(source)) is not None:
        table, _ = with_passthrough(table, source, passthrough)
    table = table.copy()
    rows = np.asarray(rows, dtype=np.int64)
    for name, values in new(table).items():
        _field(table, name, source)  # a missing or non-finite field named
        recorded = table[name][rows]
        # compared as stored (float32 fields): a value given back as read is not rewritten
        values = np.asarray(values, dtype=np.float64).reshape(recorded.shape).astype(recorded.dtype)
        moved = values != recorded
        if moved.ndim > 1:
            moved = moved.any(axis=tuple(range(1, moved.ndim)))
        table[name][rows[moved]] = values[moved]
    with atomic_path(out, suffix=".cs") as tmp, open(tmp, "wb") as fh:
        np.save(fh, table)


def _image_keys(table: np.ndarray) -> np.ndarray | None:
    """One key per distinct image (``blob/path`` and ``blob/idx``), or None where not recorded."""
    if not all(name in (table.dtype.names or ()) for name in ("blob/path", "blob/idx")):
        return None
    stack = np.unique(np.asarray(table["blob/path"]), return_inverse=True)[1].reshape(-1)
    pairs = np.stack([stack, np.asarray(table["blob/idx"], dtype=np.int64).reshape(-1)], axis=1)
    return np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)


def _field(table: np.ndarray, name: str, path: Path) -> np.ndarray:
    if name not in table.dtype.names:
        hint = ""
        if find_passthrough(path) is None and "passthrough" not in path.name:
            hint = (
                " (a cryoSPARC job keeps the fields it passed through, the images and the CTF, "
                "in its J<n>_passthrough_particles.cs: put that file beside this one)"
            )
        raise InputError(f"{path}: required field {name} is missing{hint}")
    values = np.asarray(table[name])
    if values.dtype.kind == "f":
        values = values.astype(np.float64)
        bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{path}: field {name}, row {row + 1}: value {values[row]} is NaN or infinite"
            )
    return values


def _ctf(table: np.ndarray, path: Path) -> CTFParams | None:
    names = table.dtype.names
    if "ctf/df1_A" not in names:
        return None
    n = table.shape[0]

    def opt(name: str, default: float) -> np.ndarray:
        return _field(table, name, path) if name in names else np.full(n, default)

    fields = {
        "defocus_u_angstrom": ("ctf/df1_A", 1.0),
        "defocus_v_angstrom": ("ctf/df2_A", 1.0),
        "defocus_angle_degrees": ("ctf/df_angle_rad", 180.0 / np.pi),
        "voltage_kv": ("ctf/accel_kv", 1.0),
        "cs_mm": ("ctf/cs_mm", 1.0),
        "amplitude_contrast": ("ctf/amp_contrast", 1.0),
        "phase_shift_degrees": ("ctf/phase_shift_rad", 180.0 / np.pi),
        "bfactor_angstrom2": ("ctf/bfactor", 1.0),
        "scale": ("ctf/scale", 1.0),
    }
    check_ctf_columns(
        path,
        {
            quantity: (f"field {name}", _field(table, name, path).reshape(n, -1)[:, 0] * factor)
            for quantity, (name, factor) in fields.items()
            if name in names
        },
    )
    try:
        return CTFParams(
            defocus_u_angstrom=_field(table, "ctf/df1_A", path),
            defocus_v_angstrom=_field(table, "ctf/df2_A", path),
            defocus_angle_degrees=np.rad2deg(_field(table, "ctf/df_angle_rad", path)),
            voltage_kv=_field(table, "ctf/accel_kv", path),
            cs_mm=_field(table, "ctf/cs_mm", path),
            amplitude_contrast=_field(table, "ctf/amp_contrast", path),
            phase_shift_degrees=np.rad2deg(opt("ctf/phase_shift_rad", 0.0)),
            bfactor_angstrom2=opt("ctf/bfactor", 0.0),
            scale=opt("ctf/scale", 1.0),
        )
    except ValueError as exc:
        raise InputError(f"{path}: bad CTF parameters: {exc}") from None


def _optics(pixel: np.ndarray, ctf: CTFParams | None, boxes: np.ndarray):
    """Groups of the rows that share pixel size, box (``blob/shape``) and optics."""
    n = pixel.shape[0]
    if ctf is None:
        keys = np.stack([pixel, np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)], 1)
    else:
        keys = np.stack([pixel, ctf.voltage_kv, ctf.cs_mm, ctf.amplitude_contrast], axis=1)
    keys = np.concatenate([keys, boxes[:, None].astype(np.float64)], axis=1)
    uniq, group_of = distinct_rows(np.nan_to_num(np.round(keys, 6), nan=-1.0))
    groups = []
    for g in range(len(uniq)):
        k = keys[int(np.flatnonzero(group_of == g)[0])]
        groups.append(
            OpticsGroup(
                f"group{g + 1}", float(k[0]), int(k[4]), float(k[1]), float(k[2]), float(k[3])
            )
        )
    return groups, group_of


def _pose_pixels(table: np.ndarray, blob_pixels: np.ndarray, path: Path, notes: list[str]):
    """Pixel size (Å) of each pose's shift: ``alignments3D/psize_A``, else ``blob/psize_A``.

    The shifts are in pixels of the images the alignment was run on, which differ from the blob's
    after re-extraction or downsampling.
    """
    if "alignments3D/psize_A" not in table.dtype.names:
        notes.append("shifts: no alignments3D/psize_A; scaled by blob/psize_A")
        return blob_pixels
    pixels = _field(table, "alignments3D/psize_A", path)
    bad = np.flatnonzero(~(pixels > 0))
    if bad.size:
        r = int(bad[0])
        raise InputError(
            f"{path}: field alignments3D/psize_A, row {r + 1}: pixel size {pixels[r]:g} "
            "must be positive"
        )
    return pixels


def read_cryosparc(
    path: str | Path, datadir: str | Path | None = None, require_images: bool = True
) -> ParticleSet:
    """Read a cryoSPARC ``.cs`` particle table.

    Parameters
    ----------
    path : str or Path
    datadir : str or Path, optional
        Folder to try first for the ``blob/path`` stacks (e.g. the cryoSPARC project folder).
    require_images : bool
        If False, the stacks are not opened (``stacks=[]``, ``stack_index=-1``); poses and CTF
        only, box from ``blob/shape``.

    Returns
    -------
    ParticleSet
        Rotations ``A = R_cs.T``, shifts ``alignments3D/shift × alignments3D/psize_A`` (Å; with
        ``blob/psize_A`` and a note when the former is absent), the CTF with angles in degrees,
        warnings for aberration fields that are not modelled.
    """
    path = Path(path)
    table = load_cs(path)
    n = table.shape[0]
    notes: list[str] = []
    if (passthrough := find_passthrough(path)) is not None:
        table, note = with_passthrough(table, path, passthrough)
        notes += [note] if note else []
    shape = _field(table, "blob/shape", path).reshape(n, -1)
    if shape.shape[1] != 2:
        raise InputError(f"{path}: field blob/shape should hold 2 numbers per row")
    nonsquare = np.flatnonzero(shape[:, 0] != shape[:, 1])
    if nonsquare.size:
        r = int(nonsquare[0])
        raise InputError(
            f"{path}: field blob/shape, row {r + 1}: images are "
            f"{shape[r, 1]}x{shape[r, 0]}; cryosplat needs square images"
        )
    boxes = shape[:, 0].astype(np.int64)
    pixel_rows = _field(table, "blob/psize_A", path)
    check_range(pixel_rows, "pixel_size_angstrom", path, "field blob/psize_A")
    ctf = _ctf(table, path)
    groups, group_of = _optics(pixel_rows, ctf, boxes)
    rotations = shifts = subset = None
    if "alignments3D/pose" in table.dtype.names:
        rotations = np.swapaxes(rotvec_to_matrix(_field(table, "alignments3D/pose", path)), -1, -2)
        shifts = np.zeros((n, 2))
        if "alignments3D/shift" in table.dtype.names:
            shifts = (
                _field(table, "alignments3D/shift", path)
                * _pose_pixels(table, pixel_rows, path, notes)[:, None]
            )
    if "alignments3D/split" in table.dtype.names:
        subset = _field(table, "alignments3D/split", path).astype(np.int64) + 1
    classes = None
    if "alignments3D/class" in table.dtype.names:
        numbers = _field(table, "alignments3D/class", path).astype(np.int64)
        classes = ClassLabels(numbers, "alignments3D/class")
    micrographs = None
    for name in MICROGRAPH_FIELDS:
        if name in table.dtype.names:
            micrographs = number_micrographs(_field(table, name, path))
            break
    image_index = _field(table, "blob/idx", path).astype(np.int64)
    stacks, stack_index = [], np.full(n, -1, dtype=np.int64)
    if require_images:
        raw = _field(table, "blob/path", path)
        names = np.array(
            [
                (p.decode(errors="replace") if isinstance(p, bytes) else str(p)).lstrip(">")
                for p in raw
            ]
        )
        dirs = search_dirs(path, datadir)
        stacks, stack_index = open_stacks(names, image_index, path, dirs, basename_too=True)
        notes += stack_place_notes(names, stacks, stack_index, dirs)
        notes += header_pixel_notes(stacks, stack_index, pixel_rows)
    else:
        image_index = np.arange(n)
    centres = None if micrographs is None else cryosparc_pick_centres(table, shifts)
    tubes = None
    if "filament/filament_uid" in table.dtype.names:  # unique across the project
        tubes = tube_keys(None, _field(table, "filament/filament_uid", path))
    patches, patch_notes, patch_warnings = patch_findings(
        micrographs,
        centres,
        tubes,
        subset,
        ("filament/filament_uid", "alignments3D/split"),
        _image_keys(table),
    )
    notes += patch_notes
    read = one_box(stacks, stack_index, group_of, groups, path, declared_by="blob/shape says")
    notes += read.notes
    pixel, note = read.map_pixel(pixel_rows)
    notes += [note] if note else []
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
        classes=classes,
        micrographs=micrographs,
        patch_groups=patches,
        source=path,
        notes=notes,
        warnings=cryosparc_aberration_warnings(table) + patch_warnings,
    )
