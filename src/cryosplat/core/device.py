"""The compute device: the one place a ``--device`` name becomes a ``torch.device``, its
description in logs and reports, its peak memory, synchronisation and determinism."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from cryosplat.core.errors import InputError

__all__ = [
    "deterministic_algorithms",
    "describe_device",
    "peak_memory_gb",
    "peak_resident_gb",
    "reset_peak_memory",
    "resolve_device",
    "synchronize",
]


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as asked.

    Raises
    ------
    InputError
        An unknown name, a CUDA device where PyTorch has none, an index beyond the devices, or a
        device type other than CPU and CUDA (naming ``--device`` and the value).
    """
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(
            f"--device: unknown device '{name}' (use auto, cpu, cuda or cuda:N)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"--device {name}: no CUDA GPU is available to this PyTorch "
                f"(torch {torch.__version__}, cuda {torch.version.cuda})"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise InputError(f"--device {name}: unsupported device type '{device.type}'")
    return device


def describe_device(device: torch.device | str) -> str:
    """One line naming the device: ``cuda:0 (NVIDIA H200, 139.8 GiB, CUDA 12.8, torch 2.x)``.

    On the CPU: ``cpu (N torch threads, torch 2.x)``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        props = torch.cuda.get_device_properties(index)
        return (
            f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.1f} GiB, "
            f"CUDA {torch.version.cuda}, torch {torch.__version__})"
        )
    return f"{device} ({torch.get_num_threads()} torch threads, torch {torch.__version__})"


def reset_peak_memory(device: torch.device | str) -> None:
    """Start counting the peak memory of a CUDA device afresh (nothing on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gb(device: torch.device | str) -> float | None:
    """``torch.cuda.max_memory_allocated`` in GB (10⁹ bytes) on a CUDA device; None on the CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 1e9


def peak_resident_gb() -> float | None:
    """This process's peak resident memory so far, in GB (10⁹ bytes): ``ru_maxrss`` of
    :func:`resource.getrusage` (kilobytes on Linux, bytes on macOS), what ``/usr/bin/time -f %M``
    reports for the process; None where the platform has no :mod:`resource` (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / 1e9


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (for honest wall times); nothing on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# cuBLAS needs a fixed workspace to reduce in a fixed order (PyTorch's reproducibility notes).
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


@contextmanager
def deterministic_algorithms(enabled: bool = True) -> Iterator[None]:
    """Within the block, PyTorch's deterministic kernels where a faster one sums in no fixed order.

    On a GPU, scatter and index sums (slice insertion, the voxeliser and their gradients) add with
    atomics in whatever order the threads arrive, so two runs on the same data differ by rounding,
    which the fit amplifies (round 2 session 15: FSC 0.89 at the reported resolution between two
    runs on an H200, the same as between CPU runs whose images differ by 10⁻⁶ of their s.d.).
    The CPU path is deterministic without this. An operation PyTorch has no deterministic kernel
    for warns (``warn_only``) rather than stopping the run. Setting the mode costs ~1.3 s once
    (PyTorch imports its compiler's settings then), the deterministic scatter kernels the rest
    (the fit 13.3 → 29.6 s at box 256 on an H200). The earlier setting is restored on exit;
    ``CUBLAS_WORKSPACE_CONFIG`` is set (if unset) for the rest of the process, since cuBLAS reads
    it once.

    Parameters
    ----------
    enabled : False leaves everything as it is (a no-op block).
    """
    if not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
