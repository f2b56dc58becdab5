"""Sampling by name, in batches, one RNG per image seed: what `generate`, training grids and metrics call."""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

from animegen.core.rng import StackedRandomGenerator
from animegen.diffusion.parameterization import Denoiser
from animegen.samplers.ddim import sample_ddim
from animegen.samplers.ddpm import Callback, sample_ddpm
from animegen.samplers.dpmpp import sample_dpmpp_2m
from animegen.samplers.timesteps import respaced_timesteps

SAMPLERS = ("ddpm", "ddim", "dpmpp")


def sample_batch(denoiser: Denoiser, seeds: Sequence[int], sampler: str = "ddim", steps: int | None = None,
                 eta: float = 0.0, spacing: str = "uniform", image_shape: tuple[int, int, int] = (3, 64, 64),
                 device: torch.device | str = "cpu", callback: Callback | None = None, threshold: str = "static"
                 ) -> torch.Tensor:
    """One batch: (len(seeds), C, H, W) float in [-1, 1]; row b depends only on seeds[b].

    threshold: how each step's x0 prediction is kept in [-1, 1] (static clamp or Imagen's dynamic rescale)."""
    rng = StackedRandomGenerator(seeds, device)
    x = rng.randn((len(seeds), *image_shape))
    if sampler == "ddpm":
        return sample_ddpm(denoiser, x, noise=rng.randn_like, callback=callback, threshold=threshold)
    ts = respaced_timesteps(denoiser.timesteps, min(steps or 50, denoiser.timesteps), spacing, denoiser.alpha_bar)
    if sampler == "ddim":
        return sample_ddim(denoiser, x, ts, eta=eta, noise=rng.randn_like, callback=callback,
                           threshold=threshold)
    if sampler == "dpmpp":
        return sample_dpmpp_2m(denoiser, x, ts, eta=eta, noise=rng.randn_like, callback=callback,
                               threshold=threshold)
    raise ValueError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] -> uint8 (B, C, H, W), rounding as torchvision's save_image does."""
    return ((x.clamp(-1, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)


def sample_images(denoiser: Denoiser, seeds: Sequence[int], batch_size: int = 64,
                  progress: Callable[[int], None] | None = None, **kwargs) -> Iterator[torch.Tensor]:
    """Yield uint8 (b, C, H, W) batches for `seeds` in order; kwargs go to `sample_batch`."""
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start : start + batch_size]
        yield to_uint8(sample_batch(denoiser, chunk, **kwargs))
        if progress is not None:
            progress(len(chunk))
