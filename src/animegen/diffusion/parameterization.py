"""What the network predicts (eps, x0 or v) and how to turn it back into (x0_pred, eps_pred).

With x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps:
- pred_noise: the net predicts eps (Ho et al. 2020)
- pred_x0:    the net predicts x0
- pred_v:     the net predicts v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 (Salimans & Ho 2022)
"""

from __future__ import annotations

import torch
from torch import nn

OBJECTIVES = ("pred_noise", "pred_x0", "pred_v")
THRESHOLDS = ("static", "dynamic", "none")
DYNAMIC_PERCENTILE = 0.995  # Imagen's p


def _bcast(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return a.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))


def model_target(objective: str, x0: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """The regression target for `objective`; alpha_bar_t: (B,)."""
    if objective == "pred_noise":
        return eps
    if objective == "pred_x0":
        return x0
    if objective == "pred_v":
        return _bcast(alpha_bar_t.sqrt(), x0) * eps - _bcast((1 - alpha_bar_t).sqrt(), x0) * x0
    raise ValueError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")


def to_x0_eps(objective: str, out: torch.Tensor, x_t: torch.Tensor, alpha_bar_t: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Network output -> (x0_pred, eps_pred), both shaped like x_t."""
    a, s = _bcast(alpha_bar_t.sqrt(), x_t), _bcast((1 - alpha_bar_t).sqrt(), x_t)
    if objective == "pred_noise":
        return (x_t - s * out) / a, out
    if objective == "pred_x0":
        return out, (x_t - a * out) / s
    if objective == "pred_v":
        return a * x_t - s * out, s * x_t + a * out
    raise ValueError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")


def upper_quantile(a: torch.Tensor, q: float) -> torch.Tensor:
    """torch.quantile(a, q, dim=1) (linear interpolation) for q near 1, from the top (1 - q) n values only:
    a partial top-k instead of quantile's full sort, 20x faster at 64 x 12288 — it runs at every sampling step."""
    n = a.shape[1]
    pos = q * (n - 1)
    lo = int(pos)
    top = a.topk(min(n, n - lo), dim=1).values  # descending; its last column has ascending rank lo
    v_lo = top[:, -1]
    v_hi = top[:, -2] if n - lo >= 2 else v_lo
    return v_lo + (pos - lo) * (v_hi - v_lo)


def threshold_x0(x0: torch.Tensor, threshold: str) -> torch.Tensor:
    """Bring x0_pred (B, C, H, W) back into the data range [-1, 1].

    static: clamp (DDPM's and lucidrains' samplers). dynamic: Imagen's (Saharia et al. 2022, sec. 2.3) — per
    image, s = max(1, the 99.5th percentile of |x0|), clamp to [-s, s] and divide by s, so an over-confident
    prediction is scaled down instead of saturated; an image already in range is unchanged. none: as predicted.
    """
    if threshold == "static":
        return x0.clamp(-1, 1)
    if threshold == "dynamic":
        s = _bcast(upper_quantile(x0.abs().flatten(1), DYNAMIC_PERCENTILE).clamp(min=1.0), x0)
        return torch.maximum(torch.minimum(x0, s), -s) / s
    if threshold == "none":
        return x0
    raise ValueError(f"unknown threshold {threshold!r}; choose from {', '.join(THRESHOLDS)}")


class Denoiser(nn.Module):
    """Wraps a schedule-agnostic network into a denoiser for a discrete-time schedule.

    forward(x_t: (B, C, H, W), t: (B,) int64 in [0, T)) -> (x0_pred, eps_pred). With a `threshold` other than
    "none", x0_pred is brought into [-1, 1] (`threshold_x0`) and eps re-derived from it, as lucidrains' and DDIM's
    samplers do.
    """

    def __init__(self, net: nn.Module, alpha_bar: torch.Tensor, objective: str = "pred_noise"):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
        self.net, self.objective = net, objective
        self.register_buffer("alpha_bar", alpha_bar.to(torch.float64), persistent=False)

    @property
    def timesteps(self) -> int:
        return self.alpha_bar.shape[0]

    def noise_level(self, t: torch.Tensor) -> torch.Tensor:
        """What the network is told: 1000 t / T, so the embedding covers the same range for any T."""
        return t.float() * (1000.0 / self.timesteps)

    def net_output(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x_t, self.noise_level(t))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, threshold: str = "none"
                ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net_output(x_t, t).float()
        alpha_bar_t = self.alpha_bar[t].float()
        x0_pred, eps_pred = to_x0_eps(self.objective, out, x_t.float(), alpha_bar_t)
        if threshold != "none":
            x0_pred = threshold_x0(x0_pred, threshold)
            eps_pred = (x_t - _bcast(alpha_bar_t.sqrt(), x_t) * x0_pred) / _bcast((1 - alpha_bar_t).sqrt(), x_t)
        return x0_pred, eps_pred
