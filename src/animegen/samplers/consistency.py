"""Multistep consistency sampling (Song et al. 2023, Algorithm 1) for a student of `animegen distill`.

Step 1 maps pure noise at the last timestep straight to an image: x0 = f(x_T, T-1). Each further step noises that
image back to a smaller timestep with fresh noise and maps it again, x0 = f(sqrt(ab) x0 + sqrt(1 - ab) z, t):
each evaluation fixes what the previous one got wrong at a finer scale.
"""

from __future__ import annotations

from typing import Sequence

import torch

from animegen.diffusion.consistency import consistency_x0
from animegen.diffusion.parameterization import Denoiser, threshold_x0
from animegen.diffusion.schedules import timestep_at_log_sigma
from animegen.samplers.ddpm import Callback, NoiseFn
from animegen.samplers.spec import SamplerSpec

# the noise levels (sigma = sqrt(1 - ab) / sqrt(ab)) that steps 2, 3, ... start from. ECT's two-step sampler
# re-noises to sigma ~0.8; the distilled student of the shipped model did better re-noised further, to 2.0 (on
# held-out seeds: docs/q2-ddpm-vs-ddim.md), which lets its second step redraw the coarse shapes the first got wrong
STEP_SIGMAS = {1: (), 2: (2.0,), 3: (1.5, 0.5), 4: (2.0, 0.8, 0.3)}


def consistency_timesteps(alpha_bar: torch.Tensor, steps: int) -> list[int]:
    """[T-1, t_2, ...]: the timesteps the `steps` evaluations start from, each t_k the first whose sigma reaches
    the k-th level (levels for more than 4 steps: log-spaced from 2.0 down to 0.2)."""
    sigmas = STEP_SIGMAS.get(steps) or tuple(torch.logspace(0.301, -0.699, steps - 1).tolist())
    found = timestep_at_log_sigma(alpha_bar, torch.tensor(sigmas, dtype=torch.float32).log()).tolist()
    return [alpha_bar.shape[0] - 1] + [min(t, alpha_bar.shape[0] - 2) for t in found]


def student_timesteps(alpha_bar: torch.Tensor, max_steps: int = 4) -> list[int]:
    """Every timestep a 1..max_steps consistency sampler starts from, descending: where a student is asked."""
    return sorted({t for steps in range(1, max_steps + 1) for t in consistency_timesteps(alpha_bar, steps)},
                  reverse=True)


@torch.inference_mode()
def sample_consistency(denoiser: Denoiser, x: torch.Tensor, timesteps: Sequence[int],
                       noise: NoiseFn = torch.randn_like, callback: Callback | None = None,
                       threshold: str = "static") -> torch.Tensor:
    """x: (B, C, H, W) pure noise -> x_0 in [-1, 1], one network evaluation per entry of `timesteps`."""
    alpha_bar = denoiser.alpha_bar
    x0 = x
    for i, t in enumerate(timesteps):
        if i > 0:  # back onto the trajectory at t, with fresh noise
            ab = float(alpha_bar[t])
            x = ab**0.5 * x0 + (1 - ab) ** 0.5 * noise(x0)
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x0 = threshold_x0(consistency_x0(denoiser, x, t_batch), threshold)
        if callback is not None:  # like the other samplers, "x" is the state after the step: here its image
            callback({"i": i, "t": t, "x": x0, "x0_pred": x0})
    return x0


def run(denoiser: Denoiser, x: torch.Tensor, spec: SamplerSpec, noise: NoiseFn, callback: Callback | None
        ) -> torch.Tensor:
    """The samplers' table entry (samplers/table.py): spec.steps evaluations of a student."""
    return sample_consistency(denoiser, x, consistency_timesteps(denoiser.alpha_bar, spec.steps), noise, callback,
                              spec.threshold)
