"""torchrun / DDP support. A world of size 1 goes through the same code, where every call is a no-op.

Under torchrun (RANK, WORLD_SIZE and LOCAL_RANK in the environment) each process trains on its own slice of every
global batch, draws its own noise (seed + rank), and the gradients are averaged over processes before each
optimizer step, as stylegan2-ada does. That keeps G and D identical on every rank without DDP's wrapper, which
allows one forward per backward and would not fit the survey's real-then-fake passes through D.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device_kind: str) -> Context:
    """Join the process group that torchrun describes in the environment; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Context()
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        dist.init_process_group(backend)
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def average_gradients(module: torch.nn.Module, ctx: Context) -> None:
    """All-reduce the gradients of `module` and divide by the world size (one flat buffer, one collective)."""
    if ctx.world_size == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module(module: torch.nn.Module, ctx: Context) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if ctx.world_size == 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def mean(value: float, ctx: Context, device) -> float:
    """The mean of a scalar over ranks (for logging)."""
    if ctx.world_size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / ctx.world_size


def all_true(flag: bool, ctx: Context, device) -> bool:
    """Whether `flag` holds on every rank (so that every rank takes the same branch)."""
    if ctx.world_size == 1:
        return flag
    t = torch.tensor([0.0 if flag else 1.0], device=device)
    dist.all_reduce(t)
    return t.item() == 0


def barrier(ctx: Context) -> None:
    if ctx.world_size > 1:
        dist.barrier()


def shutdown(ctx: Context) -> None:
    if ctx.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(value, ctx: Context):
    """Rank 0's value of a picklable object, on every rank (the run folder's path)."""
    if ctx.world_size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_object(value, ctx: Context):
    """Every rank's value, as a list in rank order (their RNG states); the value itself in a single process."""
    if ctx.world_size == 1:
        return value
    values = [None] * ctx.world_size
    dist.all_gather_object(values, value)
    return values

