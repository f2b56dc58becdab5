"""EMA of the weights via torch.optim.swa_utils.AveragedModel, with the warm-up of the homework's ema_pytorch.

A fixed decay of 0.995 per 10 steps keeps ~78% of the *initial* weights after 500 steps, so early sample
grids show pure noise. ema_pytorch (the homework's EMA) ramps the decay up instead:
decay(step) = min(beta, 1 - (1 + step - update_after_step - 1) ** -power), copying the weights for the first
update_after_step steps.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

UPDATE_AFTER_STEP = 100
POWER = 2 / 3


def ema_decay(beta: float, step: int, warmup: bool = True) -> float:
    """The decay applied at training step `step` (ema_pytorch's schedule with inv_gamma = 1)."""
    if not warmup:
        return beta
    epoch = max(step - UPDATE_AFTER_STEP - 1, 0)
    return min(beta, max(0.0, 1 - (1 + epoch) ** -POWER))


def make_ema(net: nn.Module, beta: float, every: int, warmup: bool = True) -> AveragedModel:
    """An AveragedModel of `net` updated every `every` steps; n_averaged counts updates, so step = n * every."""

    def multi_avg_fn(ema_params, params, num_averaged):
        decay = ema_decay(beta, int(num_averaged) * every, warmup)
        torch._foreach_lerp_(ema_params, params, 1 - decay)

    return AveragedModel(net, multi_avg_fn=multi_avg_fn, use_buffers=True)
