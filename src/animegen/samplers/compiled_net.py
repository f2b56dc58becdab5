"""`--compile` for sampling: torch.compile (inductor) the network a long generation evaluates many times.

Why `auto` stays eager on an AVX2-only CPU and on GPUs (BENCHMARKS.md "Compiled sampling" has the figures): on an
AVX2-only CPU in fp32 a compiled evaluation of the shipped UNet is a little faster, but a whole 1000-face command
barely gains with a warm compile cache and loses with a cold one. `auto` compiles long generations (>= 256 calls
of batch 128) on CPUs with native bf16 (AVX512-BF16, AMX), where training gained most from inductor.
"""

from __future__ import annotations

import torch

from animegen.core.compiler import cxx_compiler, inductor_cache_dir, triton_runs
from animegen.core.device import cpu_has_native_bf16
from animegen.core.device import cuda_capability as capability_of
from animegen.core.names import COMPILE_SETTINGS
from animegen.diffusion.parameterization import Denoiser

AUTO_MIN_IMAGE_EVALS = 256 * 128  # image-evaluations (images x NFE) that repay a cold compile (BENCHMARKS.md)


def plan_sampling_compile(setting: str, device: torch.device, image_evals: int, *,
                          cuda_capability: tuple[int, int] | None = None, cpu_native_bf16: bool | None = None,
                          has_compiler: bool | None = None) -> tuple[bool, str]:
    """(compile?, the one line to log) for a generation of `image_evals` image-evaluations on `device`. The
    device's capabilities are looked up where not given (tests pass them in)."""
    if setting not in COMPILE_SETTINGS:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_SETTINGS)}, not {setting!r}")
    device = torch.device(device)
    if setting == "off":
        return False, ""
    if device.type == "cuda":
        if setting == "auto":
            return False, ""  # not measured on a GPU yet: eager
        capability = cuda_capability if cuda_capability is not None else capability_of(device)
        if not triton_runs(capability):
            return False, (f"--compile: inductor needs Triton, which needs sm70 or newer (this GPU is "
                           f"sm{capability[0]}{capability[1]}); sampling runs eager")
        return True, f"--compile {setting}: inductor for the network (the first batch compiles; cached in " \
                     f"{inductor_cache_dir()})"
    native = cpu_native_bf16 if cpu_native_bf16 is not None else cpu_has_native_bf16()
    if setting == "auto" and (device.type != "cpu" or not native or image_evals < AUTO_MIN_IMAGE_EVALS):
        return False, ""
    if device.type == "cpu" and not (has_compiler if has_compiler is not None else cxx_compiler() is not None):
        return False, ("--compile: no C++ compiler found (inductor's CPU backend needs one: install g++, or set CXX); "
                       "sampling runs eager")
    return True, f"--compile {setting}: inductor for the network (the first batch compiles; cached in " \
                 f"{inductor_cache_dir()})"


def compiled(denoiser: Denoiser) -> Denoiser:
    """The same denoiser around its network compiled for one batch shape (callers pad the last batch to it)."""
    inductor_cache_dir()
    return denoiser.with_net(torch.compile(denoiser.net, dynamic=False))
