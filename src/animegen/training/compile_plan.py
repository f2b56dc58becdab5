"""What `--compile auto|on|off` means on this machine: torch.compile (inductor) for the network's forward and
backward, and on CUDA the whole training step (loss, backward, clip, Adam) captured once as a CUDA graph.

Why each choice (BENCHMARKS.md has the figures, with the machine named):
- A small UNet at 64 px on a GPU waits on Python and kernel launches: a whole-step CUDA graph replays hundreds of
  kernels with one launch and takes a second to capture, so `auto` always uses it on CUDA (H100: simple at batch
  16 6.8x eager, strong at 128 1.5x).
- inductor fuses GroupNorm, SiLU and casts, where the rest of the time goes (H100, on top of the graph: 1.7x
  simple at 16, 2.1x strong at 128), but compiling takes one to two minutes, so `auto` adds it for runs long
  enough to repay that. On an AVX2-only CPU in fp32 it bought 1.09x: `auto` compiles on a CPU only with native
  bf16 (AVX512-BF16, AMX). inductor's CPU backend needs a C++ compiler.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from animegen.core.compiler import cxx_compiler, inductor_cache_dir
from animegen.core.device import cpu_has_native_bf16
from animegen.core.names import COMPILE_SETTINGS

# compiling takes 1-2 minutes: `auto` compiles runs of at least this many minutes, or without a time limit this
# many steps (about 10 minutes of `simple` at batch 16: a GPU makes 2,000 steps a minute, a 2-core CPU 200)
AUTO_MIN_MINUTES = 10.0
AUTO_MIN_STEPS = {"cuda": 20_000, "cpu": 2_000}


@dataclass(frozen=True)
class CompilePlan:
    inductor: bool = False     # torch.compile the network (forward and backward)
    cuda_graph: bool = False   # capture loss + backward + clip + Adam as one CUDA graph, replayed every step
    note: str = ""             # the one line the run logs about it

    @property
    def enabled(self) -> bool:
        return self.inductor or self.cuda_graph


def plan_compile(setting: str, device: torch.device, *, distributed: bool = False, grad_accum: int = 1,
                 max_minutes: float | None = None, steps: int = 0) -> CompilePlan:
    """Resolve `setting` (auto | on | off) for a run on `device`."""
    if setting not in COMPILE_SETTINGS:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_SETTINGS)}, not {setting!r}")
    if setting == "off":
        return CompilePlan()
    if distributed:
        return CompilePlan(note="--compile: not under torch.distributed yet; training runs eager")
    long_run = (max_minutes or 0) >= AUTO_MIN_MINUTES or (
        max_minutes is None and steps >= AUTO_MIN_STEPS.get(device.type, 0))
    if device.type == "cuda":
        # a graph needs one fixed step; accumulation is a loop of micro-steps, left eager
        graph = grad_accum == 1
        inductor = setting == "on" or long_run
        note = ", ".join(filter(None, ["inductor" if inductor else "", "one CUDA graph per step" if graph else ""]))
        return CompilePlan(inductor, graph, f"--compile {setting}: {note or 'eager (grad_accum > 1)'}")
    if device.type != "cpu":
        return CompilePlan(note=f"--compile: nothing to compile for {device.type}; training runs eager")
    if setting == "auto":
        if not (cpu_has_native_bf16() and long_run):
            return CompilePlan()  # on an AVX2 CPU in fp32 compiling does not repay its minutes (module docstring)
    if cxx_compiler() is None:
        return CompilePlan(note="--compile: no C++ compiler found (inductor's CPU backend needs one: install g++, "
                                "or set CXX); training runs eager")
    return CompilePlan(inductor=True, note=f"--compile {setting}: inductor (the first step compiles; "
                                           f"cached in {inductor_cache_dir()})")
