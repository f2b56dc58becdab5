"""What `--compile auto|on|off` means on this machine: torch.compile (inductor) for the network's forward and
backward, and on CUDA the whole training step (loss, backward, clip, Adam) captured once as a CUDA graph; and,
under torch.distributed, where the gradients are averaged (`dist_sync`).

Why each choice (BENCHMARKS.md has the figures, with the machine named):
- A small UNet at 64 px on a GPU waits on Python and kernel launches: a whole-step CUDA graph replays hundreds of
  kernels with one launch and takes a second to capture, so `auto` always uses it on CUDA, on every generation.
- inductor fuses GroupNorm, SiLU and casts, where the rest of the time goes, on top of the graph, but compiling
  takes one to two minutes, so `auto` adds it for runs long enough to repay that. Its GPU kernels are Triton's,
  and Triton needs sm70 or newer: a P100 (sm60) gets the graph alone. On a CPU `auto` trains eager: in fp32
  (AVX2-only CPUs) inductor bought little, and under bf16 autocast (AVX512-BF16, AMX) torch 2.13's inductor lost
  most of the UNet's gradients, while eager bf16 ran as fast as it did. `on` compiles on a CPU too (its CPU
  backend needs a C++ compiler); every compiled run first checks its gradients against eager
  (training/compile_check.py).
- Under torch.distributed DDP averages gradients with hooks during backward, which a CUDA graph cannot hold as
  they are; so where the step is one graph the gradients are averaged inside it instead: one flat all-reduce
  after backward (training/grad_step.py), and N GPUs keep the single-GPU step. Elsewhere (CPUs with gloo, and
  GPU runs without a graph: --compile off, grad_accum > 1) DDP's hooks, eager, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from animegen.core.compiler import cxx_compiler, inductor_cache_dir, triton_runs
from animegen.core.device import cuda_capability as capability_of
from animegen.core.names import COMPILE_SETTINGS, DIST_SYNCS

# compiling takes 1-2 minutes: on a GPU `auto` adds inductor to runs of at least this many minutes, or without a
# time limit this many steps (about 10 minutes of `simple` at batch 16: a GPU makes 2,000 steps a minute)
AUTO_MIN_MINUTES = 10.0
AUTO_MIN_STEPS = {"cuda": 20_000}


@dataclass(frozen=True)
class CompilePlan:
    inductor: bool = False     # torch.compile the network (forward and backward)
    cuda_graph: bool = False   # capture loss + backward + clip + Adam as one CUDA graph, replayed every step
    grad_sync: str = "none"    # none (one process) | ddp (DDP's hooks) | allreduce (one all-reduce in the step)
    note: str = ""             # the one line the run logs about it

    @property
    def enabled(self) -> bool:
        return self.inductor or self.cuda_graph


def plan_compile(setting: str, device: torch.device, *, distributed: bool = False, grad_accum: int = 1,
                 max_minutes: float | None = None, steps: int = 0, dist_sync: str = "auto",
                 cuda_capability: tuple[int, int] | None = None, has_compiler: bool | None = None) -> CompilePlan:
    """Resolve `setting` (auto | on | off) for a run on `device`. The device's capabilities (a GPU's compute
    capability, a C++ compiler) are looked up where not given, so tests pass them in."""
    if setting not in COMPILE_SETTINGS:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_SETTINGS)}, not {setting!r}")
    if dist_sync not in DIST_SYNCS:
        raise ValueError(f"dist_sync must be one of {', '.join(DIST_SYNCS)}, not {dist_sync!r}")
    device = torch.device(device)
    long_run = (max_minutes or 0) >= AUTO_MIN_MINUTES or (
        max_minutes is None and steps >= AUTO_MIN_STEPS.get(device.type, 0))
    if device.type == "cuda":
        capability = cuda_capability if cuda_capability is not None else capability_of(device)
        return _cuda_plan(setting, capability, long_run, distributed, dist_sync, grad_accum)
    sync = ("allreduce" if dist_sync == "allreduce" else "ddp") if distributed else "none"
    if setting == "off":
        return CompilePlan(grad_sync=sync)
    if distributed:
        return CompilePlan(grad_sync=sync, note=f"--compile: not under torch.distributed on {device.type}; "
                                                f"training runs eager ({sync})")
    if device.type != "cpu":
        return CompilePlan(note=f"--compile: nothing to compile for {device.type}; training runs eager")
    if setting == "auto":
        return CompilePlan()  # eager on every CPU (module docstring)
    if not (has_compiler if has_compiler is not None else cxx_compiler() is not None):
        return CompilePlan(note="--compile: no C++ compiler found (inductor's CPU backend needs one: install g++, "
                                "or set CXX); training runs eager")
    return CompilePlan(inductor=True, note=f"--compile {setting}: inductor (the first step compiles; "
                                           f"cached in {inductor_cache_dir()})")


def _cuda_plan(setting: str, capability: tuple[int, int], long_run: bool, distributed: bool, dist_sync: str,
               grad_accum: int) -> CompilePlan:
    """A CUDA device of compute `capability`: the graph on every generation, inductor where Triton runs; under
    torch.distributed the gradients averaged inside the graph. Where there is no graph (--compile off,
    grad_accum > 1) `auto` keeps DDP, whose hooks overlap the all-reduce with backward, and DDP runs eager."""
    graph = grad_accum == 1  # a graph needs one fixed step; accumulation is a loop of micro-steps, left eager
    sync = "none"
    if distributed:
        eager = setting == "off" or not graph
        sync = "ddp" if dist_sync == "ddp" or (dist_sync == "auto" and eager) else "allreduce"
    if setting == "off":
        return CompilePlan(grad_sync=sync)
    if sync == "ddp":  # DDP's hooks fire inside backward, which a graph cannot replay as captured
        return CompilePlan(grad_sync=sync, note="--compile: eager under DDP (the CUDA graph, with the all-reduce "
                                                "inside, needs grad_accum 1 and dist_sync auto or allreduce)")
    wants_inductor = setting == "on" or long_run
    inductor = wants_inductor and triton_runs(capability)
    parts = ["inductor" if inductor else "", "one CUDA graph per step" if graph else "eager (grad_accum > 1)",
             "gradients all-reduced inside the step" if distributed else ""]
    if wants_inductor and not inductor:
        sm = f"sm{capability[0]}{capability[1]}"
        parts.append(f"no inductor: Triton needs sm70 or newer, this GPU is {sm}")
    return CompilePlan(inductor, graph, sync, f"--compile {setting}: " + ", ".join(filter(None, parts)))
