"""The output folder of a reconstruction: its status file, lock, guard against mixing runs, and the log.

A folder holds one run. ``run.json`` records the run's identity (settings and a fingerprint of the
input files' contents, :func:`input_fingerprint`) and a status: ``"running"`` until every output is
written, then ``"complete"``; ``"failed"`` (with the error) or ``"interrupted"`` when the run stopped
early. Outputs are written atomically, so a run killed at any moment leaves either the old file or
the new one, and never a status of complete over half-written outputs.

While a run works in a folder it holds an exclusive lock (``fcntl.flock`` on ``.cryosplat.lock``,
released by the kernel when the process ends, however it ends): a second process is refused,
whatever its options. ``--resume`` continues a run only when its identity is unchanged (same
settings, same input contents); ``--restart`` discards an unfinished, failed or different run in the
folder and starts again; a complete run is replaced only with ``--overwrite``. A complete run whose
checkpoints were kept (``--keep-checkpoints``) can be resumed: nothing is fitted again, its outputs
are made again from them, e.g. with the resolution read within a mask (``--mask``), or with another
local weight or without the data blend (what the identity leaves out).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from cryosplat import __version__
from cryosplat.core.errors import InputError
from cryosplat.io.atomic import atomic_path
from cryosplat.particles.particle_set import ParticleSet

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS: no lock
    fcntl = None

__all__ = [
    "RunFolder",
    "write_json_atomic",
    "input_fingerprint",
    "lock_holder",
    "read_status",
    "read_complete_run",
    "folder_bytes",
    "CHECKPOINT_DIR",
    "FSC_FILE",
    "LOCK_FILE",
    "LOG_FILE",
    "LOCAL_RESOLUTION_FILE",
    "MAP_FILE",
    "OUTPUT_FILES",
    "STATUS_FILE",
    "VIEW_FILE",
]

STATUS_FILE = "run.json"
LOCK_FILE = ".cryosplat.lock"
ADDED_SETTINGS = {"dust_sds": 0.0, "helical": None}
"""Settings added to a run's identity after runs were made without them, each with the value that
reads as those runs did (``dust_sds`` 0: every pixel kept; ``helical`` None: no helix): a run from
before is resumed where the command passes that value, and the refusal otherwise names it."""
LOG_FILE = "log.txt"
CHECKPOINT_DIR = "checkpoints"
MAP_FILE = "map.mrc"
FSC_FILE = "fsc.json"
LOCAL_RESOLUTION_FILE = "local_resolution.mrc"
VIEW_FILE = "chimerax.cxc"  # cryosplat.reconstruct.chimerax_view writes it
OUTPUT_FILES = (
    MAP_FILE,
    "half_map_A.mrc",
    "half_map_B.mrc",
    "mask.mrc",
    "local_weight.mrc",
    LOCAL_RESOLUTION_FILE,
    FSC_FILE,
    "fsc.xml",
    "fsc.svg",
    "model_A.npz",
    "model_B.npz",
    "model_A.cif",
    "model_B.cif",
    VIEW_FILE,
    "config.json",
    LOG_FILE,
)
MODES = ("new", "resume", "restart", "overwrite")
# What a run's summary says of the pass that fitted it, kept when its outputs are made again.
FIRST_PASS_KEYS = ("timings_s", "device", "peak_resident_memory_gb", "predicted_peak_memory_gb")


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _differences(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    """The settings (dotted names, sorted) whose values differ: ``{name: (old, new)}``."""
    a, b = _flatten(old), _flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _short(value: Any) -> str:
    text = "none" if value is None else str(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (a resolution no shell vouches for) made None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename; infinities and NaN as
    ``null`` (standard JSON has neither)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite_or_none(data), indent=2, allow_nan=False) + "\n")


def input_fingerprint(particles: ParticleSet) -> str:
    """A cheap fingerprint of what a particle set was read from, to tell a changed input.

    The metadata file's bytes (unless it is the image stack itself), the arrays read from it and
    any pickles (poses, shifts, CTF, subsets, image references), and each stack's path, size and
    modification time: any edit of the metadata, and any rewrite of a stack, changes it.

    Returns
    -------
    str
        32 hexadecimal digits (SHA-256).
    """
    h = hashlib.sha256()
    source = Path(particles.source) if particles.source else None
    if source is not None and source.is_file() and source.suffix.lower() not in (".mrcs", ".mrc"):
        with open(source, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    arrays = [
        particles.rotations,
        particles.shifts_angstrom,
        particles.random_subset,
        particles.stack_index,
        particles.image_index,
    ]
    if particles.ctf is not None:
        arrays += [getattr(particles.ctf, f) for f in particles.ctf.FIELDS]
    # Aberrations and weights join the fingerprint only where a set has them (older runs' keys
    # unchanged).
    arrays += [
        a
        for a in (
            particles.odd_zernike,
            getattr(particles.ctf, "even_zernike", None),
            particles.mag_matrices,
            particles.weights,
        )
        if a is not None
    ]
    for a in arrays:
        h.update(b"-" if a is None else np.ascontiguousarray(a).tobytes())
    for st in particles.stacks:
        info = os.stat(st.path)
        h.update(f"{Path(st.path).resolve()}|{info.st_size}|{info.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def read_status(path: str | Path) -> dict | None:
    """The run folder ``path``'s status (``run.json`` as a dict), or None when it has none.

    Raises
    ------
    InputError
        The status file is unreadable or not a JSON object.
    """
    return read_json_record(Path(path) / STATUS_FILE, "cryosplat run status")


def read_json_record(path: str | Path, what: str) -> dict | None:
    """The JSON object in ``path`` (a record a command wrote: ``what`` names it), or None where
    there is no such file.

    Raises
    ------
    InputError
        The file is unreadable or not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable {what} ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a {what} (a JSON object was expected)")
    return data


def read_complete_run(path: str | Path, needs: str) -> tuple[dict, float | None]:
    """A complete run's status and its reported resolution (Å; None where it reported none).

    Raises
    ------
    InputError
        ``path`` holds no run, or one that is not complete: ``"PATH: STATE; NEEDS"`` (``needs``
        says what the command reads, e.g. ``"sharpen reads a complete run"``).
    """
    status = read_status(path)
    if status is None or status.get("status") != "complete":
        state = "no cryosplat run" if status is None else f"a run that is {status.get('status')}"
        raise InputError(f"{path}: {state}; {needs}")
    summary = status.get("summary") if isinstance(status.get("summary"), dict) else {}
    resolution = summary.get("resolution_angstrom")  # as `cryosplat info` reads it
    if not isinstance(resolution, int | float) or not (
        math.isfinite(resolution) and resolution > 0
    ):
        resolution = None
    return status, resolution


def folder_bytes(path: str | Path) -> int:
    """The size of the files under ``path`` (0 when it is not a folder)."""
    path = Path(path)
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def lock_holder(path: str | Path) -> str | None:
    """The process that holds the lock of the run folder ``path`` now (``"pid N on HOST"``, as it
    wrote in the lock file), or None when none does (no lock file, or no process holds it: a run
    that ended, however it ended). Only tests the lock: a shared lock taken and released at once,
    the file opened for reading; None where ``fcntl`` is missing."""
    lock = Path(path) / LOCK_FILE
    if fcntl is None or not lock.is_file():
        return None
    try:
        fh = open(lock)
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return fh.read().strip() or "another process"
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return None


class RunFolder:
    """The folder ``path`` for a run described by ``identity`` (what must match to resume).

    Parameters
    ----------
    path : Path
    identity : dict
        The settings that define the run (input and its fingerprint, seed, engine settings, ...).
        A folder holding a run with another identity is refused (unless ``mode`` is ``"restart"``
        or ``"overwrite"``).
    resume : bool
        Continue the run in the folder (it must hold the same run); the same as ``mode="resume"``.
    mode : str
        ``"new"`` (default), ``"resume"``, ``"restart"`` (discard an unfinished, failed or different
        run in the folder) or ``"overwrite"`` (discard any run, a complete one too).
    """

    def __init__(
        self, path: str | Path, identity: dict, resume: bool = False, mode: str = "new"
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.path = Path(path)
        self.identity = json.loads(json.dumps(_finite_or_none(identity), default=str))
        self.mode = "resume" if resume else mode
        self.resume = self.mode == "resume"
        self._log_handler: logging.Handler | None = None
        self._lock = None
        self._lock_was_there = False
        self.discarded: str | None = None
        # Resuming a complete run from its kept checkpoints: only its outputs are made again.
        self.remaking = False
        # What the pass that fitted it cost (its summary's, kept through such remakes).
        self.first_pass: dict = {}

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    def status(self) -> dict | None:
        return read_status(self.path)

    # -- the lock -------------------------------------------------------------------------------
    def _acquire_lock(self) -> bool:
        """Take the folder's lock (creating the folder); returns whether the folder was created."""
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path}: exists and is not a folder")
        created = not self.path.exists()
        self._lock_was_there = (self.path / LOCK_FILE).exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fh = open(self.path / LOCK_FILE, "a+")  # closed by release()
        except OSError as exc:
            raise InputError(
                f"{self.path}: cannot create the output folder or its lock file ({exc.strerror}); "
                "choose a writable output folder"
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                owner = fh.read().strip() or "another process"
                fh.close()
                raise InputError(
                    f"{self.path}: another cryosplat process ({owner}) is running in this folder; "
                    "wait for it to finish (or stop it), or choose another output folder"
                ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        fh.flush()
        self._lock = fh
        return created

    def release(self) -> None:
        """Release the folder's lock (also done by the kernel when the process ends)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __del__(self) -> None:
        self.release()

    # -- checking the folder --------------------------------------------------------------------
    def prepare(self) -> bool:
        """Lock the folder, check it and mark the run as running. Returns True when resuming."""
        created = self._acquire_lock()
        try:
            resuming = self._check()
        except BaseException:
            self.release()
            if not self._lock_was_there:  # leave a refused folder as it was
                (self.path / LOCK_FILE).unlink(missing_ok=True)
            if created:
                self.path.rmdir()
            raise
        self.checkpoint_dir.mkdir(exist_ok=True)
        existing = self.status() if resuming else None
        started = existing.get("started") if existing else time.strftime("%Y-%m-%dT%H:%M:%S")
        self._write_status("running", started=started)
        return resuming

    def _foreign_files(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir() if p.name != LOCK_FILE)

    def _check(self) -> bool:
        existing = self.status()
        if existing is None:
            if self._foreign_files():
                raise InputError(
                    f"{self.path}: folder is not empty and holds no cryosplat run; "
                    "choose a new output folder"
                )
            if self.resume:
                raise InputError(
                    f"{self.path}: --resume given but the folder holds no run to resume"
                )
            return False
        state = existing.get("status")
        added = {k: v for k, v in ADDED_SETTINGS.items() if k in self.identity}
        old = {**added, **existing.get("identity", {})}
        if self.mode == "overwrite" or (self.mode == "restart" and state != "complete"):
            self._discard(existing)
            return False
        if self.mode == "restart":
            raise InputError(
                f"{self.path}: holds a complete run; --restart never replaces one: pass "
                "--overwrite to discard it, or choose a new output folder"
            )
        if old != self.identity:
            diff = _differences(old, self.identity)
            if list(diff) == ["input_fingerprint"]:
                raise InputError(
                    f"{self.path}: the input files changed since this run started (their "
                    "contents differ); resuming would mix the old data with the new: pass "
                    "--restart to start again in this folder, or choose a new output folder"
                )
            again = "--overwrite" if state == "complete" else "--restart"
            shown = [f"{k} {_short(a)} → {_short(b)}" for k, (a, b) in list(diff.items())[:6]]
            more = f" and {len(diff) - 6} more" if len(diff) > 6 else ""
            raise InputError(
                f"{self.path}: holds a different run (settings differ, this folder's → this "
                f"command's: {'; '.join(shown)}{more}; status: {state}); choose a new output "
                f"folder, pass the folder's settings again, or pass {again} to discard it"
            )
        if not self.resume:
            if state == "complete":
                raise InputError(
                    f"{self.path}: already holds this run, complete; choose a new output "
                    "folder (or pass --overwrite to run it again)"
                )
            raise InputError(
                f"{self.path}: already holds this run (status: {state}); pass --resume to "
                "continue it, --restart to start it again, or choose a new output folder"
            )
        if state == "complete" and not self._has_checkpoints():
            raise InputError(
                f"{self.path}: this run is already complete and its checkpoints are gone; "
                "nothing to resume (a run made with --keep-checkpoints can be resumed to make its "
                "outputs again, e.g. with --mask; pass --overwrite to run it again)"
            )
        self.remaking = state == "complete"
        if self.remaking:
            earlier = (self.status() or {}).get("summary") or {}
            self.first_pass = earlier.get("first_pass") or {
                k: earlier[k] for k in FIRST_PASS_KEYS if k in earlier
            }
        return True

    def _has_checkpoints(self) -> bool:
        return self.checkpoint_dir.is_dir() and any(self.checkpoint_dir.iterdir())

    def _discard(self, existing: dict) -> None:
        """Remove what the earlier run wrote (checkpoints first: nothing stale can be resumed)."""
        trash = self.path / ".checkpoints.discarded"
        if trash.exists():
            shutil.rmtree(trash)
        if self.checkpoint_dir.exists():
            os.replace(self.checkpoint_dir, trash)
        self._write_status("running", started=time.strftime("%Y-%m-%dT%H:%M:%S"))
        for name in OUTPUT_FILES:
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(trash, ignore_errors=True)
        self.discarded = existing.get("status")

    def _write_status(self, status: str, **extra: Any) -> None:
        current = self.status() or {}
        data = {
            "status": status,
            "cryosplat_version": __version__,
            "identity": self.identity,
            "started": current.get("started"),
        }
        data.update(extra)
        write_json_atomic(self.path / STATUS_FILE, data)

    def complete(self, summary: dict, keep_checkpoints: bool = False) -> int:
        """Mark the run complete, after every output is written; then remove its checkpoints.

        A complete run is resumed only to make its outputs again, so its checkpoints (the Fourier
        statistics: 1.6 GB at box 256) mostly take disk; they stay with ``keep_checkpoints``. They
        go after the status is written: a run stopped in between is complete with checkpoints
        left over, harmless (and resumable). Returns the bytes removed.
        """
        if self.remaking and self.first_pass:
            summary = {**summary, "first_pass": self.first_pass}
        self._write_status("complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), summary=summary)
        if keep_checkpoints or not self.checkpoint_dir.is_dir():
            return 0
        removed = folder_bytes(self.checkpoint_dir)
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        return removed

    def fail(self, reason: str, status: str = "failed") -> None:
        """Mark the run ``failed`` (or ``interrupted``) with the reason; never raises."""
        try:
            self._write_status(status, stopped=time.strftime("%Y-%m-%dT%H:%M:%S"), error=reason)
        except (OSError, InputError):
            pass  # a full or read-only disk: the status stays "running", which --resume accepts

    def attach_log(self, logger: logging.Logger) -> None:
        """Append ``logger``'s records to ``log.txt`` in the folder."""
        handler = logging.FileHandler(self.path / LOG_FILE)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        self._log_handler = handler

    def detach_log(self, logger: logging.Logger) -> None:
        if self._log_handler is not None:
            logger.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
