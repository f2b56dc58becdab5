"""DDIM sampling over a subsequence of timesteps (Song et al. 2021, eq. 12); eta = 0 is deterministic."""

from __future__ import annotations

from typing import Sequence

import torch

from animegen.diffusion.parameterization import Denoiser
from animegen.samplers.ddpm import Callback, NoiseFn
from animegen.samplers.spec import SamplerSpec
from animegen.samplers.timesteps import respaced_timesteps


def ddim_sigma(alpha_bar_t: float, alpha_bar_prev: float, eta: float) -> float:
    """sigma_t(eta) of DDIM eq. 16: eta = 1 gives the DDPM posterior std, eta = 0 a deterministic step."""
    return eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)) ** 0.5


@torch.inference_mode()
def sample_ddim(denoiser: Denoiser, x: torch.Tensor, timesteps: Sequence[int], eta: float = 0.0,
                noise: NoiseFn = torch.randn_like, callback: Callback | None = None, threshold: str = "static"
                ) -> torch.Tensor:
    """x: (B, C, H, W) pure noise -> x_0 in [-1, 1], visiting `timesteps` (descending, e.g. respaced_timesteps).

    x_{prev} = sqrt(ab_prev) x0_pred + sqrt(1 - ab_prev - sigma^2) eps_pred + sigma z.
    """
    alpha_bar = denoiser.alpha_bar
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        ab, ab_prev = float(alpha_bar[t]), (float(alpha_bar[t_prev]) if t_prev >= 0 else 1.0)
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x0_pred, eps_pred = denoiser(x, t_batch, threshold)
        sigma = ddim_sigma(ab, ab_prev, eta)
        x = ab_prev**0.5 * x0_pred + max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * eps_pred
        if sigma > 0:
            x = x + sigma * noise(x)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0_pred": x0_pred})
    return x


def run(denoiser: Denoiser, x: torch.Tensor, spec: SamplerSpec, noise: NoiseFn, callback: Callback | None
        ) -> torch.Tensor:
    """The samplers' table entry (samplers/table.py): spec.steps timesteps at spec.spacing, noise spec.eta."""
    ts = respaced_timesteps(denoiser.timesteps, spec.steps, spec.spacing, denoiser.alpha_bar)
    return sample_ddim(denoiser, x, ts, spec.eta, noise, callback, spec.threshold)
