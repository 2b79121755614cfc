"""Atomic checkpoints: a state dict written to a temporary file and renamed over the old one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from cryosplat.core.errors import InputError
from cryosplat.io.atomic import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save`` atomically: a reader sees the old or the new file, whole."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on the CPU)."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise InputError(f"{path}: cannot read checkpoint ({exc})") from None
