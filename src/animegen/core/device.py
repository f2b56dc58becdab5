"""Devices and what they compute natively: where to run, the CPU's bf16, a GPU's compute capability (what
core/precision.py and the compile plans decide from)."""

from __future__ import annotations

import functools

import torch


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available, else cpu; any other name is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX). Without it oneDNN emulates bf16
    and a training step runs ~10x slower than fp32 (measured on a 2-core EPYC VM without AVX-512)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cuda_capability(device: torch.device | str) -> tuple[int, int]:
    """The compute capability of a CUDA device, e.g. (7, 5) for a T4: what precision and compiling depend on."""
    major, minor = torch.cuda.get_device_capability(torch.device(device))
    return major, minor
