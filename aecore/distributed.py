"""Several processes, one model: PyTorch's DistributedDataParallel under torchrun.

``torchrun --nproc_per_node=N -m aecore train ...`` starts N processes; each
finds its rank in the environment torchrun sets, joins the process group (gloo
on CPUs, NCCL on GPUs), trains on its own shard of the training split, and
only rank 0 writes to the store and prints. The batch size stays the global
one: each process takes ``batch_size / N`` items per step, so N processes run
the same optimisation as one, only faster.

The trainer's loop is the same with one process or N: ``shard``, ``rank_seed``,
``local_batch_size``, ``wrap`` and ``reduce_terms_and_stop`` do the DDP part and
give back their input unchanged when there is one process.
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


def shard(x: torch.Tensor, t: torch.Tensor | None, info: DistInfo) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This process's part of the training split: every ``world_size``-th item
    from ``rank`` on, the targets cut the same way as the inputs."""
    if not info.enabled:
        return x, t
    # Equal shards so that every process runs the same number of steps
    # (a rank with one step more would wait forever in its all-reduce).
    per = len(x) // info.world_size
    x = x[info.rank :: info.world_size][:per]
    t = None if t is None else t[info.rank :: info.world_size][:per]
    return x, t


def rank_seed(seed: int, info: DistInfo) -> int:
    """The seed of this process's shuffle: each rank draws its own order of its shard."""
    return seed + 1000 * info.rank


def local_batch_size(batch_size: int, info: DistInfo) -> int:
    """Items per step on this process, so that all processes together take ``batch_size``."""
    return max(batch_size // info.world_size, 1)


def wrap(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """The module the training step calls: under DDP its backward averages the
    gradients over the processes; alone it is the model itself."""
    if not info.enabled:
        return model
    return torch.nn.parallel.DistributedDataParallel(model)


def reduce_terms_and_stop(terms: torch.Tensor, stop: bool, info: DistInfo) -> tuple[torch.Tensor, bool]:
    """The step's loss terms, shape (n_terms,), averaged over the processes, and
    whether any process asked to stop (then the terms are this process's own:
    the step is not taken). Alone: ``terms`` and ``stop`` as given."""
    if not info.enabled:
        return terms, stop
    # Every rank must take the same decision (stop, diverged) at the same step,
    # so the terms and the stop flag are reduced together.
    flag = torch.tensor([float(stop)], device=terms.device)
    buf = torch.cat([terms, flag])  # (n_terms + 1,): the terms, then the flag
    dist.all_reduce(buf)
    if buf[-1].item() > 0:
        return terms, True
    return buf[:-1] / info.world_size, False


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
