"""One device resolver for every part that runs torch (potentials, bias, engine)."""

from __future__ import annotations

import warnings

from ..errors import SBSInputError


def resolve_device(device: str = "cpu") -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto``.

    ``auto`` is CUDA when it is available and otherwise the CPU, with a warning;
    CUDA asked for where there is none is an error that says what to use instead.
    """
    import torch

    device = str(device)
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        warnings.warn("device 'auto': CUDA is not available, running on the CPU", stacklevel=3)
        return "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SBSInputError(f"device {device!r} requested but CUDA is not available here; use --device cpu or auto")
        return device
    if device != "cpu":
        raise SBSInputError(f"unknown device {device!r}: use cpu, cuda or auto")
    return "cpu"
