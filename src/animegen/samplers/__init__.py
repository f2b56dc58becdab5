"""Samplers are plain functions over a Denoiser (sample_ddpm, sample_ddim, sample_dpmpp_2m, sample_unipc); a SamplerSpec names
one with its settings, and `sample_batch` runs it with one RNG per image seed."""

from animegen.samplers.ddim import sample_ddim
from animegen.samplers.ddpm import sample_ddpm
from animegen.samplers.dpmpp import sample_dpmpp_2m
from animegen.samplers.run import sample_batch, sample_images
from animegen.samplers.spec import SAMPLERS, SamplerSpec, choose, parse_spec
from animegen.samplers.timesteps import respaced_timesteps
from animegen.samplers.unipc import sample_unipc

__all__ = ["sample_ddim", "sample_ddpm", "sample_dpmpp_2m", "sample_unipc", "respaced_timesteps", "sample_batch", "sample_images",
           "SAMPLERS", "SamplerSpec", "choose", "parse_spec"]
