"""The DDPM training loss as a small callable: loss(denoiser, x0, generator) -> per-sample loss (B,)."""

from __future__ import annotations

import torch

from animegen.diffusion.parameterization import Denoiser, get_objective, model_target


T_SAMPLINGS = ("uniform", "lognormal")


class DiffusionLoss:
    """Simple MSE on the denoiser's objective, optionally min-SNR-gamma weighted (Hang et al. 2023)."""

    def __init__(self, min_snr_gamma: float | None = None, t_sampling: str = "uniform", p_mean: float = -1.2,
                 p_std: float = 1.2):
        if t_sampling not in T_SAMPLINGS:
            raise ValueError(f"unknown t_sampling {t_sampling!r}; choose from {', '.join(T_SAMPLINGS)}")
        self.min_snr_gamma, self.t_sampling, self.p_mean, self.p_std = min_snr_gamma, t_sampling, p_mean, p_std

    def weight(self, objective: str, alpha_bar_t: torch.Tensor) -> torch.Tensor:
        """Per-sample weight (B,): min(SNR, gamma) expressed for the objective's own scale."""
        if not self.min_snr_gamma:
            return torch.ones_like(alpha_bar_t)
        snr = alpha_bar_t / (1 - alpha_bar_t)
        return snr.clamp(max=self.min_snr_gamma) / get_objective(objective).x0_mse_scale(snr)

    def draw(self, denoiser: Denoiser, x0: torch.Tensor, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The random part of a training step: timesteps t (B,) int64 and noise eps like x0.

        uniform: t uniform in [0, T) (DDPM). lognormal: ln(sigma) ~ N(p_mean, p_std^2) as EDM samples its noise
        levels, mapped to the first timestep whose sigma = sqrt((1 - alpha_bar) / alpha_bar) reaches it."""
        if self.t_sampling == "uniform":
            t = torch.randint(0, denoiser.timesteps, (x0.shape[0],), generator=generator, device=x0.device)
        else:
            log_sigma = torch.randn(x0.shape[0], generator=generator, device=x0.device) * self.p_std + self.p_mean
            ab = denoiser.alpha_bar
            log_sigmas = 0.5 * ((1 - ab) / ab).log().float()  # increasing with t
            t = torch.searchsorted(log_sigmas, log_sigma.contiguous()).clamp(max=denoiser.timesteps - 1)
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
