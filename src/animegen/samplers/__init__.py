"""Samplers are plain functions over a Denoiser: sample_ddpm, sample_ddim, sample_dpmpp_2m."""

from animegen.samplers.ddim import sample_ddim
from animegen.samplers.ddpm import sample_ddpm
from animegen.samplers.dpmpp import sample_dpmpp_2m
from animegen.samplers.timesteps import respaced_timesteps

__all__ = ["sample_ddim", "sample_ddpm", "sample_dpmpp_2m", "respaced_timesteps"]
