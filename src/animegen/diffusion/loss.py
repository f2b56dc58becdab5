"""The DDPM training loss as a small callable: loss(denoiser, x0, generator) -> per-sample loss (B,)."""

from __future__ import annotations

import torch

from animegen.diffusion.parameterization import Denoiser, get_objective, model_target


class DiffusionLoss:
    """Simple MSE on the denoiser's objective, optionally min-SNR-gamma weighted (Hang et al. 2023)."""

    def __init__(self, min_snr_gamma: float | None = None):
        self.min_snr_gamma = min_snr_gamma

    def weight(self, objective: str, alpha_bar_t: torch.Tensor) -> torch.Tensor:
        """Per-sample weight (B,): min(SNR, gamma) expressed for the objective's own scale."""
        if not self.min_snr_gamma:
            return torch.ones_like(alpha_bar_t)
        snr = alpha_bar_t / (1 - alpha_bar_t)
        return snr.clamp(max=self.min_snr_gamma) / get_objective(objective).x0_mse_scale(snr)

    def draw(self, denoiser: Denoiser, x0: torch.Tensor, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The random part of a training step: timesteps t (B,) int64 uniform in [0, T) and noise eps like x0."""
        t = torch.randint(0, denoiser.timesteps, (x0.shape[0],), generator=generator, device=x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return t, eps

    def __call__(self, denoiser: Denoiser, x0: torch.Tensor, generator: torch.Generator | None = None,
                 t: torch.Tensor | None = None, eps: torch.Tensor | None = None) -> torch.Tensor:
        """x0: (B, C, H, W) in [-1, 1] -> (B,) float32 loss; t and eps are drawn from `generator` unless given."""
        if t is None or eps is None:
            t, eps = self.draw(denoiser, x0, generator)
        b = x0.shape[0]
        alpha_bar_t = denoiser.alpha_bar[t].float()
        a = alpha_bar_t.sqrt().view(b, 1, 1, 1)
        s = (1 - alpha_bar_t).sqrt().view(b, 1, 1, 1)
        x_t = a * x0 + s * eps
        out = denoiser.net_output(x_t, t).float()
        target = model_target(denoiser.objective, x0, eps, alpha_bar_t)
        mse = (out - target).pow(2).mean(dim=(1, 2, 3))
        return mse * self.weight(denoiser.objective, alpha_bar_t)
