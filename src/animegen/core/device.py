"""Devices and what they compute natively: where to run, the CPU's bf16, a GPU's compute capability (what
core/precision.py and the compile plans decide from)."""

from __future__ import annotations

import functools
import os

import torch


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available, else cpu; any other name is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# oneDNN's instruction-set caps (ONEDNN_MAX_CPU_ISA) under which it still computes bf16 in hardware
_BF16_ISAS = {"ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
              "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2"}


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX) and oneDNN may use it. Without it
    oneDNN emulates bf16 and a training step runs ~10x slower than fp32 (BENCHMARKS.md). A cap such as
    ONEDNN_MAX_CPU_ISA=AVX2 makes this machine behave as an AVX2-only one, here as in oneDNN."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if cap and cap not in _BF16_ISAS:
        return False
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cuda_capability(device: torch.device | str) -> tuple[int, int]:
    """The compute capability of a CUDA device, e.g. (7, 5) for a T4: what precision and compiling depend on."""
    major, minor = torch.cuda.get_device_capability(torch.device(device))
    return major, minor
