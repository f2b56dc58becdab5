"""DPM-Solver++(2M): multistep second-order solver in data prediction (Lu et al. 2022, arXiv:2211.01095, Alg. 2).

With alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t) and lambda_t = log(alpha_t / sigma_t):
    x_{t_i} = (sigma_{t_i} / sigma_{t_{i-1}}) x_{t_{i-1}} - alpha_{t_i} (e^{-h_i} - 1) D_i,
where D_i extrapolates the last two x0 predictions. The final step (to alpha_bar = 1) returns x0_pred.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from animegen.diffusion.parameterization import Denoiser
from animegen.samplers.ddpm import Callback


def _lambda(alpha_bar: float) -> float:
    return 0.5 * math.log(alpha_bar / (1 - alpha_bar))


@torch.inference_mode()
def sample_dpmpp_2m(denoiser: Denoiser, x: torch.Tensor, timesteps: Sequence[int],
                    callback: Callback | None = None) -> torch.Tensor:
    """x: (B, C, H, W) pure noise -> x_0 in [-1, 1], visiting `timesteps` (descending); deterministic."""
    alpha_bar = denoiser.alpha_bar
    x0_prev, h_prev = None, None
    for i, t in enumerate(timesteps):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x0_pred, _eps = denoiser(x, t_batch, clip=True)
        t_next = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        if t_next < 0:
            x = x0_pred  # sigma_next = 0: the solution is the data prediction itself
        else:
            ab, ab_next = float(alpha_bar[t]), float(alpha_bar[t_next])
            h = _lambda(ab_next) - _lambda(ab)
            if x0_prev is None:
                d = x0_pred  # first step: first order (= DDIM)
            else:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * x0_pred - (1 / (2 * r)) * x0_prev
            x = ((1 - ab_next) / (1 - ab)) ** 0.5 * x - ab_next**0.5 * math.expm1(-h) * d
            x0_prev, h_prev = x0_pred, h
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0_pred": x0_pred})
    return x
