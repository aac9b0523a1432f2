"""The device a job runs on, from the config's `device` (auto | cpu | cuda[:i])."""

from __future__ import annotations

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` is CUDA when a GPU is visible, else the CPU; asking for CUDA without one is an error
    that names the setting, rather than a crash deep inside the first kernel."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was requested but CUDA is not available; set `device: cpu`")
    return torch.device(device)
