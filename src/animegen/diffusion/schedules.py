"""Beta schedules, exactly as the homework's seed code (lucidrains' denoising-diffusion-pytorch) defines them.

Each returns betas (T,) float64; `alpha_bar` turns them into the cumulative products the rest of animegen uses.
"""

from __future__ import annotations

import math
from typing import Callable

import torch


def linear_beta_schedule(timesteps: int) -> torch.Tensor:
    """DDPM's linear schedule (Ho et al. 2020), scaled by 1000/T so any T spans the same noise range."""
    scale = 1000 / timesteps
    return torch.linspace(scale * 0.0001, scale * 0.02, timesteps, dtype=torch.float64)


def cosine_beta_schedule(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Improved DDPM's cosine schedule (Nichol & Dhariwal 2021): alpha_bar(t) = cos^2((t/T + s)/(1 + s) * pi/2)."""
    t = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64) / timesteps
    alphas_cumprod = torch.cos((t + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return torch.clip(betas, 0, 0.999)


def sigmoid_beta_schedule(timesteps: int, start: float = -3, end: float = 3, tau: float = 1) -> torch.Tensor:
    """Sigmoid schedule (Jabri et al. 2022, arXiv:2212.11972): better for images larger than 64x64."""
    t = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64) / timesteps
    v_start = torch.tensor(start / tau).sigmoid()
    v_end = torch.tensor(end / tau).sigmoid()
    alphas_cumprod = (-((t * (end - start) + start) / tau).sigmoid() + v_end) / (v_end - v_start)
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return torch.clip(betas, 0, 0.999)


SCHEDULES: dict[str, Callable[[int], torch.Tensor]] = {
    "linear": linear_beta_schedule,
    "cosine": cosine_beta_schedule,
    "sigmoid": sigmoid_beta_schedule,
}


def alpha_bar(schedule: str, timesteps: int) -> torch.Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s), (T,) float64, for t = 0..T-1."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown beta schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    return torch.cumprod(1 - SCHEDULES[schedule](timesteps), dim=0)


# -- noise levels: the one place sigma is derived from alpha_bar ---------------------------------------------------

def sigma(alpha_bar: torch.Tensor | float) -> torch.Tensor | float:
    """EDM's noise level of x_t / sqrt(alpha_bar) = x0 + sigma eps: sigma = sqrt((1 - alpha_bar) / alpha_bar)
    (Karras et al. 2022, the VP case); a tensor of any shape or a float."""
    return ((1 - alpha_bar) / alpha_bar) ** 0.5


def log_sigma(alpha_bar: torch.Tensor | float) -> torch.Tensor | float:
    """ln sigma = -lambda, with lambda = ln(alpha_t / sigma_t) the half log-SNR that DPM-Solver steps in."""
    if isinstance(alpha_bar, torch.Tensor):
        return 0.5 * ((1 - alpha_bar) / alpha_bar).log()
    return 0.5 * math.log((1 - alpha_bar) / alpha_bar)


def timestep_at_log_sigma(alpha_bar: torch.Tensor, log_levels: torch.Tensor) -> torch.Tensor:
    """sigma's inverse on the grid: for each level ln sigma (a 1-D tensor) the first timestep t whose sigma_t
    reaches it, int64 in [0, T - 1] (sigma grows with t)."""
    grid = log_sigma(alpha_bar).float()
    t = torch.searchsorted(grid, log_levels.to(grid.device, torch.float32).contiguous())
    return t.clamp(max=alpha_bar.shape[0] - 1)
