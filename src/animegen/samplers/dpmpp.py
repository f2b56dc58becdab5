"""DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095, Alg. 2) and its SDE variant (same paper, SDE-DPM-Solver++).

With alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t), lambda_t = log(alpha_t / sigma_t) and a step
t -> s of h = lambda_s - lambda_t:
    x_s = (sigma_s / sigma_t) e^{-eta h} x_t + alpha_s (1 - e^{-(1 + eta) h}) D + sigma_s sqrt(1 - e^{-2 eta h}) z,
where D extrapolates the last two x0 predictions (midpoint rule). eta = 0 is the ODE solver (deterministic);
eta = 1 the SDE solver, whose first-order step is exactly DDPM's posterior jump. The final step (to alpha_bar = 1)
returns x0_pred.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from animegen.diffusion.parameterization import Denoiser
from animegen.diffusion.schedules import log_sigma
from animegen.samplers.ddpm import Callback, NoiseFn
from animegen.samplers.spec import SamplerSpec
from animegen.samplers.timesteps import respaced_timesteps


def _lambda(alpha_bar: float) -> float:
    """lambda = ln(alpha / sigma) = -ln sigma: the time DPM-Solver steps in."""
    return -log_sigma(alpha_bar)


@torch.inference_mode()
def sample_dpmpp_2m(denoiser: Denoiser, x: torch.Tensor, timesteps: Sequence[int], eta: float = 0.0,
                    noise: NoiseFn = torch.randn_like, callback: Callback | None = None, threshold: str = "static"
                    ) -> torch.Tensor:
    """x: (B, C, H, W) pure noise -> x_0 in [-1, 1], visiting `timesteps` (descending); eta = 0 is deterministic."""
    alpha_bar = denoiser.alpha_bar
    x0_prev, h_prev = None, None
    for i, t in enumerate(timesteps):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x0_pred, _eps = denoiser(x, t_batch, threshold)
        t_next = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        if t_next < 0:
            x = x0_pred  # sigma_next = 0: the solution is the data prediction itself
        else:
            ab, ab_next = float(alpha_bar[t]), float(alpha_bar[t_next])
            h = _lambda(ab_next) - _lambda(ab)
            # first step: first order (= DDIM at eta = 0); then extrapolate with the ratio of the last two steps
            d = x0_pred if x0_prev is None else x0_pred + (x0_pred - x0_prev) * h / (2 * h_prev)
            x = (((1 - ab_next) / (1 - ab)) ** 0.5 * math.exp(-eta * h) * x
                 - ab_next**0.5 * math.expm1(-(1 + eta) * h) * d)
            if eta > 0:
                x = x + ((1 - ab_next) * -math.expm1(-2 * eta * h)) ** 0.5 * noise(x)
            x0_prev, h_prev = x0_pred, h
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0_pred": x0_pred})
    return x


def run(denoiser: Denoiser, x: torch.Tensor, spec: SamplerSpec, noise: NoiseFn, callback: Callback | None
        ) -> torch.Tensor:
    """The samplers' table entry (samplers/table.py): spec.steps timesteps at spec.spacing, SDE for eta > 0."""
    ts = respaced_timesteps(denoiser.timesteps, spec.steps, spec.spacing, denoiser.alpha_bar)
    return sample_dpmpp_2m(denoiser, x, ts, spec.eta, noise, callback, spec.threshold)
