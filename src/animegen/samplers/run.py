"""Sampling by spec, in batches, one RNG per image seed: what `generate`, training grids and metrics call."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from animegen.core.imagefiles import to_uint8
from animegen.core.rng import SlerpRandomGenerator, StackedRandomGenerator
from animegen.diffusion.parameterization import Denoiser
from animegen.samplers.ddpm import Callback
from animegen.samplers.spec import SamplerSpec

NoiseSource = StackedRandomGenerator | SlerpRandomGenerator


def sample_batch(denoiser: Denoiser, seeds: Sequence[int], spec: SamplerSpec, device: torch.device | str = "cpu",
                 callback: Callback | None = None, dtype: torch.dtype | None = None,
                 noise: NoiseSource | None = None) -> torch.Tensor:
    """One batch: (len(seeds), C, H, W) float in [-1, 1] of the denoiser's image shape; row b depends only on
    seeds[b] (its starting noise and every noise draw after it). `spec` must be resolved for this denoiser's T.
    dtype: the network runs under autocast to it (bf16 or fp16, core/precision.py; None: fp32); the sampler's own
    arithmetic and the image stay float32. noise: where x_T and every later draw come from instead (a row per
    seed), e.g. a SlerpRandomGenerator to walk between two seeds."""
    if spec.timesteps != denoiser.timesteps:  # resolved once by whoever chose it; never re-defaulted here
        raise ValueError(f"{spec} is not resolved for T = {denoiser.timesteps}: call spec.resolve(T) first")
    rng = noise if noise is not None else StackedRandomGenerator(seeds, device)
    with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
        x = rng.randn((len(seeds), *denoiser.image_shape))
        return spec.info.function()(denoiser, x, spec, rng.randn_like, callback)


def sample_images(denoiser: Denoiser, seeds: Sequence[int], spec: SamplerSpec, batch_size: int,
                  device: torch.device | str = "cpu", dtype: torch.dtype | None = None,
                  fixed_shape: bool = False) -> Iterator[torch.Tensor]:
    """Yield uint8 (b, C, H, W) batches for `seeds` in order. fixed_shape: a short last batch is filled up to
    batch_size with repeats of its seeds and cut back (rows depend on their own seed only), so a network compiled
    for one shape never compiles again."""
    for start in range(0, len(seeds), batch_size):
        chunk = list(seeds[start : start + batch_size])
        padded = (chunk * batch_size)[:batch_size] if fixed_shape else chunk
        yield to_uint8(sample_batch(denoiser, padded, spec, device, dtype=dtype)[: len(chunk)])
