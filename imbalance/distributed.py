"""Running under ``torchrun``: process group, epoch sharding, and gathering predictions.

Every process loads the same table and makes the same split (both are deterministic in the
seed). Each epoch every rank draws the *same* epoch of indices from the shared seed and takes
its own shard, ``indices[rank::world_size]``: the shards are disjoint and their union is the
epoch, so the class shares seen over all ranks are exactly the single-process ones. Weight
updates are averaged by ``DistributedDataParallel``. Validation rows are split into contiguous
chunks, scored on each rank and gathered, so metrics, threshold search and early-stopping
decisions are computed from all predictions and are identical on every rank. Only rank 0 writes
files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

__all__ = ["DistContext", "init_distributed", "shard_indices"]

logger = logging.getLogger(__name__)


def shard_indices(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s share of an epoch: every ``world_size``-th index from ``rank``.

    The epoch length must be a multiple of ``world_size`` (samplers are built so), so every rank
    gets as many rows and takes the same number of optimizer steps.
    """
    if indices.numel() % world_size:
        raise ValueError(f"epoch of {indices.numel()} indices does not split evenly over {world_size} ranks")
    return indices[rank::world_size]


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        return shard_indices(indices, self.rank, self.world_size) if self.enabled else indices

    def row_range(self, n: int) -> tuple[int, int]:
        """This rank's contiguous chunk of ``n`` evaluation rows."""
        per = -(-n // self.world_size)
        start = min(n, self.rank * per)
        return start, min(n, start + per)

    def gather_rows(self, part: torch.Tensor, n: int) -> torch.Tensor:
        """Concatenate every rank's chunk (see ``row_range``) back into all ``n`` rows, in order."""
        if not self.enabled:
            return part
        per = -(-n // self.world_size)
        padded = torch.zeros((per, *part.shape[1:]), dtype=part.dtype, device=part.device)
        padded[: part.shape[0]] = part
        chunks = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(chunks, padded)
        return torch.cat(chunks)[:n]

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: Optional[torch.device] = None) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment (WORLD_SIZE > 1);
    otherwise a single-process context. NCCL on CUDA, gloo on CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_nccl = device is not None and device.type == "cuda"
        if use_nccl:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    logger.debug("rank %d of %d (local rank %d)", rank, world_size, local_rank)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank)
