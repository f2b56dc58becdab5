"""The StyleGAN2 loss as one object with named phases (NVlabs' StyleGAN2Loss, reduced to what 64 px needs).

Phases: "G" (non-saturating logistic loss on fakes), "D" (logistic loss on fakes and reals), "R1" (lazy R1 on
reals: gamma/2 * E||grad_x D(x)||^2, applied every `r1_every` D steps and scaled by that interval) and "PL"
(path-length regularisation: (|J_w^T y| - a)^2 with y ~ N(0, I/HW) and a the running mean of the lengths, every
`pl_every` G steps and scaled by that interval; off by default, as NVlabs' small-resolution configs have it off).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from animegen.data.diffaugment import diff_augment


def r1_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """(B,) squared norm of dD/dx at each real image (create_graph, so it can be minimised)."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(real).sum(), real, create_graph=True)
    return grad.pow(2).sum(dim=(1, 2, 3))


def path_lengths(image: torch.Tensor, ws: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) |J_w^T y| for images (B, C, H, W) made from ws (B, num_ws, w_dim), y ~ N(0, 1/(H*W)) per pixel;
    the norm is taken over w_dim and averaged over the num_ws layers (NVlabs), create_graph for minimising."""
    scale = math.sqrt(image.shape[2] * image.shape[3])
    y = torch.randn(image.shape, generator=generator, device=image.device) / scale
    (grad,) = torch.autograd.grad((image * y).sum(), ws, create_graph=True)
    return grad.pow(2).sum(dim=2).mean(dim=1).sqrt()


class StyleGAN2Loss:
    """`reduce_mean` averages a float over the processes of a distributed run (so the path-length mean, the one
    piece of loss state, stays the same on every rank); identity for one process."""

    def __init__(self, G, D, r1_gamma: float = 0.1, r1_every: int = 16, style_mixing: float = 0.9,
                 augment: str = "color,translation,cutout", pl_weight: float = 0.0, pl_every: int = 4,
                 pl_decay: float = 0.01, pl_batch_shrink: int = 2,
                 reduce_mean: Callable[[float], float] = lambda v: v):
        self.G, self.D = G, D
        self.r1_gamma, self.r1_every, self.style_mixing, self.augment = r1_gamma, r1_every, style_mixing, augment
        self.pl_weight, self.pl_every, self.pl_decay = pl_weight, pl_every, pl_decay
        self.pl_batch_shrink = pl_batch_shrink
        self.reduce_mean = reduce_mean
        self.pl_mean = 0.0  # running mean of the path lengths (saved with the resume state)

    def _D(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self.D(diff_augment(x, self.augment, generator) if self.augment else x)

    def generate(self, batch: int, generator: torch.Generator | None, device: torch.device,
                 with_ws: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Fakes with style mixing (probability `style_mixing`: a second z from a random layer on); with_ws:
        also the ws they were made from."""
        z = torch.randn(batch, self.G.cfg.z_dim, generator=generator, device=device)
        mix = torch.rand((), generator=generator, device=device).item() < self.style_mixing
        if mix:
            z2 = torch.randn(batch, self.G.cfg.z_dim, generator=generator, device=device)
            cutoff = int(torch.randint(1, self.G.cfg.num_ws, (), generator=generator, device=device))
            ws = self.G.styles(z, mix_z=z2, cutoff=cutoff, track=True)
        else:
            ws = self.G.styles(z, track=True)
        image = self.G.synthesis(ws)
        return (image, ws) if with_ws else image

    def phase(self, name: str, real: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The scalar loss of phase "G", "D", "R1" or "PL" for this batch of real images (B, 3, H, W) in [-1, 1]."""
        if name == "G":
            fake = self.generate(real.shape[0], generator, real.device)
            return F.softplus(-self._D(fake, generator)).mean()
        if name == "D":
            with torch.no_grad():
                fake = self.generate(real.shape[0], generator, real.device)
            return F.softplus(self._D(fake, generator)).mean() + F.softplus(-self._D(real, generator)).mean()
        if name == "R1":
            penalty = r1_penalty(lambda x: self._D(x, generator), real)
            return penalty.mean() * (self.r1_gamma / 2) * self.r1_every
        if name == "PL":
            batch = max(1, real.shape[0] // self.pl_batch_shrink)  # a smaller batch: the term is costly
            image, ws = self.generate(batch, generator, real.device, with_ws=True)
            lengths = path_lengths(image, ws, generator)
            # the target a is a running mean over steps (and ranks), a constant for this step's gradient
            self.pl_mean += self.pl_decay * (self.reduce_mean(lengths.mean().item()) - self.pl_mean)
            return (lengths - self.pl_mean).pow(2).mean() * self.pl_weight * self.pl_every
        raise ValueError(f"unknown loss phase {name!r}; choose G, D, R1 or PL")
