"""Several processes training one run (torchrun, data-parallel): the process group, who does what,
and the few collectives training needs. On one process every function here is a no-op or a plain
call, so a single-process run never touches torch.distributed.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK. Rank 0 alone reads and writes the run folder and
hands what it read (the run folder, a checkpoint, a refusal) to the others, so the ranks agree on
everything without sharing a file system, and one refusal stops every rank at once instead of
leaving the others waiting on a collective.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from .errors import BudgetVisionError

T = TypeVar("T")
_RANK_STREAM = 2   # a purpose for the derived seed of each rank's random stream (the loader uses 0 and 1)


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    """Rank 0: the one process that writes the run, prints, and speaks for the group."""
    return rank() == 0


def active() -> bool:
    """More than one process trains this run, and their group is up."""
    return dist.is_initialized() and dist.get_world_size() > 1


@contextlib.contextmanager
def group(device: torch.device) -> Iterator[torch.device]:
    """Under torchrun (WORLD_SIZE > 1), join the process group for the block: NCCL on CUDA, each
    rank on cuda:LOCAL_RANK, and Gloo on the CPU. Yields this process's device. A group the
    caller started is used as it is and left up."""
    if device.type == "cuda" and world_size() > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if world_size() == 1 or dist.is_initialized():
        yield device
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    """Where small control tensors go: NCCL reduces only CUDA tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def from_main(fn: Callable[[], T]) -> T:
    """fn() on rank 0 only; every rank gets its value, or raises its error (the others quietly, with
    rank 0's message: rank 0 prints it)."""
    if not active():
        return fn()
    box: list = [None, None]
    if is_main():
        try:
            box[0] = fn()
        except Exception as e:
            box[1] = str(e)
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    if box[1] is not None:
        raise BudgetVisionError(box[1])
    return box[0]


def everywhere(fn: Callable[[], T]) -> T:
    """fn() on every rank; where it fails on any rank it fails on all, and rank 0's error names the
    rank and its message (data missing on one machine of several, say), before anything is written."""
    if not active():
        return fn()
    try:
        value, error = fn(), None
    except Exception as e:
        value, error = None, e
    messages: list = [None] * world_size()
    dist.all_gather_object(messages, None if error is None else str(error))
    if error is not None and is_main():
        raise error
    failed = [(r, m) for r, m in enumerate(messages) if m is not None]
    if failed:
        r, message = failed[0]
        raise BudgetVisionError(f"rank {r}: {message}")
    return value


def gather(obj: T) -> list[T] | None:
    """Every rank's obj in rank order, on rank 0; None elsewhere."""
    if not active():
        return [obj]
    out = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def agree(*flags: int) -> list[int]:
    """The maximum of each flag over the ranks (a signal number, an overdue checkpoint), so every
    rank takes the same branch."""
    if not active():
        return list(flags)
    t = torch.tensor(flags, dtype=torch.int64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def all_sum(t: Tensor) -> Tensor:
    """t summed over the ranks (a copy; t itself on one process)."""
    if not active():
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t


def all_mean(tensors: Sequence[Tensor]) -> list[Tensor]:
    """Each tensor averaged over the ranks, in one all_reduce."""
    if not active():
        return list(tensors)
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
    dist.all_reduce(flat)
    flat /= world_size()
    return [c.view(t.shape).to(t.dtype) for c, t in zip(flat.split([t.numel() for t in tensors]), tensors)]


def broadcast_state(module: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank, as DistributedDataParallel starts."""
    if not active():
        return
    for t in module.state_dict().values():
        if isinstance(t, Tensor):
            dist.broadcast(t, src=0)


def reseed(seed: int) -> None:
    """Ranks other than 0 move to a random stream of their own (a GAN's latents, diffusion noise,
    dropout), so shards are not drawn the same noise; rank 0 keeps the one-process stream."""
    if rank() > 0:
        state = np.random.SeedSequence([seed, _RANK_STREAM, rank()]).generate_state(1, np.uint64)
        torch.manual_seed(int(state[0]) >> 1)


def average_gradients(params: Sequence[Tensor], loss: Tensor) -> Tensor:
    """DistributedDataParallel's step, in one all_reduce: every rank's gradients summed and divided
    by the number of ranks, so each steps on the gradient of the global batch (equal shards,
    losses averaged over their batch). A parameter with no gradient on any rank keeps none, as on
    one process. Returns the loss averaged over the ranks: non-finite where any rank's is, so every
    rank takes the same skip-or-stop decision."""
    if not active():
        return loss
    grads = [p.grad for p in params]
    present = torch.tensor([g is not None for g in grads], dtype=torch.float32, device=loss.device)
    flat = torch.cat([(g.reshape(-1) if g is not None else p.new_zeros(p.numel())).float()
                      for p, g in zip(params, grads)] + [present, loss.detach().float().reshape(1)])
    dist.all_reduce(flat)
    flat /= world_size()
    chunks = flat.split([p.numel() for p in params] + [len(params), 1])
    for p, g, chunk, anywhere in zip(params, grads, chunks, chunks[-2].tolist()):
        if anywhere == 0:
            continue
        if g is None:
            p.grad = torch.zeros_like(p)
        p.grad.copy_(chunk.view(p.shape))
    return chunks[-1][0]
