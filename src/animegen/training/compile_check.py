"""Before a run trains through torch.compile: one probe step that checks the compiled network's gradients are
the eager network's.

Why: torch 2.13's inductor on a CPU with AVX512-BF16, under bf16 autocast, gave the `cpu` preset's UNet zero
gradients for 92 of its 126 parameters (everything upstream of its last upsampling, which the skip connections
do not reach) while its loss agreed with eager to four digits. A 60-minute run trained only the outer blocks and
drew no faces (docs/cpu-preset.md, "Inductor and bf16 on a CPU"). A loss comparison cannot see that; one
backward pass through both networks can, before the first step.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable

import torch
from torch import nn

from animegen.diffusion.loss import DiffusionLoss
from animegen.diffusion.parameterization import Denoiser

# a parameter is lost when its compiled gradient is under this share of its eager one: rounding (bf16 against bf16)
# moves a gradient by a few percent, the failure above by all of it
LOST_SHARE = 0.1
# and the whole gradient must point the way the eager one does
MIN_COSINE = 0.5


def _gradients(net: nn.Module, loss: Callable[[], torch.Tensor]) -> list[torch.Tensor]:
    net.zero_grad(set_to_none=True)
    loss().backward()
    grads = [p.grad.detach().flatten().float().clone() if p.grad is not None
             else torch.zeros(p.numel(), device=p.device) for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    return grads


def compiled_gradient_mismatch(eager: Denoiser, compiled: Denoiser, x0: torch.Tensor,
                               autocast: Callable[[], AbstractContextManager]) -> str | None:
    """None when the compiled denoiser (`eager` with its net compiled) gives every parameter the gradient the
    eager one gives it, within rounding; else one phrase saying what differs. x0: (B, C, H, W) faces in [-1, 1];
    one diffusion loss on fixed timesteps and noise, under `autocast` (the run's precision), on both sides."""
    g = torch.Generator(x0.device).manual_seed(0)
    t = torch.linspace(0, eager.timesteps - 1, x0.shape[0], device=x0.device).long()
    eps = torch.empty_like(x0).normal_(generator=g)  # in x0's memory format, as training's noise is
    loss_fn = DiffusionLoss()

    def loss(d: Denoiser) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with autocast():
                return loss_fn(d, x0, t=t, eps=eps).mean()
        return run

    net = eager.net
    was_training = net.training
    # a fresh network's zero-initialised layers (the output conv, each block's last conv) stop every gradient
    # upstream of them, on both sides alike: the probe fills them with small noise, and puts them back after
    zeros = [p for p in net.parameters() if not p.detach().any()]
    with torch.no_grad():
        for p in zeros:
            p.normal_(0.0, 0.02, generator=g)
    net.train()
    try:
        want = _gradients(net, loss(eager))
        got = _gradients(net, loss(compiled))
    finally:
        net.train(was_training)
        with torch.no_grad():
            for p in zeros:
                p.zero_()
    lost = sum(int(float(b.norm()) < LOST_SHARE * float(a.norm())) for a, b in zip(want, got) if float(a.norm()) > 0)
    cosine = float(torch.nn.functional.cosine_similarity(torch.cat(want), torch.cat(got), dim=0))
    if lost:
        return f"{lost} of {len(want)} parameters got no gradient through the compiled network"
    if cosine < MIN_COSINE:
        return f"the compiled network's gradient points elsewhere (cosine {cosine:.2f} to the eager one)"
    return None
