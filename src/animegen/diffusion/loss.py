"""The diffusion training loss as a small callable: loss(denoiser, x0, generator) -> per-sample loss (B,).

As EDM's loss does (its training/loss.py), it asks the denoiser for x0 and weighs the squared error by the noise
level alone; what the network predicts inside the denoiser (eps, x0, v or EDM's F) shows only in the denoiser's
own weight, under which this loss equals plain MSE on the network's output (Denoiser.output_weight).
"""

from __future__ import annotations

import torch

from animegen.diffusion.parameterization import Denoiser
from animegen.diffusion.schedules import timestep_at_log_sigma

T_SAMPLINGS = ("uniform", "lognormal")


def draw_timesteps(alpha_bar: torch.Tensor, n: int, device: torch.device | str,
                   generator: torch.Generator | None = None, t_sampling: str = "uniform", p_mean: float = -1.2,
                   p_std: float = 1.2) -> torch.Tensor:
    """n training timesteps, int64 (n,). uniform: in [0, T) (DDPM). lognormal: ln(sigma) ~ N(p_mean, p_std^2) as
    EDM samples its noise levels, each mapped to the first timestep whose sigma reaches it."""
    if t_sampling == "uniform":
        return torch.randint(0, alpha_bar.shape[0], (n,), generator=generator, device=device)
    if t_sampling == "lognormal":
        log_levels = torch.randn(n, generator=generator, device=device) * p_std + p_mean
        return timestep_at_log_sigma(alpha_bar, log_levels)
    raise ValueError(f"unknown t_sampling {t_sampling!r}; choose from {', '.join(T_SAMPLINGS)}")


def noised(alpha_bar_t: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps; alpha_bar_t (B,) float32, x0 and eps (B, C, H, W)."""
    shape = (-1, *([1] * (x0.dim() - 1)))
    return alpha_bar_t.sqrt().view(shape) * x0 + (1 - alpha_bar_t).sqrt().view(shape) * eps


class DiffusionLoss:
    """Squared error of the denoiser's x0 prediction, weighted per noise level: by the denoiser's own weight (plain
    MSE on its network's output), or with min-SNR-gamma (Hang et al. 2023) by min(SNR, gamma)."""

    def __init__(self, min_snr_gamma: float | None = None, t_sampling: str = "uniform", p_mean: float = -1.2,
                 p_std: float = 1.2):
        if t_sampling not in T_SAMPLINGS:
            raise ValueError(f"unknown t_sampling {t_sampling!r}; choose from {', '.join(T_SAMPLINGS)}")
        self.min_snr_gamma, self.t_sampling, self.p_mean, self.p_std = min_snr_gamma, t_sampling, p_mean, p_std

    def weight(self, denoiser: Denoiser, alpha_bar_t: torch.Tensor) -> torch.Tensor:
        """lambda (B,) of each sample's x0 squared error."""
        if not self.min_snr_gamma:
            return denoiser.output_weight(alpha_bar_t)
        return (alpha_bar_t / (1 - alpha_bar_t)).clamp(max=self.min_snr_gamma)

    def draw(self, denoiser: Denoiser, x0: torch.Tensor, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The random part of a step: timesteps t (B,) int64, then noise eps like x0."""
        t = draw_timesteps(denoiser.alpha_bar, x0.shape[0], x0.device, generator, self.t_sampling, self.p_mean,
                           self.p_std)
        return t, torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)

    def __call__(self, denoiser: Denoiser, x0: torch.Tensor, generator: torch.Generator | None = None,
                 t: torch.Tensor | None = None, eps: torch.Tensor | None = None) -> torch.Tensor:
        """x0: (B, C, H, W) in [-1, 1] -> (B,) float32 loss; t and eps are drawn from `generator` unless given."""
        if t is None or eps is None:
            t, eps = self.draw(denoiser, x0, generator)
        alpha_bar_t = denoiser.alpha_bar[t].float()
        x0_pred, _ = denoiser(noised(alpha_bar_t, x0, eps), t)
        return (x0_pred - x0).pow(2).mean(dim=(1, 2, 3)) * self.weight(denoiser, alpha_bar_t)
