"""An adversarial term for a few-step student (adversarial diffusion distillation, Sauer et al. 2023): a small
StyleGAN2 discriminator learns to tell the student's images from real faces, and its gradient joins the
distillation gradient on the student's images.

Why: a regression student can only be as sharp as its error allows. Matching the teacher's ODE ends in a distance
makes it average over the fine detail it cannot predict yet, so its images are smoother than the teacher's
(the texture distance SWD at 64 px is where a 2-step student loses to its teacher). A discriminator judges the
images as images: blur is the first thing it learns to see, and its gradient asks for detail.

The two gradients are mixed at the image, not by fixed loss weights: the adversarial gradient is rescaled to
`weight` times the distillation gradient's norm (the adaptive weight of Esser et al. 2021, taken at the output
instead of the last layer), so one setting holds whatever the distance's or D's scale. The weight ramps up from 0
over the first `warmup` of the run while D, trained from scratch, learns something worth following.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from animegen.data.diffaugment import diff_augment
from animegen.models.stylegan2 import Discriminator, StyleGANConfig
from animegen.training.gan_loss import r1_penalty


class AdversarialTerm:
    """D, its Adam and its R1; `image_grad` for the student's step, `discriminator_step` after it."""

    def __init__(self, image_size: int, weight: float, device: torch.device, channels: int = 64,
                 lr: float = 2e-3, r1_gamma: float = 0.1, r1_every: int = 16, warmup: float = 0.25,
                 augment: str = "color,translation,cutout"):
        self.D = Discriminator(StyleGANConfig(image_size=image_size, channels=channels)).to(device)
        # StyleGAN2's Adam: no first-moment momentum for a D whose target moves every step
        self.optimizer = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.0, 0.99))
        self.weight, self.warmup = weight, warmup
        self.r1_gamma, self.r1_every, self.augment = r1_gamma, r1_every, augment
        self.d_steps = 0

    def _logits(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return self.D(diff_augment(x, self.augment, generator))

    def ramp(self, step: int, total_steps: int) -> float:
        """The weight at optimizer step `step` of `total_steps`: linear from 0 over the first `warmup` share."""
        return self.weight * min(1.0, step / max(1.0, self.warmup * total_steps))

    def image_grad(self, x0: Tensor, grad_distill: Tensor, weight: float, judged: Tensor,
                   generator: torch.Generator | None) -> Tensor:
        """x0: the student's images (B, C, H, W) in [-1, 1], part of its graph; grad_distill: the distillation
        loss's gradient at x0; judged: (B,) bool, the images D sees. Returns grad_distill plus, on the judged
        images, the non-saturating G loss's gradient rescaled to `weight` x grad_distill's norm there (D's own
        parameters get no gradient here)."""
        if weight <= 0 or not bool(judged.any()):
            return grad_distill
        fake_loss = F.softplus(-self._logits(x0[judged], generator)).mean()
        (grad_adv,) = torch.autograd.grad(fake_loss, x0, retain_graph=True)
        scale = weight * grad_distill[judged].norm() / (grad_adv.norm() + 1e-12)
        return grad_distill + scale * grad_adv

    def discriminator_step(self, fake: Tensor, real: Tensor, generator: torch.Generator | None) -> Tensor:
        """One D step on the student's images (detached) and a batch of real ones, both (B, C, H, W) in [-1, 1];
        lazy R1 on the reals every `r1_every` steps, scaled by that interval. Returns D's logistic loss."""
        if len(fake) == 0:
            return torch.zeros((), device=real.device)
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.softplus(self._logits(fake.detach(), generator)).mean() + \
            F.softplus(-self._logits(real, generator)).mean()
        total = loss
        if self.d_steps % self.r1_every == 0:
            penalty = r1_penalty(lambda x: self._logits(x, generator), real)
            total = total + penalty.mean() * (self.r1_gamma / 2) * self.r1_every
        total.backward()
        self.optimizer.step()
        self.d_steps += 1
        return loss.detach()

    def state_dict(self) -> dict:
        return {"D": self.D.state_dict(), "optimizer": self.optimizer.state_dict(), "d_steps": self.d_steps}

    def load_state_dict(self, state: dict) -> None:
        self.D.load_state_dict(state["D"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.d_steps = int(state["d_steps"])
