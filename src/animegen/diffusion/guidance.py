"""Autoguidance (Karras et al. 2024, "Guiding a Diffusion Model with a Bad Version of Itself"): the denoiser

    D_w(x; sigma) = D_guide(x; sigma) + w (D(x; sigma) - D_guide(x; sigma))

pushes each x0 prediction away from what a weaker version of the model (fewer training steps, or smaller) would
predict. Unlike classifier-free guidance it needs no labels, so it guides an unconditional model like ours; the
guide shares the model's errors of the kind a longer-trained model has fixed, and the difference points past them.

The guided denoiser is a Denoiser to every sampler. w = 1 is the model itself: the guide is never evaluated, so
its images are the unguided ones bit for bit. Guidance costs one more network evaluation where it is applied; a
noise-level interval (Kynkaanniemi et al. 2024, "Applying Guidance in a Limited Interval") leaves the rest at one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from animegen.core.errors import UserError
from animegen.diffusion.parameterization import Denoiser, level, threshold_x0
from animegen.diffusion.schedules import sigma


class GuidedDenoiser(Denoiser):
    """`main` guided by `guide` with weight `weight` (>= 1) at noise levels sigma in [sigma_lo, sigma_hi]. Both
    denoise the same schedule and image shape; the guide's network may be any size."""

    def __init__(self, main: Denoiser, guide: Denoiser, weight: float, sigma_lo: float = 0.0,
                 sigma_hi: float = float("inf")):
        super().__init__(main.net, main.alpha_bar, main.objective, main.image_shape)
        check_guide(main, guide)
        self.main, self.guide, self.weight = main, guide, float(weight)
        sigmas = sigma(main.alpha_bar)
        # the timesteps guided: a boolean per t, so a step knows without arithmetic on the device
        self.register_buffer("guided", (sigmas >= sigma_lo) & (sigmas <= sigma_hi), persistent=False)
        self.calls = [0, 0]  # evaluations of the model and of the guide, per batch: what guidance cost

    def with_net(self, net: torch.nn.Module) -> "GuidedDenoiser":
        """The same guidance around another main network (its compiled copy)."""
        guided = GuidedDenoiser(self.main.with_net(net), self.guide, self.weight)
        guided.guided, guided.calls = self.guided, self.calls
        return guided

    def forward(self, x_t: Tensor, t: Tensor, threshold: str = "none") -> tuple[Tensor, Tensor]:
        self.calls[0] += 1
        # samplers step the whole batch through one t: guidance is on or off for all of it
        if self.weight == 1.0 or not bool(self.guided[t[0]]):
            return self.main(x_t, t, threshold)
        self.calls[1] += 1
        x0_main, _ = self.main(x_t, t)
        x0_guide, _ = self.guide(x_t, t)
        x0_pred = torch.lerp(x0_guide, x0_main, self.weight)
        if threshold != "none":
            x0_pred = threshold_x0(x0_pred, threshold)
        lv = level(self.alpha_bar[t].float(), x_t)
        return x0_pred, (x_t.float() - lv.a * x0_pred) / lv.s


def check_guide(main: Denoiser, guide: Denoiser) -> None:
    """A guide must denoise what the model denoises: the same image shape and noise schedule."""
    if tuple(guide.image_shape) != tuple(main.image_shape):
        raise UserError(f"the guide draws {guide.image_shape} images, the model {main.image_shape}: a guide must "
                        f"be a version of the same model (an earlier checkpoint or snapshot, or a smaller model "
                        f"trained on the same faces)")
    if guide.alpha_bar.shape != main.alpha_bar.shape or not torch.allclose(guide.alpha_bar, main.alpha_bar):
        raise UserError(f"the guide's noise schedule (T = {guide.timesteps}) is not the model's (T = "
                        f"{main.timesteps}): a guide must be trained with the same --schedule and --timesteps")
