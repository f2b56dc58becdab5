"""FLOPs of a training step, counted once at the start of a run with torch's FlopCounterMode, so the log can give
achieved TFLOP/s beside img/s (and benchmarks/utilisation.py a share of the device's measured peak)."""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object], device: torch.device | str = "cpu") -> float:
    """FLOPs (a multiply-add counts 2) of the matrix products and convolutions fn() runs, forward and backward.
    The global RNGs (CPU, and `device`'s if CUDA) are put back afterwards, so counting changes no run."""
    device = torch.device(device)
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())
