"""`--compile` for sampling: torch.compile (inductor) the network a long generation evaluates many times.

Why `auto` compiles only long generations on a CPU (BENCHMARKS.md "Compiled sampling", 2-core AVX2 EPYC, fp32):
a compiled evaluation of the shipped UNet runs ~1.2x faster, but a cold compile costs ~41 s, repaid after ~256
calls of batch 128 — 1000 faces at ~33 network evaluations each (DPM-Solver++ SDE 100 saves ~130 s of 661; the
default DPM-Solver++ 20 and the student would lose). On a GPU it is not measured yet: `auto` stays eager there.
"""

from __future__ import annotations

import torch

from animegen.core.compiler import cxx_compiler, inductor_cache_dir
from animegen.core.names import COMPILE_SETTINGS
from animegen.diffusion.parameterization import Denoiser

AUTO_MIN_IMAGE_EVALS = 256 * 128  # image-evaluations (images x NFE) that repay a cold compile on the CPU above


def plan_sampling_compile(setting: str, device: torch.device, image_evals: int) -> tuple[bool, str]:
    """(compile?, the one line to log) for a generation of `image_evals` image-evaluations on `device`."""
    if setting not in COMPILE_SETTINGS:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_SETTINGS)}, not {setting!r}")
    if setting == "off" or (setting == "auto" and (device.type != "cpu" or image_evals < AUTO_MIN_IMAGE_EVALS)):
        return False, ""
    if device.type == "cpu" and cxx_compiler() is None:
        return False, ("--compile: no C++ compiler found (inductor's CPU backend needs one: install g++, or set CXX); "
                       "sampling runs eager")
    return True, f"--compile {setting}: inductor for the network (the first batch compiles; cached in " \
                 f"{inductor_cache_dir()})"


def compiled(denoiser: Denoiser) -> Denoiser:
    """The same denoiser around its network compiled for one batch shape (callers pad the last batch to it)."""
    inductor_cache_dir()
    return denoiser.with_net(torch.compile(denoiser.net, dynamic=False))
