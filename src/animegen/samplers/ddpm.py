"""Ancestral DDPM sampling over all T steps (Ho et al. 2020, Algorithm 2)."""

from __future__ import annotations

from typing import Callable

import torch

from animegen.diffusion.parameterization import Denoiser
from animegen.samplers.spec import SamplerSpec

Callback = Callable[[dict], None]
NoiseFn = Callable[[torch.Tensor], torch.Tensor]


def posterior(alpha_bar: torch.Tensor, t: int) -> tuple[float, float, float]:
    """q(x_{t-1} | x_t, x0) = N(c_x0 x0 + c_xt x_t, var): returns (c_x0, c_xt, var) at step t (float64 math)."""
    ab = float(alpha_bar[t])
    ab_prev = float(alpha_bar[t - 1]) if t > 0 else 1.0
    beta = 1 - ab / ab_prev
    c_x0 = beta * ab_prev**0.5 / (1 - ab)
    c_xt = (1 - ab_prev) * (1 - beta) ** 0.5 / (1 - ab)
    var = beta * (1 - ab_prev) / (1 - ab)
    return c_x0, c_xt, var


@torch.inference_mode()
def sample_ddpm(denoiser: Denoiser, x: torch.Tensor, noise: NoiseFn = torch.randn_like,
                callback: Callback | None = None, threshold: str = "static") -> torch.Tensor:
    """x: (B, C, H, W) pure noise x_T -> x_0 in [-1, 1], sampling x_{t-1} ~ p(x_{t-1} | x_t) for t = T-1..0.

    `noise(x)` draws the fresh Gaussian of each step (pass a StackedRandomGenerator's randn_like for per-image
    seeds); `callback` receives {"i", "t", "x", "x0_pred"} after every step.
    """
    T = denoiser.timesteps
    for i, t in enumerate(range(T - 1, -1, -1)):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x0_pred, _eps = denoiser(x, t_batch, threshold)
        c_x0, c_xt, var = posterior(denoiser.alpha_bar, t)
        x = c_x0 * x0_pred + c_xt * x
        if t > 0:
            x = x + var**0.5 * noise(x)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0_pred": x0_pred})
    return x


def run(denoiser: Denoiser, x: torch.Tensor, spec: SamplerSpec, noise: NoiseFn, callback: Callback | None
        ) -> torch.Tensor:
    """The samplers' table entry (samplers/table.py): all T steps."""
    return sample_ddpm(denoiser, x, noise, callback, spec.threshold)
