"""Choosing the compute device once."""

from __future__ import annotations

import os

import torch

from hipseg.core.errors import HipsegError

__all__ = ["physical_memory_bytes", "select_device"]


def select_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` force one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise HipsegError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HipsegError(f"device {name!r} requested but CUDA is not available")
    return device


def physical_memory_bytes() -> int:
    """Total physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
