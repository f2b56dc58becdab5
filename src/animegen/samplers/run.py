"""Sampling by spec, in batches, one RNG per image seed: what `generate`, training grids and metrics call."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from animegen.core.imagefiles import to_uint8
from animegen.core.rng import StackedRandomGenerator
from animegen.diffusion.parameterization import Denoiser
from animegen.samplers.consistency import consistency_timesteps, sample_consistency
from animegen.samplers.ddim import sample_ddim
from animegen.samplers.ddpm import Callback, sample_ddpm
from animegen.samplers.dpmpp import sample_dpmpp_2m
from animegen.samplers.spec import SamplerSpec
from animegen.samplers.timesteps import respaced_timesteps
from animegen.samplers.unipc import sample_unipc


def sample_batch(denoiser: Denoiser, seeds: Sequence[int], spec: SamplerSpec, device: torch.device | str = "cpu",
                 callback: Callback | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """One batch: (len(seeds), C, H, W) float in [-1, 1] of the denoiser's image shape; row b depends only on
    seeds[b] (its starting noise and every noise draw after it). dtype: the network runs under autocast to it
    (bf16 or fp16, core/precision.py; None: fp32); the sampler's own arithmetic and the image stay float32."""
    with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
        return _sample(denoiser, seeds, spec, device, callback)


def _sample(denoiser: Denoiser, seeds: Sequence[int], spec: SamplerSpec, device: torch.device | str,
            callback: Callback | None) -> torch.Tensor:
    spec = spec.resolve(denoiser.timesteps)
    rng = StackedRandomGenerator(seeds, device)
    x = rng.randn((len(seeds), *denoiser.image_shape))
    common = {"noise": rng.randn_like, "callback": callback, "threshold": spec.threshold}
    if spec.name == "ddpm":
        return sample_ddpm(denoiser, x, **common)
    if spec.name == "consistency":
        return sample_consistency(denoiser, x, consistency_timesteps(denoiser.alpha_bar, spec.steps), **common)
    ts = respaced_timesteps(denoiser.timesteps, spec.steps, spec.spacing, denoiser.alpha_bar)
    if spec.name == "ddim":
        return sample_ddim(denoiser, x, ts, eta=spec.eta, **common)
    if spec.name == "unipc":
        return sample_unipc(denoiser, x, ts, **common)
    return sample_dpmpp_2m(denoiser, x, ts, eta=spec.eta, **common)


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
