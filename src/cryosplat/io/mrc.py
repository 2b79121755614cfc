"""MRC maps and image stacks.

Maps are written in the file frame of :mod:`cryosplat.core.conventions` (voxel 0 at 0 Å, header origin 0,
as RELION writes them) with the voxel size in the header, so ChimeraX shows the right size and hand.
Stacks are memory-mapped and read by index, so a stack larger than RAM works. A RELION STAR can name
thousands of stacks (one per micrograph): at most :data:`MAX_OPEN_MAPS` of them are mapped at once
(least recently used first out; a memory map holds a file descriptor), so the number of open files
stays bounded whatever the number of stacks. Stacks are read in modes 0 (int8), 1 (int16), 2
(float32), 6 (uint16) and 12 (float16, written by RELION 5 and cryoSPARC) and written in modes 2,
12 and 1 (:func:`write_stack`).
"""

from __future__ import annotations

import threading
import time
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path

import mrcfile
import numpy as np
from numpy.typing import ArrayLike

from cryosplat import __version__
from cryosplat.core.errors import InputError
from cryosplat.io.atomic import atomic_path

__all__ = [
    "read_map",
    "read_map_origin",
    "read_map_origin_xyz",
    "write_map",
    "MRCStack",
    "write_stack",
    "stack_header_info",
    "MAX_OPEN_MAPS",
    "STACK_MODES",
    "creator_label",
]

_HEADER_BYTES = 1024
MAX_OPEN_MAPS = 64
# Modes write_stack writes: name -> (numpy dtype, MRC mode).
STACK_MODES = {"float32": (np.float32, 2), "float16": (np.float16, 12), "int16": (np.int16, 1)}
# Stacks whose memory map is open, least recently used first (bounded by MAX_OPEN_MAPS). Weak
# references: a stack no longer used elsewhere is freed, and its map closed, as before.
_OPEN_MAPS: OrderedDict[int, weakref.ref] = OrderedDict()
# The registry is shared by the threads that read stacks (the two halves are gathered side by side).
_OPEN_MAPS_LOCK = threading.RLock()


# Every MRC mode (mrcfile reads 0-4, 6, 12 and 101): bytes per value.
_MRC_MODE_BYTES = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2, 101: 0.5}


def _open_header(path: Path, **kwargs) -> mrcfile.mrcfile.MrcFile:
    """``mrcfile.open`` (permissive, read-only), once the header's first words are those of an
    MRC file of this size: mrcfile reads the extended header the header claims in one request,
    and a file that is no MRC file (a Gaussian model's ``.npz`` given as a map) claimed 1.9 GB,
    which Python allocated before reading the few bytes there are. Permissive mode's warnings
    of headers RELION and cryoSPARC commonly write (no MAP ID) are silenced; what it cannot read
    raises :class:`InputError` here or where the caller reads it."""
    size = path.stat().st_size
    if size < _HEADER_BYTES:
        raise InputError(f"{path}: not an MRC file ({size} bytes, under an MRC header's 1,024)")
    with open(path, "rb") as fh:
        head = fh.read(_HEADER_BYTES)
    readings = []
    for order in "<>":  # either byte order
        nx, ny, nz, mode = (int(v) for v in np.frombuffer(head[:16], dtype=f"{order}i4"))
        extended = int(np.frombuffer(head[92:96], dtype=f"{order}i4")[0])
        readings.append((mode, nx, ny, nz, extended))
        if mode in _MRC_MODE_BYTES and min(nx, ny, nz) >= 1 and 0 <= extended <= size - 1024:
            break
    else:
        mode, nx, ny, nz, extended = readings[0]
        raise InputError(
            f"{path}: not an MRC file (its header's mode {mode}, size {nx} x {ny} x {nz} or "
            f"extended header of {extended} bytes fit no MRC file of {size} bytes)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return mrcfile.open(path, mode="r", permissive=True, **kwargs)


def stack_header_info(path: str | Path) -> dict:
    """Read only the header of an MRC file and check the file is long enough for it.

    Returns
    -------
    dict with ``nx, ny, nz`` (sections), ``mode``, ``pixel_size_angstrom`` (0 if unset),
    ``data_offset`` (bytes), ``itemsize``.

    Raises
    ------
    InputError
        Missing, unreadable or truncated file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: stack file not found")
    try:
        with _open_header(path, header_only=True) as m:
            h = m.header
            if h is None:
                raise InputError(f"{path}: not an MRC file (no header)")
            nx, ny, nz = int(h.nx), int(h.ny), int(h.nz)
            mode = int(h.mode)
            next_bytes = int(h.nsymbt)
            vs = float(m.voxel_size.x)
    except InputError:
        raise
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: cannot read MRC header ({exc})") from None
    dtypes = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}
    if mode not in dtypes:
        raise InputError(
            f"{path}: unsupported MRC mode {mode} (real images need mode 0, 1, 2, 6 or 12)"
        )
    itemsize = np.dtype(dtypes[mode]).itemsize
    offset = _HEADER_BYTES + next_bytes
    need = offset + nx * ny * nz * itemsize
    size = path.stat().st_size
    if size < need:
        have = max(0, (size - offset) // max(1, nx * ny * itemsize))
        raise InputError(
            f"{path}: truncated: header says {nz} images of {nx}x{ny} ({need} bytes) but the file "
            f"has {size} bytes ({have} whole images)"
        )
    return dict(
        nx=nx,
        ny=ny,
        nz=nz,
        images_in_file=(size - offset) // max(1, nx * ny * itemsize),
        mode=mode,
        pixel_size_angstrom=vs,
        data_offset=offset,
        itemsize=itemsize,
        dtype=np.dtype(dtypes[mode]).newbyteorder("<" if _is_little_endian(path) else ">"),
    )


def _is_little_endian(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(212)
        stamp = fh.read(1)
    return stamp != b"\x11"


class MRCStack:
    """A lazily memory-mapped stack of square images, read by index.

    Parameters
    ----------
    path : str or Path
        An ``.mrcs``/``.mrc`` file of N images of D×D pixels.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        info = stack_header_info(self.path)
        if info["nx"] != info["ny"]:
            raise InputError(
                f"{self.path}: images are {info['nx']}x{info['ny']}; cryosplat needs square images"
            )
        self.box = info["nx"]
        self.n_images = info["nz"]
        self.images_in_file = info["images_in_file"]  # > n_images when the header undercounts
        self.pixel_size_angstrom = info["pixel_size_angstrom"]
        self._info = info
        self._mmap: np.ndarray | None = None

    def __len__(self) -> int:
        return self.n_images

    def _array(self) -> np.ndarray:
        """The open memory map (mapped again if it was closed), as a local reference: another
        thread may close this stack's map right after (least recently used), but an array
        already handed out stays valid until dropped."""
        key = id(self)
        with _OPEN_MAPS_LOCK:
            entry = _OPEN_MAPS.get(key)
            if entry is None or entry() is not self:
                self._mmap = None  # a copy's map is not in the bounded set: map again
            mapped = self._mmap
            if mapped is not None:
                _OPEN_MAPS.move_to_end(key)
                return mapped
            while len(_OPEN_MAPS) >= MAX_OPEN_MAPS:
                _, oldest = _OPEN_MAPS.popitem(last=False)
                stack = oldest()
                if stack is not None:
                    stack._mmap = None
            _OPEN_MAPS[key] = weakref.ref(self)
            mapped = np.memmap(
                self.path,
                dtype=self._info["dtype"],
                mode="r",
                offset=self._info["data_offset"],
                shape=(self.n_images, self.box, self.box),
            )
            self._mmap = mapped
            return mapped

    def read(self, indices: ArrayLike) -> np.ndarray:
        """Images at 0-based ``indices`` as float32, shape (len(indices), D, D)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_images):
            bad = int(idx[(idx < 0) | (idx >= self.n_images)][0])
            raise InputError(
                f"{self.path}: image index {bad + 1} (1-based) is beyond the stack's "
                f"{self.n_images} images"
            )
        order = np.argsort(idx, kind="stable")
        out = np.empty((idx.size, self.box, self.box), dtype=np.float32)
        out[order] = self._array()[idx[order]]
        return out

    def release(self) -> None:
        """Drop the memory map, so pages read so far stop counting toward this process's memory.

        The next :meth:`read` maps the file again.
        """
        with _OPEN_MAPS_LOCK:
            self._mmap = None
            entry = _OPEN_MAPS.get(id(self))
            if entry is not None and entry() is self:
                del _OPEN_MAPS[id(self)]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_mmap"] = None
        return state


def read_map(path: str | Path, cubic: bool = True) -> tuple[np.ndarray, float]:
    """Read a map: ``(volume[z, y, x] float32, voxel_size_angstrom)``; refused where it is not
    cubic unless ``cubic`` is False (a deposited map boxed around its model, to be resampled)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: map file not found")
    try:
        with _open_header(path) as m:
            data = None if m.data is None else np.asarray(m.data, dtype=np.float32).copy()
            voxel = float(m.voxel_size.x)
            h = m.header
            axes = (int(h.mapc), int(h.mapr), int(h.maps))
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(f"{path}: cannot read MRC map ({exc})") from None
    if data is None:
        raise InputError(f"{path}: not a readable MRC map (no data block in the MRC format)")
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3D map, got shape {data.shape}")
    if axes != (1, 2, 3) and sorted(axes) == [1, 2, 3]:
        # Data axes are (sections, rows, columns) = spatial axes (maps, mapr, mapc); want (z, y, x).
        data_axes = [axes[2], axes[1], axes[0]]
        data = np.ascontiguousarray(np.transpose(data, [data_axes.index(a) for a in (3, 2, 1)]))
    if cubic and len(set(data.shape)) != 1:
        depth, rows, columns = data.shape
        raise InputError(
            f"{path}: a map of {columns} × {rows} × {depth} voxels (x, y, z), not cubic, where a "
            "cubic one is needed (cryosplat fsc compares one with a cubic map: --resample)"
        )
    if not np.all(np.isfinite(data)):
        raise InputError(f"{path}: map holds NaN or infinite values")
    return data, voxel


def _header_placement(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A map header's origin (Å), start indices (``nxstart`` …) and voxel size (Å), each x, y, z."""
    try:
        with _open_header(Path(path), header_only=True) as m:
            h = m.header
            origin = np.array([float(h.origin.x), float(h.origin.y), float(h.origin.z)])
            start = np.array([float(h.nxstart), float(h.nystart), float(h.nzstart)])
            voxel = np.array([float(m.voxel_size.x), float(m.voxel_size.y), float(m.voxel_size.z)])
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the MRC header ({exc})") from None
    return origin, start, voxel


def read_map_origin(path: str | Path) -> float:
    """The header origin (Å) of a map :func:`write_map` wrote: where its first voxel lies on x (0
    for every map but one made from an odd box)."""
    return float(_header_placement(path)[0][0])


def read_map_origin_xyz(path: str | Path) -> np.ndarray:
    """Where a map's first voxel lies (Å; x, y, z), as ChimeraX places it: the header's origin
    where it is set, else its start indices (``nxstart`` …) times the voxel size."""
    origin, start, voxel = _header_placement(path)
    return origin if np.any(origin != 0) else start * voxel


def write_map(
    path: str | Path,
    volume: ArrayLike,
    voxel_size_angstrom: float,
    origin_angstrom: float | ArrayLike = 0.0,
) -> None:
    """Write a map ``volume[z, y, x]`` atomically with its voxel size and header origin.

    Parameters
    ----------
    path : str or Path
    volume : array_like, shape (D, D, D)
    voxel_size_angstrom : float
    origin_angstrom : float or array_like of shape (3,)
        Header origin (Å; one for every axis, or x, y, z): where the first voxel lies. 0 for
        every map but one made from an odd box
        (:func:`cryosplat.core.conventions.cropped_map_origin_angstrom`) or one written on
        another map's grid (its origin).
    """
    if not voxel_size_angstrom > 0:
        raise ValueError(f"voxel_size_angstrom must be positive, got {voxel_size_angstrom}")
    data = np.ascontiguousarray(np.asarray(volume, dtype=np.float32))
    if data.ndim != 3:
        raise ValueError(f"volume must be 3D, got shape {data.shape}")

    with atomic_path(path) as tmp, mrcfile.new(tmp, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = float(voxel_size_angstrom)
        m.header.origin = tuple(float(o) for o in np.broadcast_to(origin_angstrom, (3,)))
        m.update_header_stats()
        m.header.label[0] = creator_label()


def creator_label() -> str:
    """The header's first label (ChimeraX and the EMDB show it): the program and the time, as
    RELION writes its own."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"Created by cryosplat {__version__}  {stamp}"[:80]


def write_stack(
    path: str | Path, images: ArrayLike, pixel_size_angstrom: float, mode: str = "float32"
) -> None:
    """Write images (N, D, D) as an MRC stack (``.mrcs``), atomically.

    Parameters
    ----------
    path : str or Path
    images : array_like, shape (N, D, D)
    pixel_size_angstrom : float
    mode : str
        ``"float32"`` (MRC mode 2), ``"float16"`` (mode 12: half the size, ~3 significant digits)
        or ``"int16"`` (mode 1: values rounded to integers, which must lie in ±32767).
    """
    if mode not in STACK_MODES:
        raise ValueError(f"mode must be one of {', '.join(STACK_MODES)}, got '{mode}'")
    dtype = STACK_MODES[mode][0]
    values = np.asarray(images)
    if mode == "int16":
        if values.size and np.abs(values).max() > 32767:
            raise ValueError(f"int16 stack: values up to {np.abs(values).max():g} exceed ±32767")
        values = np.rint(values)
    data = np.ascontiguousarray(values.astype(dtype))
    if data.ndim != 3:
        raise ValueError(f"images must have shape (N, D, D), got {data.shape}")

    with atomic_path(path) as tmp, mrcfile.new(tmp, overwrite=True) as m:
        m.set_data(data)
        m.set_image_stack()
        m.voxel_size = float(pixel_size_angstrom)
        m.update_header_stats()
        m.header.label[0] = creator_label()
