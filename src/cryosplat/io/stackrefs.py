"""Image references in particle metadata: ``k@stack.mrcs`` names, finding and checking stacks.

Shared by the RELION, cryoSPARC and cryoDRGN readers. Relative stack paths are tried against, in
order, the user's ``datadir``, the metadata file's folder, the current directory and the folders up
to :data:`PROJECT_LEVELS` above the metadata's (RELION's project folder). An absolute path that is
not there (a project moved or copied) is tried by its last :data:`MOVED_TAIL_PARTS` parts against
the same folders, longest first, with a note naming where it was found. Once one stack is found,
the next is tried first in the same folder (one look per stack where thousands lie together). A
missing stack is reported with every path that was tried. Each stack's header is read once (size,
mode, pixel size) and checked against the file length, and every referenced index is checked
against the stack.

Pixel sizes: the metadata's pixel size is always the one used. A stack header that disagrees by more
than 0.1 % adds a note to ``ParticleSet.notes`` naming both values, except when the header says 0 or
1.0 Å: those are what MRC writers put when the pixel size is unset (RELION's extract, IMOD and
mrcfile defaults), so they carry no information and are not worth a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosplat.core.collector import collector_paused
from cryosplat.core.distinct import distinct_names
from cryosplat.core.errors import InputError
from cryosplat.io.mrc import MRCStack

__all__ = [
    "split_image_names",
    "search_dirs",
    "SearchDirs",
    "resolve_stack_path",
    "check_unnumbered_names",
    "open_stacks",
    "header_pixel_notes",
    "stack_place_notes",
    "UNSET_HEADER_PIXELS",
]

UNSET_HEADER_PIXELS = (0.0, 1.0)


def split_image_names(
    names: Sequence[str], source: Path, column: str = "rlnImageName"
) -> tuple[np.ndarray, np.ndarray]:
    """Split RELION image names ``k@path`` into 0-based indices and stack paths.

    Parameters
    ----------
    names : sequence of str, length N
        ``"000012@Extract/a.mrcs"``; a name without ``@`` is image 1 of that file.
    source : Path
        The metadata file (for error messages).
    column : str
        The column the names came from (for error messages).

    Returns
    -------
    image_index : np.ndarray, shape (N,), int64, 0-based
    stack_names : np.ndarray of object (str), shape (N,)
    """
    # Each name split once in Python, the collector paused: fixed-width string arrays of
    # ~100-character names (np.char.partition, np.unique) took 3.7 s of 500,000 rows.
    with collector_paused():
        names = [str(name) for name in names]
        parts = [name.partition("@") for name in names]
        stack_names = np.array([tail if sep else head for head, sep, tail in parts], dtype=object)
        numbered = [row for row, (_, sep, _) in enumerate(parts) if sep]
        numbers = [parts[row][0] for row in numbered]
        del parts
    index = np.zeros(len(names), dtype=np.int64)
    if numbered:
        # isdigit alone admits digits of other scripts, which int() reads too
        bad = next((k for k, n in enumerate(numbers) if not (n.isascii() and n.isdigit())), None)
        if bad is not None:
            raise InputError(
                f"{source}: column {column}, row {numbered[bad] + 1}: '{names[numbered[bad]]}' "
                "is not of the form N@stack.mrcs"
            )
        index[numbered] = np.array(numbers, dtype=np.int64) - 1
    if (index < 0).any():
        row = int(np.flatnonzero(index < 0)[0])
        raise InputError(
            f"{source}: column {column}, row {row + 1}: '{names[row]}': image numbers start at 1"
        )
    empty = next((row for row, name in enumerate(stack_names) if not name), None)
    if empty is not None:
        raise InputError(
            f"{source}: column {column}, row {empty + 1}: '{names[empty]}' names no file"
        )
    return index, stack_names


PROJECT_LEVELS = 3
"""How many folders above the metadata's own are tried for its relative stack paths: RELION
writes them relative to its project folder, and a job's STAR lies in
``<project>/<JobType>/<jobNNN>/`` (two levels up); cryoSPARC's ``<project>/J24/`` is one."""


MOVED_TAIL_PARTS = 4
"""How many trailing parts of an absolute stack path that is not there are tried under the search
folders: ``Extract/job005/Movies/mic1.mrcs`` below a project folder that moved."""


@dataclass(frozen=True)
class SearchDirs:
    """Folders a metadata file's stack paths are tried against (:func:`search_dirs`).

    Attributes
    ----------
    near : tuple of Path
        The user's ``datadir``, the metadata's folder, the current one: tried first, and the only
        ones a bare file name is tried in.
    above : tuple of Path
        The metadata folder's parents up to :data:`PROJECT_LEVELS` not among ``near``: RELION's
        project folder; a stack found only there gets a note (:func:`stack_place_notes`).
    """

    near: tuple[Path, ...]
    above: tuple[Path, ...]

    def all(self) -> list[Path]:
        return [*self.near, *self.above]


def search_dirs(source: Path, datadir: str | Path | None) -> SearchDirs:
    """Folders to resolve stack paths against: datadir, the metadata's folder, cwd, then the
    metadata folder's parents up to :data:`PROJECT_LEVELS` (the project folder of a RELION or
    cryoSPARC job, wherever the command is run from)."""
    folder = Path(source).resolve().parent
    near: list[Path] = []
    for d in ([] if datadir is None else [Path(datadir)]) + [folder, Path.cwd()]:
        if d not in near:
            near.append(d)
    above = tuple(d for d in list(folder.parents)[:PROJECT_LEVELS] if d not in near)
    return SearchDirs(tuple(near), above)


def resolve_stack_path(
    name: str, dirs: SearchDirs, source: Path, *, basename_too: bool = False, what: str = "stack"
) -> Path:
    """Find the file ``name``: relative to one of ``dirs``, or absolute (where it was written,
    then by its last :data:`MOVED_TAIL_PARTS` parts under ``dirs``, longest first).

    Parameters
    ----------
    name : str
        The path as written in the metadata.
    dirs : SearchDirs
        Folders to try in order (see :func:`search_dirs`).
    source : Path
        The metadata file (for the error message).
    basename_too : bool
        Also try the bare file name in each of ``dirs.near`` (cryoSPARC paths start with a job
        folder).

    Raises
    ------
    InputError
        Naming every path tried.
    """
    return _resolve(name, dirs, source, basename_too, what, None)[0]


def _resolve(
    name: str,
    dirs: SearchDirs,
    source: Path,
    basename_too: bool,
    what: str,
    first: tuple[Path, int] | None,
) -> tuple[Path, tuple[Path, int]]:
    """:func:`resolve_stack_path`, trying first the folder and tail length ``first`` where the
    previous stack was found (one look per stack where thousands lie together, as on a network
    disk each look costs); returns the path and that pair for the next."""
    p = Path(name)
    tried: list[Path] = []
    if p.is_absolute():  # where it was written, then its tail where it may have moved
        longest = min(MOVED_TAIL_PARTS, len(p.parts) - 1)
        ways = [(d, k) for k in range(longest, 0, -1) for d in dirs.all()]
        candidates = [(p, (p.parent, 0))]
    else:
        ways, candidates = [(d, len(p.parts)) for d in dirs.all()], []
    if first in ways:
        ways.remove(first)
        ways.insert(0, first)
    candidates += [(d / Path(*p.parts[-k:]), (d, k)) for d, k in ways]
    if basename_too:
        candidates += [(d / p.name, (d, 1)) for d in dirs.near]
    for c, way in candidates:
        if c in tried:
            continue
        tried.append(c)
        if c.is_file():
            return c, way
    raise InputError(
        f"{source}: {what} '{name}' not found; tried: "
        + ", ".join(map(str, tried))
        + f". Give --datadir the folder the metadata's paths start from ({_project_folder(source)})"
    )


def _project_folder(source: Path) -> str:
    """The folder a metadata file's image paths usually start from, named for its program."""
    if source.suffix.lower() == ".cs":
        return "the cryoSPARC project folder, which holds its job folders J1, J2, ..."
    if source.suffix.lower() == ".star":
        return "RELION's project folder"
    return "the project folder"


def open_stacks(
    stack_names: np.ndarray,
    image_index: np.ndarray,
    source: Path,
    dirs: SearchDirs,
    *,
    basename_too: bool = False,
) -> tuple[list[MRCStack], np.ndarray]:
    """Open each distinct stack once and check every referenced image exists.

    Parameters
    ----------
    stack_names : sequence of str, length N
    image_index : np.ndarray, shape (N,), 0-based
    source : Path
    dirs : SearchDirs
    basename_too : bool
        See :func:`resolve_stack_path`.

    Returns
    -------
    stacks : list[MRCStack]
    stack_index : np.ndarray, shape (N,), int64
        Index into ``stacks`` for each row.

    Raises
    ------
    InputError
        Missing, truncated or non-square stack, an index beyond its stack, or stacks of different
        image sizes.
    """
    unique, stack_index = distinct_names(stack_names)
    stacks = []
    by_stack = np.argsort(stack_index, kind="stable")
    bounds = np.searchsorted(stack_index[by_stack], np.arange(len(unique) + 1))
    way = None
    for s, name in enumerate(unique):
        path, way = _resolve(str(name), dirs, source, basename_too, "stack", way)
        stack = MRCStack(path)
        rows = by_stack[bounds[s] : bounds[s + 1]]
        beyond = rows[image_index[rows] >= stack.n_images]
        if beyond.size:
            row = int(beyond[0])
            plural = "image" if stack.n_images == 1 else "images"
            room = stack.images_in_file
            header = (
                f" by its header (nz = {stack.n_images}), though the file is long enough for "
                f"{room}: its header is probably wrong"
                if room > stack.n_images
                else ""
            )
            raise InputError(
                f"{source}: row {row + 1} refers to image {image_index[row] + 1} of "
                f"{path}, which holds only {stack.n_images} {plural}{header}"
            )
        stacks.append(stack)
    return stacks, stack_index


def check_unnumbered_names(
    names: Sequence[str],
    stacks: list[MRCStack],
    stack_index: np.ndarray,
    source: Path,
    column: str = "rlnImageName",
) -> None:
    """An error where a name without an image number (``file.mrc``, which RELION reads as the
    whole file) names a file of several sections: a 3-D volume (a subtomogram), not an image.

    Parameters
    ----------
    names : sequence of str, length N
        The names as written.
    stacks : list[MRCStack]
        The opened stacks (:func:`open_stacks`).
    stack_index : np.ndarray, shape (N,)
        Each row's stack.
    source : Path
        The metadata file (for the message).
    column : str
        The column the names came from (for the message).
    """
    held = np.array([s.n_images for s in stacks], dtype=np.int64)[stack_index]
    unnumbered = [int(r) for r in np.flatnonzero(held > 1) if "@" not in str(names[r])]
    if unnumbered:
        r = unnumbered[0]
        raise InputError(
            f"{source}: column {column}, row {r + 1}: '{names[r]}' has no image number, so it "
            f"is the whole file, which holds {held[r]} sections: a 3-D volume (a subtomogram?); "
            "cryosplat reconstructs from 2-D particle images (write N@stack.mrcs for image N of "
            "a stack)"
        )


def _first_rows(stack_index: np.ndarray, n_stacks: int) -> np.ndarray:
    """The first row of each of ``n_stacks`` stacks (−1 where none refers to it), in one pass:
    a loop over the stacks with a mask each would cost particles × stacks."""
    first = np.full(n_stacks, -1, dtype=np.int64)
    index = np.asarray(stack_index, dtype=np.int64)
    used, rows = np.unique(index, return_index=True)
    keep = (used >= 0) & (used < n_stacks)
    first[used[keep]] = rows[keep]
    return first


def stack_place_notes(
    stack_names: Sequence[str], stacks: list[MRCStack], stack_index: np.ndarray, dirs: SearchDirs
) -> list[str]:
    """Notes where stacks were read from somewhere the metadata does not plainly name
    (:func:`resolve_stack_path`), each naming the first such stack: absolute paths that were not
    there, read by their end under a search folder; relative ones found only in ``dirs.above``
    (RELION's project folder), not in ``datadir``, the metadata's folder or cwd."""
    moved, lifted = [], []
    for stack, row in zip(stacks, _first_rows(stack_index, len(stacks)), strict=True):
        written = Path(str(stack_names[row])) if row >= 0 else stack.path
        if written.is_absolute():
            if stack.path != written:
                moved.append((written, stack.path))
        elif any(stack.path == d / written for d in dirs.above):
            lifted.append((written, stack.path))

    def others(found: list) -> str:
        return f" (and {len(found) - 1} other stacks likewise)" if len(found) > 1 else ""

    notes = []
    if moved:
        (written, found) = moved[0]
        notes.append(
            f"stacks moved: '{written}' is not there; read '{found}' instead{others(moved)}, the "
            "same path's end under the folders searched (check that it is the same stack)"
        )
    if lifted:
        (written, found) = lifted[0]
        notes.append(
            f"stacks found above the metadata's folder: '{written}' read as '{found}'"
            f"{others(lifted)}, as RELION and cryoSPARC name stacks from the project folder "
            "(--datadir chooses another)"
        )
    return notes


def header_pixel_notes(
    stacks: list[MRCStack], stack_index: np.ndarray, particle_pixel_angstrom: np.ndarray
) -> list[str]:
    """Notes for stacks whose header pixel size disagrees with the metadata's (which is used).

    Parameters
    ----------
    stacks : list[MRCStack]
    stack_index : np.ndarray, shape (N,)
        Stack of each particle.
    particle_pixel_angstrom : np.ndarray, shape (N,)
        The metadata's pixel size of each particle (Å).

    Returns
    -------
    list[str]
        One note per distinct (header, metadata) pair; headers of 0 or 1.0 Å (unset) are ignored.
    """
    groups: dict[tuple[float, float], list[MRCStack]] = {}
    pixel = np.asarray(particle_pixel_angstrom, dtype=np.float64)
    for st, row in zip(stacks, _first_rows(stack_index, len(stacks)), strict=True):
        if row < 0:
            continue
        header = round(float(st.pixel_size_angstrom), 4)
        meta = float(pixel[row])
        if header in UNSET_HEADER_PIXELS or abs(header - meta) <= 1e-3 * meta:
            continue
        groups.setdefault((header, meta), []).append(st)
    notes = []
    for (header, meta), group in groups.items():
        more = f" and {len(group) - 1} other stacks" if len(group) > 1 else ""
        notes.append(
            f"pixel size: the header of {group[0].path}{more} says {header:g} Å but the "
            f"metadata says {meta:g} Å; using the metadata's {meta:g} Å"
        )
    return notes
