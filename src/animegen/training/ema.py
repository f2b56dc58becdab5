"""EMA of the weights via torch.optim.swa_utils.AveragedModel, for every trainer: the homework's (ema_pytorch's
warm-up to a fixed decay) or EDM2's power-function EMA, whose length grows with the run, for diffusion; StyleGAN2's
half-life in images for the GAN's generator.

A fixed decay of 0.995 per 10 steps keeps ~78% of the *initial* weights after 500 steps, so early sample
grids show pure noise. ema_pytorch (the homework's EMA) ramps the decay up instead:
decay(step) = min(beta, 1 - (1 + step - update_after_step - 1) ** -power), copying the weights for the first
update_after_step steps.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from animegen.runs.config import EMAConfig
from animegen.runs.phema import power_exponent

UPDATE_AFTER_STEP = 100
POWER = 2 / 3


def ema_decay(beta: float, step: int, warmup: bool = True) -> float:
    """The decay applied at training step `step` (ema_pytorch's schedule with inv_gamma = 1)."""
    if not warmup:
        return beta
    epoch = max(step - UPDATE_AFTER_STEP - 1, 0)
    return min(beta, max(0.0, 1 - (1 + epoch) ** -POWER))


def power_decay(gamma: float, update: int) -> float:
    """beta at the update-th EMA update (1-based; the first copies): (1 - 1/update)^(gamma + 1)."""
    return (1 - 1 / update) ** (gamma + 1)


def make_ema(net: nn.Module, cfg: EMAConfig) -> AveragedModel:
    """An AveragedModel of `net` updated every cfg.every steps; n_averaged counts updates, so step = n * every.

    kind "homework": ema_pytorch's decay, warmed up to cfg.decay. kind "power": EDM2's power function with
    relative width cfg.std, so the average always spans the same share of the run, however long it is."""
    gamma = power_exponent(cfg.std) if cfg.kind == "power" else None

    def multi_avg_fn(ema_params, params, _num_averaged_on_device):
        # updates before this one, from the host-side counter: reading the device copy would wait for the GPU
        n = int(ema.n_averaged)
        decay = power_decay(gamma, n + 1) if gamma is not None else ema_decay(cfg.decay, n * cfg.every, cfg.warmup)
        torch._foreach_lerp_(ema_params, params, 1 - decay)

    ema = AveragedModel(net, multi_avg_fn=multi_avg_fn, use_buffers=True)
    return ema


def make_half_life_ema(net: nn.Module, batch_size: int, half_life_kimg: float, rampup: float,
                       step: Callable[[], int]) -> AveragedModel:
    """StyleGAN2's G EMA (NVlabs): beta = 0.5 ** (batch / half-life) with a half-life of half_life_kimg thousand
    images, but at most `rampup` of the images seen so far (step() * batch_size); the first update copies. Buffers
    (w_avg, the constant noise) are G's own, copied at each update by `follow_buffers`, not averaged."""

    def multi_avg_fn(ema_params, params, _num_averaged_on_device):
        half_life = min(half_life_kimg * 1000, step() * batch_size * rampup)
        beta = 0.5 ** (batch_size / max(half_life, 1e-8))
        torch._foreach_lerp_(ema_params, params, 1 - beta)

    ema = AveragedModel(net, multi_avg_fn=multi_avg_fn, use_buffers=False)
    ema.update_parameters(net)  # n_averaged = 1: the EMA starts as a copy
    return ema


@torch.no_grad()
def follow_buffers(ema: AveragedModel, net: nn.Module) -> None:
    """Copy `net`'s buffers into the EMA's module (an AveragedModel without use_buffers leaves them as made)."""
    for b_ema, b in zip(ema.module.buffers(), net.buffers()):
        b_ema.copy_(b)
