"""Atomic checkpoints: a state dict written to a temporary file and renamed over the old one."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from cryosplat.core.errors import InputError
from cryosplat.io.atomic import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save`` atomically: a reader sees the old or the new file, whole.

    ``state`` holds only tensors and plain types (dict, list, str, int, float, bool, None), so
    that :func:`load_checkpoint` can read it with ``weights_only=True`` (no code in a checkpoint).
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on the CPU).

    Loaded with ``weights_only=True``: a file holding anything but tensors and plain types is
    refused rather than run.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise InputError(f"{path}: cannot read checkpoint ({exc})") from None
