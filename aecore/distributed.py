"""Several processes, one model: PyTorch's DistributedDataParallel under torchrun.

``torchrun --nproc_per_node=N -m aecore train ...`` starts N processes; each
finds its rank in the environment torchrun sets, joins the process group (gloo
on CPUs, NCCL on GPUs), trains on its own shard of the training split, and
only rank 0 writes to the store and prints. The batch size stays the global
one: each process takes ``batch_size / N`` items per step, so N processes run
the same optimisation as one, only faster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from aecore.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def init_from_env(device: str = "auto") -> tuple[DistInfo, str]:
    """Join the process group when torchrun started us; returns the device each
    process should use (its own GPU under NCCL)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; run without torchrun.")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    else:
        device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return current(), device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
