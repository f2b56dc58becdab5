"""Consistency models on a trained diffusion model's own timestep grid: the consistency function and the
consistency-tuning loss (ECT: Geng et al. 2024, "Consistency Models Made Easy"; Song et al. 2023).

The consistency function maps any point x_t of a noising trajectory to that trajectory's clean end. On the discrete
grid t = 0..T-1 of a trained Denoiser it is the Denoiser's x0 prediction for t >= 1, and at t = 0 (sigma_min, the
least noise the model knows) the boundary condition f(x, 0) = x / sqrt(alpha_bar_0) holds by construction (the
input rescaled to data scale: x = a0 x0 + s0 eps with s0 / a0 = sigma_min ~ 0.006). Any objective works: the
Denoiser turns its output into x0.

Consistency tuning starts the student from the teacher's weights and trains it on real data: for a pair r < t on
one trajectory (the same x0 and eps), f(x_t, t) is pulled to the stop-gradient f(x_r, r). ECT's schedule of the gap:
stage 0 uses r = 0 (the target is nearly the clean image: the diffusion loss itself), then every stage halves
the gap t - r, so the student learns to jump ever longer stretches of the ODE in one evaluation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from animegen.diffusion.loss import draw_timesteps, noised
from animegen.diffusion.parameterization import Denoiser
from animegen.diffusion.schedules import sigma


def consistency_x0(denoiser: Denoiser, x_t: Tensor, t: Tensor) -> Tensor:
    """f(x_t, t): (B, C, H, W) at integer timesteps t (B,) -> the trajectory's clean image, float32.
    f(x, 0) = x / sqrt(alpha_bar_0) exactly (the boundary condition); elsewhere the Denoiser's x0 prediction."""
    x0_pred, _ = denoiser(x_t, t)
    at_boundary = (t == 0).view(-1, *([1] * (x_t.dim() - 1)))
    data_scale = x_t.float() / denoiser.alpha_bar[t].float().sqrt().view_as(at_boundary)
    return torch.where(at_boundary, data_scale, x0_pred)


def pseudo_huber(pred: Tensor, target: Tensor, c: float) -> Tensor:
    """(B,) sqrt(mean squared error + c^2) - c per sample (Song & Dhariwal 2023): squared error for small
    differences, absolute for large ones, so a few far-off pairs do not dominate the step."""
    return ((pred - target).pow(2).mean(dim=tuple(range(1, pred.dim()))) + c**2).sqrt() - c


class ConsistencyLoss:
    """loss(student, x0, generator) -> (B,) per-sample pseudo-Huber distance between f(x_t, t) and sg f(x_r, r),
    weighted by 1 / (sigma_t - sigma_r) as ECT weights it. `gap` (a 0-dim tensor, so a CUDA graph sees its updates)
    is the share of t that r lies below it: 1 at stage 0 (r = 0), halved every stage (set_stage)."""

    def __init__(self, p_mean: float = -1.1, p_std: float = 2.0, huber_c: float = 0.03):
        # t from EDM's log-normal over sigma, with ECT's wider spread: most pairs where faces take shape
        self.p_mean, self.p_std, self.huber_c = p_mean, p_std, huber_c
        self.gap = torch.ones(())

    def to(self, device: torch.device) -> "ConsistencyLoss":
        """Keep `gap` where the training step runs (no copy per step; a CUDA graph reads it in place)."""
        self.gap = self.gap.to(device)
        return self

    def set_stage(self, stage: int) -> None:
        """Stage k: r = t - ceil(t / 2^k) (stage 0: r = 0; the gap never drops below one timestep)."""
        self.gap.fill_(0.5**stage)

    def pair(self, t: Tensor) -> Tensor:
        """The earlier timestep r (B,) of each t: t - ceil(gap * t), at least one step below t and at least 0."""
        step = torch.ceil(self.gap * t.float()).long().clamp(min=1)
        return (t - step).clamp(min=0)

    def __call__(self, student: Denoiser, x0: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x0: (B, C, H, W) real images in [-1, 1] -> (B,) loss."""
        t = draw_timesteps(student.alpha_bar, x0.shape[0], x0.device, generator, "lognormal", self.p_mean,
                           self.p_std).clamp(min=1)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        r = self.pair(t)
        ab_t, ab_r = student.alpha_bar[t].float(), student.alpha_bar[r].float()
        with torch.no_grad():
            target = consistency_x0(student, noised(ab_r, x0, eps), r)
        dist = pseudo_huber(consistency_x0(student, noised(ab_t, x0, eps), t), target, self.huber_c)
        return dist / (sigma(ab_t) - sigma(ab_r))
