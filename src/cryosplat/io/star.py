"""RELION STAR files: a generic reader and writer, and the RELION 3.1 particle layout.

Our own parser (no pandas): every ``data_`` block, each either a ``loop_`` table or key-value pairs,
held as columns of text, so that errors can name the file, block, column and row. It accepts
``# version 30001`` and other comments, ``#N`` suffixes after column names, blank lines, tabs,
quoted values (``'a b'`` or ``"a b"``) and loop rows split over several lines. A loop body without
quotes or comments whose every line is one whole row (what RELION and cryoSPARC write) is split
in one call; any other body line by line. Text becomes numbers only for the columns asked for.

Reading a particle STAR into a ParticleSet (RELION 3.0 and 3.1+) is the particles layer's
(:mod:`cryosplat.particles.relion`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from cryosplat.core.collector import collector_paused
from cryosplat.core.conventions import matrix_to_euler_relion
from cryosplat.core.ctf import CTFParams
from cryosplat.core.distinct import distinct_rows
from cryosplat.core.errors import InputError
from cryosplat.io.atomic import atomic_path

__all__ = [
    "StarBlock",
    "read_star",
    "write_star",
    "write_relion31_particles",
]

_TOKEN = re.compile(r"""'([^']*)'(?=\s|$)|"([^"]*)"(?=\s|$)|(#.*)|(\S+)""")


@dataclass
class StarBlock:
    """One ``data_`` block of a STAR file.

    Attributes
    ----------
    name : str
        Block name without ``data_`` (``"particles"``, ``"optics"``, or ``""`` for ``data_``).
    columns : dict[str, list of str]
        Column name (without the leading ``_``) -> its values as written, ``n_rows`` of them. A
        key-value block has one row. :meth:`get_str`, :meth:`get_float` and :meth:`get_int` give
        them as arrays.
    is_loop : bool
        True for a ``loop_`` table.
    source : Path or None
        The file it was read from (for error messages).
    """

    name: str
    columns: dict[str, list[str]] = field(default_factory=dict)
    is_loop: bool = True
    source: Path | None = None
    _numbers: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    @property
    def n_rows(self) -> int:
        if not self.columns:
            return 0
        return len(next(iter(self.columns.values())))

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def _where(self, name: str) -> str:
        return f"{self.source}: data_{self.name}: column {name}"

    def _text(self, name: str) -> list[str]:
        if name not in self.columns:
            raise InputError(
                f"{self.source}: data_{self.name}: required column _{name} is missing "
                f"(columns: {', '.join(self.columns) or 'none'})"
            )
        return self.columns[name]

    def get_str(self, name: str) -> np.ndarray:
        """Column ``name`` as an object array of str, shape (n_rows,); InputError naming
        file/block/column if absent. (Object, not a fixed-width ``str`` array: 500,000 image
        names of ~100 characters took 1.2 s and 200 MB as ``str``, 0.03 s as objects.)"""
        return np.array(self._text(name), dtype=object)

    def get_float(self, name: str) -> np.ndarray:
        """Column ``name`` as float64, shape (n_rows,).

        Raises
        ------
        InputError
            Column missing, a value that is not a number, or NaN/infinite (naming row and value).
        """
        if name not in self._numbers:
            self._numbers[name] = self._floats(name)
        return self._numbers[name].copy()

    def _floats(self, name: str) -> np.ndarray:
        text = self._text(name)
        try:
            values = np.array(text, dtype=np.float64)
        except ValueError:
            values = None
        if values is None:
            for row, v in enumerate(text):
                try:
                    float(v)
                except ValueError:
                    raise InputError(
                        f"{self._where(name)}, row {row + 1}: '{v}' is not a number"
                    ) from None
            values = np.array([float(v) for v in text], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise InputError(
                f"{self._where(name)}, row {bad[0] + 1}: value '{text[bad[0]]}' is NaN or infinite"
            )
        return values

    def get_int(self, name: str) -> np.ndarray:
        """Column ``name`` as int64; InputError if a value is not a whole number."""
        values = self.get_float(name)
        bad = np.flatnonzero((values != np.round(values)) | (np.abs(values) > 2.0**53))
        if bad.size:
            raise InputError(
                f"{self._where(name)}, row {bad[0] + 1}: '{self.columns[name][bad[0]]}' "
                "is not an integer"
            )
        return values.astype(np.int64)


def _tokens(line: str) -> list[str]:
    if "'" not in line and '"' not in line and "#" not in line:
        return line.split()
    out = []
    for m in _TOKEN.finditer(line):
        if m.group(3) is not None:
            break
        out.append(next(g for g in (m.group(1), m.group(2), m.group(4)) if g is not None))
    return out


class _BlockBuilder:
    def __init__(self, name: str, source: Path) -> None:
        self.name, self.source = name, source
        self.loop_names: list[str] = []
        self.values: list[str] = []  # the loop's values, row after row
        self.pending: list[str] = []
        self.pending_line = 0
        self.pairs: dict[str, str] = {}
        self.in_loop_header = False

    @property
    def n_rows(self) -> int:
        return len(self.values) // len(self.loop_names)

    def finish(self) -> StarBlock:
        if self.pending:
            raise InputError(
                f"{self.source}: data_{self.name}: the row starting on line "
                f"{self.pending_line} has {len(self.pending)} values but the loop has "
                f"{len(self.loop_names)} columns"
            )
        if self.loop_names:
            ncol = len(self.loop_names)
            cols = {name: self.values[j::ncol] for j, name in enumerate(self.loop_names)}
            self.values = []
            return StarBlock(self.name, cols, True, self.source)
        cols = {k: [v] for k, v in self.pairs.items()}
        return StarBlock(self.name, cols, False, self.source)

    def add_body(self, lines: list[str], first_lineno: int) -> None:
        """Lines of the loop's body, none of them a keyword or a ``_name`` line."""
        ncol = len(self.loop_names)
        chunk = "\n".join(lines)
        if not self.pending and "'" not in chunk and '"' not in chunk and "#" not in chunk:
            counts = set(map(len, map(str.split, lines)))
            if counts <= {0, ncol}:
                self.values += chunk.split()
                return
        for k, raw in enumerate(lines):
            toks = _tokens(raw)
            if toks:
                self.add_row_tokens(toks, first_lineno + k)

    def add_row_tokens(self, toks: list[str], lineno: int) -> None:
        ncol = len(self.loop_names)
        if not self.pending:
            self.pending_line = lineno
        elif len(self.pending) + len(toks) > ncol:
            raise InputError(
                f"{self.source}: data_{self.name}: line {self.pending_line} (row "
                f"{self.n_rows + 1}) has {len(self.pending)} values but the loop has {ncol} "
                f"columns (the next line, {lineno}, would add {len(toks)} more)"
            )
        self.pending.extend(toks)
        if len(self.pending) == ncol:
            self.values += self.pending
            self.pending = []
        elif len(self.pending) > ncol:
            raise InputError(
                f"{self.source}: data_{self.name}: line {lineno} (row "
                f"{self.n_rows + 1}) has {len(self.pending)} values but the loop "
                f"has {ncol} columns"
            )


# Lines of a loop's body split at a time: their text is let go once split, so a large file's
# lines and its values are not all held at once (500,000 rows of 22 columns: 1.48 -> 1.25 GB).
_BODY_PIECE_LINES = 20_000


def _ends_body(line: str) -> bool:
    """True for a line that is not a loop's row: a keyword or a ``_name``."""
    head = line.lstrip()[:7]
    return head.startswith(("_", "data_", "loop_", "stop_", "global_"))


def read_star(path: str | Path) -> dict[str, StarBlock]:
    """Read every ``data_`` block of a STAR file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict[str, StarBlock]
        Keyed by block name without ``data_``, in file order.

    Raises
    ------
    InputError
        Missing file, duplicate column, a row with the wrong number of values, or no data block.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: STAR file not found")
    try:
        # utf-8-sig: a byte-order mark (an editor's on Windows) is not the first token
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    with collector_paused():
        return _parse(lines, path)


def _parse(lines: list[str], path: Path) -> dict[str, StarBlock]:
    blocks: dict[str, StarBlock] = {}
    cur: _BlockBuilder | None = None
    i = 0
    while i < len(lines):
        lineno, toks = i + 1, _tokens(lines[i])
        i += 1
        if not toks:
            continue
        first = toks[0]
        if first.startswith("data_"):
            if cur is not None:
                blocks[cur.name] = cur.finish()
            cur = _BlockBuilder(first[5:], path)
            continue
        if cur is None:
            raise InputError(f"{path}: line {lineno}: '{first}' before any data_ block")
        if first == "loop_":
            if cur.loop_names:
                raise InputError(
                    f"{path}: data_{cur.name}: line {lineno}: a second loop_ in one "
                    "block is not supported"
                )
            cur.in_loop_header = True
            continue
        if first in ("stop_", "global_"):
            continue
        if first.startswith("_"):
            name = first[1:]
            if cur.in_loop_header and not cur.values and not cur.pending:
                if name in cur.loop_names:
                    raise InputError(
                        f"{path}: data_{cur.name}: line {lineno}: column _{name} appears twice"
                    )
                cur.loop_names.append(name)
            else:
                cur.in_loop_header = False
                if len(toks) < 2:
                    raise InputError(
                        f"{path}: data_{cur.name}: line {lineno}: _{name} has no value"
                    )
                cur.pairs[name] = toks[1]
            continue
        if not cur.loop_names:
            raise InputError(
                f"{path}: data_{cur.name}: line {lineno}: value '{first}' outside a "
                "loop_ and without a _name"
            )
        end = i
        while end < len(lines) and not _ends_body(lines[end]):
            end += 1
        for start in range(i - 1, end, _BODY_PIECE_LINES):
            stop = min(end, start + _BODY_PIECE_LINES)
            cur.add_body(lines[start:stop], start + 1)
            lines[start:stop] = [""] * (stop - start)  # each line's text once held as values
        i = end
    if cur is not None:
        blocks[cur.name] = cur.finish()
    if not blocks:
        raise InputError(f"{path}: no data_ block (not a STAR file?)")
    return blocks


def _format_column(values) -> list[str]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"STAR columns must be 1D, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        return [str(int(v)) for v in arr]
    if arr.dtype.kind in "iu":
        return [str(int(v)) for v in arr]
    if arr.dtype.kind == "f":
        out = []
        for v in arr.astype(np.float64):
            a = abs(v)
            out.append(f"{v:.6f}" if a == 0 or 1e-3 <= a < 1e9 else f"{v:.8e}")
        return out
    strings = [str(v) for v in arr]
    return [
        f'"{s}"'
        if (not s or re.search(r"\s", s) or s[0] in "_#'\"" or s.startswith(("data_", "loop_")))
        else s
        for s in strings
    ]


def write_star(path: str | Path, blocks: dict[str, dict[str, Sequence]]) -> None:
    """Write ``loop_`` blocks to a STAR file atomically (temporary file, then rename).

    Parameters
    ----------
    path : str or Path
    blocks : dict[str, dict[str, Sequence]]
        Block name (without ``data_``) -> column name (without ``_``) -> values (all columns of a
        block the same length). Integers are written as integers, floats with 6 decimals (or in
        exponent form when very small or large), strings quoted when they contain spaces.
    """
    path = Path(path)
    parts = []
    for bname, cols in blocks.items():
        lengths = {k: len(v) for k, v in cols.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"block {bname}: columns have different lengths {lengths}")
        formatted = [_format_column(v) for v in cols.values()]
        widths = [max((len(s) for s in f), default=0) for f in formatted]
        lines = ["", "# version 30001", "", f"data_{bname}", "", "loop_"]
        lines += [f"_{name} #{i + 1}" for i, name in enumerate(cols)]
        for row in zip(*formatted, strict=True):
            lines.append(" ".join(s.rjust(w) for s, w in zip(row, widths, strict=True)))
        lines.append("")
        parts.append("\n".join(lines))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts) + "\n")


def write_relion31_particles(
    path: str | Path,
    *,
    image_names: Sequence[str] | None,
    rotations: ArrayLike | None = None,
    shifts_angstrom: ArrayLike | None = None,
    ctf: CTFParams | None = None,
    pixel_size_angstrom: float,
    box: int,
    random_subset: np.ndarray | Sequence[int] | None = None,
    extra_columns: dict[str, Sequence] | None = None,
) -> None:
    """Write particles in the RELION 3.1 layout (``data_optics`` + ``data_particles``).

    Parameters
    ----------
    path : str or Path
    image_names : sequence of str, length N, or None
        ``"k@stack.mrcs"`` names (k 1-based); omitted when None (e.g. for ``relion_project --ang``).
    rotations : array_like, shape (N, 3, 3), optional
        Map→image matrices ``A``, written as ``rlnAngleRot/Tilt/Psi``.
    shifts_angstrom : array_like, shape (N, 2), optional
        RELION origins in Å (``rlnOriginXAngst/YAngst``).
    ctf : CTFParams, optional
        Per-particle CTF; one optics group is written per distinct (voltage, Cs, Q, and
        ``rlnEvenZernike`` where the CTF has symmetric aberrations). Without it a
        single group with RELION's usual 300 kV, 2.7 mm, 0.1 is written (RELION needs the columns).
    pixel_size_angstrom : float
    box : int
    random_subset : array_like, shape (N,), optional
        ``rlnRandomSubset`` (1 or 2).
    extra_columns : dict, optional
        More ``data_particles`` columns (names without ``_``), each of length N.
    """
    lengths = {}
    if image_names is not None:
        lengths["image_names"] = len(image_names)
    rot = None if rotations is None else np.asarray(rotations, dtype=np.float64)
    if rot is not None:
        lengths["rotations"] = rot.shape[0]
    sh = None if shifts_angstrom is None else np.asarray(shifts_angstrom, dtype=np.float64)
    if sh is not None:
        lengths["shifts_angstrom"] = sh.shape[0]
    if ctf is not None:
        lengths["ctf"] = len(ctf)
    if random_subset is not None:
        lengths["random_subset"] = len(random_subset)
    for k, v in (extra_columns or {}).items():
        lengths[k] = len(v)
    if not lengths or len(set(lengths.values())) != 1:
        raise ValueError(f"particle columns must all have the same, non-zero length: {lengths}")
    n = next(iter(lengths.values()))
    if ctf is not None:
        keys = np.stack([ctf.voltage_kv, ctf.cs_mm, ctf.amplitude_contrast], axis=1)
        if ctf.even_zernike is not None:
            keys = np.concatenate([keys, ctf.even_zernike], axis=1)
        groups, group_of = distinct_rows(keys)
    else:
        groups, group_of = np.array([[300.0, 2.7, 0.1]]), np.zeros(n, dtype=np.int64)
    optics = {
        "rlnOpticsGroupName": [f"opticsGroup{i + 1}" for i in range(len(groups))],
        "rlnOpticsGroup": np.arange(1, len(groups) + 1),
        "rlnVoltage": groups[:, 0],
        "rlnSphericalAberration": groups[:, 1],
        "rlnAmplitudeContrast": groups[:, 2],
        "rlnImagePixelSize": np.full(len(groups), float(pixel_size_angstrom)),
        "rlnImageSize": np.full(len(groups), int(box)),
        "rlnImageDimensionality": np.full(len(groups), 2),
    }
    if groups.shape[1] > 3:
        optics["rlnEvenZernike"] = [
            "[" + ",".join(f"{c:.10g}" for c in g[3:]) + "]" for g in groups
        ]
    parts: dict[str, Sequence] = {}
    if image_names is not None:
        parts["rlnImageName"] = [str(s) for s in image_names]
    if rot is not None:
        angles = matrix_to_euler_relion(rot)
        parts["rlnAngleRot"], parts["rlnAngleTilt"], parts["rlnAnglePsi"] = angles.T
    if sh is not None:
        parts["rlnOriginXAngst"], parts["rlnOriginYAngst"] = sh[:, 0], sh[:, 1]
    if ctf is not None:
        parts["rlnDefocusU"] = ctf.defocus_u_angstrom
        parts["rlnDefocusV"] = ctf.defocus_v_angstrom
        parts["rlnDefocusAngle"] = ctf.defocus_angle_degrees
        parts["rlnPhaseShift"] = ctf.phase_shift_degrees
        parts["rlnCtfBfactor"] = ctf.bfactor_angstrom2
        parts["rlnCtfScalefactor"] = ctf.scale
    parts["rlnOpticsGroup"] = group_of + 1
    if random_subset is not None:
        parts["rlnRandomSubset"] = np.asarray(random_subset, dtype=np.int64)
    for k, v in (extra_columns or {}).items():
        parts[k] = v
    write_star(path, {"optics": optics, "particles": parts})
