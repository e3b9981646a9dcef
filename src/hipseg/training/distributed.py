"""Data-parallel training on PyTorch's own engine: ``torchrun`` starts the processes, DDP syncs them.

``torchrun --nproc-per-node N -m hipseg train ...`` sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK`` in each process; :func:`start_run` reads them and joins the process group (NCCL on
CUDA, gloo on the CPU). Without them the run is a single process and nothing here does anything.

BatchNorm: on CUDA every BatchNorm layer becomes ``SyncBatchNorm``, so batch statistics are
computed over all ranks. PyTorch's ``SyncBatchNorm`` needs a GPU; on the CPU each rank
normalises with its own batch, DDP broadcasts rank 0's running statistics before every forward
pass, and :func:`sync_buffers` copies them once more before validation and checkpoints, so the
saved and validated statistics are the same on every rank.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from hipseg.core.errors import HipsegError
from hipseg.runtime.device import select_device

__all__ = ["DistributedRun", "broadcast_object", "gather_objects", "single_process", "start_run",
           "stop_run", "sync_buffers", "wrap_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedRun:
    """Where this process stands in a (possibly one-process) training run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise HipsegError(f"environment variable {name}={value!r} is not an integer") from None


def single_process(device: torch.device) -> DistributedRun:
    """A run of one process on ``device`` (no process group)."""
    return DistributedRun(0, 1, 0, device)


def start_run(device_name: str = "auto") -> DistributedRun:
    """Join the process group that ``torchrun`` set up, or describe a single-process run.

    Parameters
    ----------
    device_name : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``. Under ``torchrun`` on CUDA, ``auto`` and
        ``cuda`` mean the GPU numbered ``LOCAL_RANK``: one process per GPU.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    device = select_device(device_name)
    if world_size == 1:
        return single_process(device)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    logger.info("rank %d of %d on %s (%s)", rank, world_size, device, backend)
    return DistributedRun(rank, world_size, local_rank, device)


def stop_run(run: DistributedRun) -> None:
    """Leave the process group (all ranks wait for each other first)."""
    if run.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap_model(network: torch.nn.Module, run: DistributedRun) -> torch.nn.Module:
    """The module to train: ``network`` itself, or a DDP wrapper around it (same parameters)."""
    if not run.distributed:
        return network
    if run.device.type == "cuda":
        network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)
        return DistributedDataParallel(network, device_ids=[run.device.index])
    if run.is_main and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                           for m in network.modules()):
        logger.warning("SyncBatchNorm needs a GPU: on the CPU each rank normalises with its own "
                       "batch; running statistics are rank 0's, broadcast to all ranks")
    return DistributedDataParallel(network, broadcast_buffers=True)


def sync_buffers(network: torch.nn.Module, run: DistributedRun) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, in place."""
    if run.distributed:
        for buffer in network.buffers():
            dist.broadcast(buffer, src=0)


def broadcast_object(value: object, run: DistributedRun) -> object:
    """Rank 0's ``value`` on every rank (a picklable Python object)."""
    if not run.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value: object, run: DistributedRun) -> list:
    """Every rank's ``value``, in rank order, on every rank."""
    if not run.distributed:
        return [value]
    values: list = [None] * run.world_size
    dist.all_gather_object(values, value)
    return values
