"""The StyleGAN2 loss as one object with named phases (NVlabs' StyleGAN2Loss, reduced to what 64 px needs).

Phases: "G" (non-saturating logistic loss on fakes), "D" (logistic loss on fakes and reals), "R1" (lazy R1 on
reals: gamma/2 * E||grad_x D(x)||^2, applied every `r1_every` D steps and scaled by that interval). Path-length
regularisation is left out, as NVlabs' small-resolution configs leave it out.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from animegen.data.diffaugment import diff_augment


def r1_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """(B,) squared norm of dD/dx at each real image (create_graph, so it can be minimised)."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(real).sum(), real, create_graph=True)
    return grad.pow(2).sum(dim=(1, 2, 3))


class StyleGAN2Loss:
    def __init__(self, G, D, r1_gamma: float = 0.1, r1_every: int = 16, style_mixing: float = 0.9,
                 augment: str = "color,translation,cutout"):
        self.G, self.D = G, D
        self.r1_gamma, self.r1_every, self.style_mixing, self.augment = r1_gamma, r1_every, style_mixing, augment

    def _D(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self.D(diff_augment(x, self.augment, generator) if self.augment else x)

    def generate(self, batch: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        """Fakes with style mixing (probability `style_mixing`: a second z from a random layer on)."""
        z = torch.randn(batch, self.G.cfg.z_dim, generator=generator, device=device)
        mix = torch.rand((), generator=generator, device=device).item() < self.style_mixing
        if mix:
            z2 = torch.randn(batch, self.G.cfg.z_dim, generator=generator, device=device)
            cutoff = int(torch.randint(1, self.G.cfg.num_ws, (), generator=generator, device=device))
            ws = self.G.styles(z, mix_z=z2, cutoff=cutoff, track=True)
        else:
            ws = self.G.styles(z, track=True)
        return self.G.synthesis(ws)

    def phase(self, name: str, real: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The scalar loss of phase "G", "D" or "R1" for this batch of real images (B, 3, H, W) in [-1, 1]."""
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
        raise ValueError(f"unknown loss phase {name!r}; choose G, D or R1")
