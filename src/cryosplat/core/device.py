"""The one place a device name from the command line becomes a ``torch.device``."""

from __future__ import annotations

import torch

from cryosplat.core.errors import InputError

__all__ = ["resolve_device"]


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
