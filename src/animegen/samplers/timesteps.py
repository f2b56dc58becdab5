"""Which of the T training steps a few-step sampler visits."""

from __future__ import annotations

import torch

from animegen.core.names import SPACINGS
from animegen.diffusion.schedules import log_sigma



def respaced_timesteps(T: int, steps: int, spacing: str = "uniform", alpha_bar: torch.Tensor | None = None
                       ) -> list[int]:
    """`steps` distinct timesteps in [0, T), descending, ending at 0 ... starting near T - 1.

    uniform: evenly spaced from T-1 to 0 (DDIM); trailing: T-1, T-1-T/S, ... (Lin et al. 2024);
    quadratic: denser near t = 0 where detail forms (DDIM paper's CIFAR choice);
    logsnr: uniform in log-SNR between the ends (DPM-Solver's choice; needs alpha_bar).
    """
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    if spacing == "uniform":
        ts = torch.linspace(T - 1, 0, steps, dtype=torch.float64).round().long().tolist()
    elif spacing == "trailing":
        ts = [round(T - 1 - i * T / steps) for i in range(steps)]
    elif spacing == "logsnr":
        if alpha_bar is None:
            raise ValueError("logsnr spacing needs the schedule's alpha_bar")
        logsnr = -2 * log_sigma(alpha_bar)
        targets = torch.linspace(float(logsnr[-1]), float(logsnr[0]), steps, dtype=torch.float64)
        # logsnr falls with t: the nearest t for each target level
        ts = [int((logsnr - v).abs().argmin()) for v in targets]
    elif spacing == "quadratic":
        ts = (torch.linspace(((T - 1) ** 0.5), 0, steps, dtype=torch.float64) ** 2).round().long().tolist()
    else:
        raise ValueError(f"unknown spacing {spacing!r}; choose from {', '.join(SPACINGS)}")
    # rounding can collide at the dense end: push duplicates up, then cap at T - 1, keeping steps distinct
    up = sorted(int(t) for t in ts)
    for i in range(1, steps):
        up[i] = max(up[i], up[i - 1] + 1)
    for i in range(steps - 1, -1, -1):
        up[i] = min(up[i], T - 1 - (steps - 1 - i))
    return up[::-1]
