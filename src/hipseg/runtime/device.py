"""Choosing the compute device once."""

from __future__ import annotations

import os

import numba
import torch

from hipseg.core.errors import HipsegError

__all__ = ["PRECISIONS", "autocast_dtype", "physical_memory_bytes", "select_device", "set_threads",
           "training_precision"]

#: ``--precision`` choices: ``auto`` picks bf16 where the hardware computes it natively (CUDA
#: with bf16, else fp16; CPUs with AVX-512 BF16 or AMX), ``fp32`` turns mixed precision off.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


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


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for inference on ``device``, or ``None`` for plain float32.

    ``"auto"``: bfloat16 on CUDA devices that support it, else float16; bfloat16 on CPUs with
    native bf16 instructions (AVX-512 BF16 or AMX; measured about 2x faster than float32 with
    channels-last on a 2-core AMD EPYC, ``benchmarks/predict.py``), else float32, since emulated
    bf16 is slower.
    """
    if precision not in PRECISIONS:
        raise HipsegError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision == "fp32":
        return None
    if precision in ("bf16", "fp16"):
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return torch.bfloat16 if device.type == "cpu" and native else None


def training_precision(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for training on ``device``, or ``None`` for plain float32.

    ``"auto"``: as :func:`autocast_dtype` on CUDA (bfloat16 where supported, else float16, which
    gets a gradient scaler); float32 on the CPU, so CPU training stays bit-reproducible unless
    a reduced precision is asked for.
    """
    if precision == "auto" and device.type != "cuda":
        return None
    return autocast_dtype(device, precision)


def set_threads(n_threads: int | None) -> int:
    """Set torch's intra-op threads (``None``: one per available core); returns the number used.

    Prediction is compute-bound, so more threads than cores only adds switching; several worker
    processes on one machine should share the cores (``cores // workers`` each).
    """
    n = len(os.sched_getaffinity(0)) if n_threads is None else n_threads
    if n < 1:
        raise HipsegError(f"the number of threads must be at least 1, got {n}")
    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return n
