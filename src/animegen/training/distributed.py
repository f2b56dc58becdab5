"""torch.distributed plumbing: read the launcher's environment, start the process group, agree across ranks.

`torchrun --nproc_per_node N -m animegen train ...` (or `accelerate launch`) sets RANK, WORLD_SIZE and LOCAL_RANK;
without them everything here is a no-op for a single process. Under a launcher the process group starts even for
one process (`torchrun --nproc_per_node 1`), so one GPU runs — and checks — the path N GPUs take.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

from animegen.core.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by a launcher that set up a rendezvous (MASTER_ADDR), even for one process

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or self.launched

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_from_launcher() -> DistEnv:
    """The ranks torchrun / accelerate / SLURM-style launchers put in the environment (1 process if none)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launched = "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ
    return DistEnv(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")), launched)


def init_distributed(device: str = "auto") -> tuple[DistEnv, str]:
    """Start the process group when launched with several processes; returns (env, device for this rank).

    NCCL when this rank trains on a GPU, gloo on CPU. Each rank on a GPU machine takes GPU `local_rank`."""
    env = env_from_launcher()
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda and env.enabled:
        torch.cuda.set_device(env.local_rank)
        device = f"cuda:{env.local_rank}"
    if env.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=env.rank, world_size=env.world_size)
    return env, device


def shutdown(wait: bool = False) -> None:
    """End the process group. `wait`: after a run that ended well, every rank first waits for the others (rank 0
    still writing its last checkpoint), since a rank that tears gloo down under a peer's open connection can abort
    at exit; after an error nobody waits for a peer that may be gone."""
    if dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def broadcast(value: Any, env: DistEnv) -> Any:
    """Rank 0's `value` on every rank (any picklable object between our own processes)."""
    if not env.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any, env: DistEnv) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank."""
    if not env.enabled:
        return [value]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, value)
    return out


def mean_and_any(value: float, flag: bool, env: DistEnv, device: torch.device) -> tuple[float, bool]:
    """(mean of `value` over ranks, whether any rank raised `flag`) in one all-reduce, so every rank takes the
    same decision (stop, diverged) at the same step and none is left waiting in a collective."""
    if not env.enabled:
        return value, flag
    both = torch.tensor([value, float(flag)], dtype=torch.float64, device=device)
    dist.all_reduce(both)
    return both[0].item() / env.world_size, both[1].item() > 0


def main_first(env: DistEnv, fn: Callable[[], T], share: bool = False) -> T:
    """Run `fn` on rank 0 first; a UserError there is raised on every rank (no rank is left waiting).

    share=True: the other ranks receive rank 0's result (deciding a run directory); share=False: they then run
    `fn` themselves (loading the data set from the cache rank 0 just built)."""
    result, error = None, None
    if env.is_main:
        try:
            result = fn()
        except UserError as err:
            error = str(err)
    shared, error = broadcast((result if share else None, error), env)
    if error is not None:
        raise UserError(error)
    if env.is_main:
        return result
    return shared if share else fn()


def average_gradients(module: torch.nn.Module, env: DistEnv) -> None:
    """Average .grad of `module` over ranks in one all-reduce (NVlabs' StyleGAN2-ADA does the same instead
    of DDP: its R1 and path-length terms need double backward, which DDP does not support)."""
    if not env.enabled:
        return
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= env.world_size
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad.copy_(g.view_as(p))
