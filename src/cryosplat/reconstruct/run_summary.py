"""What a ``cryosplat reconstruct`` output folder holds: its run's state and results, read back.

A run folder (:mod:`cryosplat.reconstruct.run_folder`) records its status in ``run.json``
(``running``, ``complete``, ``failed`` or ``interrupted``), its identity (the input and the
settings), and, once complete, a summary of the results; ``fsc.json`` holds the warnings and
``log.txt`` every step. :func:`read_run` gathers them into a :class:`RunSummary`, with what only the
folder itself can tell: whether a process still works in it (its lock is held), a ``running``
status that no process holds (the run was killed: ``--resume`` continues it), which of the
outputs a complete run lacks, and the voxel size the written map's header carries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryosplat.core.errors import InputError
from cryosplat.io.mrc import stack_header_info
from cryosplat.reconstruct.grid.engine import stage_checkpoint
from cryosplat.reconstruct.grid.gather_checkpoint import partial_paths, saved_progress
from cryosplat.reconstruct.grid.half_statistics import statistics_checkpoint
from cryosplat.reconstruct.run_folder import (
    CHECKPOINT_DIR,
    FSC_FILE,
    LOCAL_RESOLUTION_FILE,
    LOG_FILE,
    MAP_FILE,
    OUTPUT_FILES,
    STATUS_FILE,
    VIEW_FILE,
    folder_bytes,
    lock_holder,
    read_status,
)

__all__ = ["RunSummary", "read_run"]


@dataclass
class RunSummary:
    """A run folder's state and results.

    Attributes
    ----------
    path : the folder
    status : ``running``, ``complete``, ``failed`` or ``interrupted`` (as ``run.json`` says)
    holder : the process working in the folder now (``"pid N on HOST"``), or None when none is
    identity : the run's settings and input (``run.json``'s ``identity``)
    started, finished, stopped : times as ``run.json`` records them (None where absent)
    error : why a failed or interrupted run stopped
    results : the complete run's summary (``run.json``'s ``summary``: resolution, band, Gaussians,
        half sets, timings, ...); empty before
    warnings : the resolution's warnings (``fsc.json``)
    map_voxel_size_angstrom : the voxel size in ``map.mrc``'s header (None without the map)
    missing_outputs : outputs a complete run should hold but the folder lacks
    last_log_line : the log's last line (what an unfinished run did last)
    checkpoint_bytes : the size of ``checkpoints/`` (what ``--resume`` continues from)
    checkpoint_progress : what the checkpoints hold, in words (each half's statistics gathered
        or saved part way, the last stage both half models finished)
    version : the cryosplat version that wrote the status
    """

    path: Path
    status: str
    holder: str | None
    identity: dict[str, Any]
    started: str | None = None
    finished: str | None = None
    stopped: str | None = None
    error: str | None = None
    results: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    map_voxel_size_angstrom: float | None = None
    missing_outputs: list[str] = field(default_factory=list)
    last_log_line: str | None = None
    checkpoint_bytes: int = 0
    checkpoint_progress: list[str] = field(default_factory=list)
    version: str | None = None

    @property
    def abandoned(self) -> bool:
        """A ``running`` status no process holds: the run was killed (``--resume`` continues)."""
        return self.status == "running" and self.holder is None


def _last_line(path: Path) -> str | None:
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 4096))
        lines = fh.read().decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1] if lines else None


def _warnings(path: Path) -> list[str]:
    if not path.is_file():
        return []
    try:
        found = json.loads(path.read_text()).get("warnings", [])
    except (OSError, json.JSONDecodeError, AttributeError):
        return []
    return [str(w) for w in found] if isinstance(found, list) else []


def _map_voxel_size(path: Path) -> float | None:
    if not path.is_file():
        return None
    try:
        return float(stack_header_info(path)["pixel_size_angstrom"])
    except InputError:
        return None


def _checkpoint_progress(folder: Path, identity: dict[str, Any]) -> list[str]:
    """Each half's statistics (gathered, or saved part way at particle k of n) and the last
    stage both half models finished, as the grid engine's checkpoints say."""
    if not folder.is_dir():
        return []
    notes = []
    for half in range(2):
        done = statistics_checkpoint(folder, half)
        name = "AB"[half]
        if done.is_file():
            notes.append(f"half {name}: statistics gathered")
            continue
        for partial in partial_paths(done):
            saved = saved_progress(partial)
            if saved is not None:
                notes.append(
                    f"half {name}: statistics pass saved at particle {saved[0]:,} of {saved[1]:,}"
                )
    fractions = ((identity.get("grid") or {}).get("fit") or {}).get("stage_fractions") or []
    stages = 0
    while all(stage_checkpoint(folder, stages, h).is_file() for h in range(2)):
        stages += 1
    if stages:
        of = f" of {len(fractions)}" if fractions else ""
        notes.append(f"fit: stage {stages}{of} finished by both half models")
    return notes


def read_run(path: str | Path) -> RunSummary:
    """Read a ``cryosplat reconstruct`` output folder (it is not modified, nor its lock taken
    for longer than a test).

    Raises
    ------
    InputError
        ``path`` is not a folder, holds no run, or its status is unreadable.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    status = read_status(path)
    if status is None:
        raise InputError(
            f"{path}: holds no cryosplat run (no {STATUS_FILE}); give a reconstruct output "
            "folder, or a particle file (.star, .cs, .mrcs)"
        )
    state = str(status.get("status", "unknown"))
    results = status.get("summary") if isinstance(status.get("summary"), dict) else {}
    identity = status.get("identity") if isinstance(status.get("identity"), dict) else {}
    missing = []
    if state == "complete":
        missing = [name for name in OUTPUT_FILES if not (path / name).is_file()]
        for key, name in (  # runs from before these were made
            ("local_resolution_5_50_95_angstrom", LOCAL_RESOLUTION_FILE),
            ("chimerax_surface_level", VIEW_FILE),
        ):
            if key not in results:
                missing = [m for m in missing if m != name]
    return RunSummary(
        path=path,
        status=state,
        holder=lock_holder(path),
        identity=identity,
        started=status.get("started"),
        finished=status.get("finished"),
        stopped=status.get("stopped"),
        error=status.get("error"),
        results=results,
        warnings=_warnings(path / FSC_FILE),
        map_voxel_size_angstrom=_map_voxel_size(path / MAP_FILE),
        missing_outputs=missing,
        last_log_line=_last_line(path / LOG_FILE),
        checkpoint_bytes=folder_bytes(path / CHECKPOINT_DIR),
        checkpoint_progress=_checkpoint_progress(path / CHECKPOINT_DIR, identity),
        version=status.get("cryosplat_version"),
    )
