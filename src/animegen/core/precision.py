"""Which float format a run computes in (`--precision auto|bf16|fp16|fp32`), decided in one place from what the
device computes natively, for training and sampling alike.

Why `auto` picks what it picks (README "Precision per GPU generation"; figures in BENCHMARKS.md):
- bf16 autocast where bf16 runs in hardware: CUDA GPUs from sm80 (A100, H100, RTX 30xx on) and CPUs with
  AVX512-BF16 or AMX. bf16 has fp32's exponent range, so it needs no loss scaling.
- fp16 autocast with loss scaling on sm70/sm75 (V100, T4, RTX 20xx): their tensor cores multiply fp16 but not
  bf16, which `torch.cuda.is_bf16_supported()` still calls supported (it counts emulation). fp16's narrow range
  makes small gradients underflow, hence the scaler (training/grad_step.py).
- fp32 below (sm60: P100, no tensor cores) and on CPUs without native bf16, where oneDNN emulates bf16 and a
  training step ran ~10x slower than fp32.
- fp16 on a CPU trains and samples in fp32 (one line says so): no CPU in reach computes fp16 faster than bf16 or
  fp32, so asking for it there is almost always a notebook written for a T4 now running without one; refusing
  would stop that notebook for no gain in the model.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import ContextManager

import torch

from animegen.core.device import cpu_has_native_bf16, cuda_capability
from animegen.core.names import BF16_ALIASES, PRECISION_SETTINGS

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
NATIVE_BF16 = (8, 0)        # Ampere and later: bf16 tensor cores
FP16_TENSOR_CORES = (7, 0)  # Volta and Turing: fp16 tensor cores, bf16 emulated


@dataclass(frozen=True)
class Precision:
    """dtype: the autocast dtype (None: fp32 throughout); scaler: scale the loss (fp16's gradients underflow
    otherwise); reason: the one line a run logs about it."""

    dtype: torch.dtype | None
    scaler: bool
    reason: str

    @property
    def name(self) -> str:
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "fp32")

    def autocast(self, device_type: str, cache: bool = True) -> ContextManager:
        """The autocast context of this precision (cache=False inside a CUDA graph, which cannot keep autocast's
        cast-weight cache)."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type, dtype=self.dtype, cache_enabled=cache)


def canonical_precision(setting: str) -> str:
    """--precision's value, with the older --bf16 auto|on|off mapped onto it (on = bf16, off = fp32)."""
    setting = BF16_ALIASES.get(setting, setting)
    if setting not in PRECISION_SETTINGS:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_SETTINGS)}, not {setting!r}")
    return setting


def resolve_precision(setting: str, device_type: str, cuda_capability: tuple[int, int] | None = None,
                      cpu_native_bf16: bool | None = None) -> Precision:
    """The precision `setting` (auto | bf16 | fp16 | fp32, or the --bf16 aliases) means on a device of
    `device_type` ("cuda": with its compute capability, e.g. (7, 5) for a T4; "cpu": whether it computes bf16
    in hardware). A pure function of the capability, so each GPU generation is tested without one."""
    setting = canonical_precision(setting)
    if setting == "fp32":
        return Precision(None, False, "fp32 (--precision fp32)")
    if device_type == "cuda":
        return _cuda(setting, cuda_capability or (0, 0))
    if device_type == "cpu":
        return _cpu(setting, bool(cpu_native_bf16))
    if setting == "auto":
        return Precision(None, False, f"fp32 (auto: no precision rule for {device_type} devices)")
    return Precision(DTYPES[setting], False, f"{setting} autocast (--precision {setting})")


def _cuda(setting: str, cap: tuple[int, int]) -> Precision:
    sm = f"sm{cap[0]}{cap[1]}"
    if setting == "auto":
        if cap >= NATIVE_BF16:
            return Precision(torch.bfloat16, False, f"bf16 autocast (auto: {sm} computes bf16 in hardware)")
        if cap >= FP16_TENSOR_CORES:
            return Precision(torch.float16, True, f"fp16 autocast with loss scaling (auto: {sm} has fp16 tensor "
                                                  f"cores but no native bf16)")
        return Precision(None, False, f"fp32 (auto: {sm} has no tensor cores and no native bf16)")
    if setting == "bf16":
        slow = "" if cap >= NATIVE_BF16 else f"; {sm} emulates bf16, which is slow: --precision auto picks for it"
        return Precision(torch.bfloat16, False, f"bf16 autocast (--precision bf16{slow})")
    return Precision(torch.float16, True, f"fp16 autocast with loss scaling (--precision fp16 on {sm})")


def _cpu(setting: str, native_bf16: bool) -> Precision:
    if setting == "auto":
        if native_bf16:
            return Precision(torch.bfloat16, False, "bf16 autocast (auto: this CPU has AVX512-BF16 or AMX)")
        return Precision(None, False, "fp32 (auto: this CPU has no AVX512-BF16 or AMX; emulated bf16 is ~10x "
                                      "slower)")
    if setting == "bf16":
        slow = "" if native_bf16 else "; this CPU emulates bf16, which is slow: --precision auto picks for it"
        return Precision(torch.bfloat16, False, f"bf16 autocast (--precision bf16{slow})")
    return Precision(None, False, "fp32: --precision fp16 is for GPUs with fp16 tensor cores (V100, T4); a CPU "
                                  "computes fp16 no faster, so this runs in fp32 (--precision auto picks bf16 "
                                  "where the CPU has it)")


def device_precision(setting: str, device: torch.device | str) -> Precision:
    """resolve_precision for this machine's `device`: its CUDA capability, or whether the CPU has native bf16."""
    device = torch.device(device)
    capability = cuda_capability(device) if device.type == "cuda" else None
    native = cpu_has_native_bf16() if device.type == "cpu" else None
    return resolve_precision(setting, device.type, capability, native)
