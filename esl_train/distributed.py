"""torchrun support: one model trained with DistributedDataParallel (gloo on CPUs, NCCL on GPUs).

Under `torchrun --nproc_per_node N -m esl_train ...` every rank runs the same command. DDP averages the weight
gradients, so weights stay identical; the mask evolver reads its own copy of the *local* dense gradient (its hook
fires before DDP's all-reduce), so it averages that itself before a gradient regrowth (`all_reduce_mean_`), and
after every update it checks that the masks are the same on every rank (`check_same`). Only rank 0 writes the run
folder. Without torchrun (WORLD_SIZE unset or 1) every function here is a no-op."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size) as torchrun sets them; (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def init(use_cuda: bool) -> None:
    """Join the process group torchrun describes (once)."""
    if world()[1] > 1 and not active():
        dist.init_process_group("nccl" if use_cuda else "gloo")


def finish() -> None:
    if active():
        dist.destroy_process_group()


def is_main() -> bool:
    return world()[0] == 0


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast(value):
    """Rank 0's `value` on every rank."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean_(tensor: torch.Tensor) -> None:
    if active():
        dist.all_reduce(tensor)
        tensor.div_(dist.get_world_size())


def check_same(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Raise if `tensors` differ between ranks: a position-weighted checksum per tensor, gathered from all ranks."""
    if not active():
        return
    sums = torch.stack([(t.double().flatten() * torch.arange(1, t.numel() + 1, device=t.device,
                                                               dtype=torch.float64)).sum() for t in tensors.values()])
    gathered = [torch.empty_like(sums) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, sums)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"{what} differ between ranks; the distributed run cannot continue")
