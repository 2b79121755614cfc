"""The output folder of a reconstruction: its status file, guard against mixing runs, and the log.

A folder holds one run. ``run.json`` records the configuration and a status, ``"running"`` until every
output is written, then ``"complete"``; outputs are written atomically, so a run killed at any moment
leaves either the old file or the new one, and never a status of complete over half-written outputs.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from cryosplat import __version__
from cryosplat.core.errors import InputError
from cryosplat.io.atomic import atomic_path

__all__ = ["RunFolder", "write_json_atomic"]

STATUS_FILE = "run.json"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


class RunFolder:
    """The folder ``path`` for a run described by ``identity`` (what must match to resume).

    Parameters
    ----------
    path : Path
    identity : dict
        The settings that define the run (input, seed, engine settings, ...). A folder holding a run
        with another identity is refused.
    resume : bool
        Continue the run in the folder (it must hold the same run).
    """

    def __init__(self, path: str | Path, identity: dict, resume: bool = False) -> None:
        self.path = Path(path)
        self.identity = json.loads(json.dumps(identity, default=str))
        self.resume = resume
        self._log_handler: logging.Handler | None = None

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def status(self) -> dict | None:
        f = self.path / STATUS_FILE
        if not f.is_file():
            return None
        try:
            return json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{f}: unreadable run status ({exc})") from None

    def prepare(self) -> bool:
        """Check the folder and mark the run as running. Returns True when resuming a run."""
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path}: exists and is not a folder")
        existing = self.status()
        if existing is None:
            if self.path.is_dir() and any(self.path.iterdir()):
                raise InputError(
                    f"{self.path}: folder is not empty and holds no cryosplat run; "
                    "choose a new output folder"
                )
            if self.resume:
                raise InputError(
                    f"{self.path}: --resume given but the folder holds no run to resume"
                )
            resuming = False
        else:
            if existing.get("identity") != self.identity:
                diff = sorted(
                    k
                    for k in set(existing.get("identity", {})) | set(self.identity)
                    if existing.get("identity", {}).get(k) != self.identity.get(k)
                )
                raise InputError(
                    f"{self.path}: holds a different run (settings differ: "
                    f"{', '.join(diff)}); choose a new output folder"
                )
            if not self.resume:
                state = existing.get("status")
                raise InputError(
                    f"{self.path}: already holds this run (status: {state}); pass "
                    "--resume to continue it, or choose a new output folder"
                )
            resuming = True
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir.mkdir(exist_ok=True)
        started = existing.get("started") if existing else time.strftime("%Y-%m-%dT%H:%M:%S")
        self._write_status("running", started=started)
        return resuming

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

    def complete(self, summary: dict) -> None:
        """Mark the run complete, after every output is written."""
        self._write_status("complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), summary=summary)

    def attach_log(self, logger: logging.Logger) -> None:
        """Append ``logger``'s records to ``log.txt`` in the folder."""
        handler = logging.FileHandler(self.path / "log.txt")
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
