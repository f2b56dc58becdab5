"""Build a denoiser from a config, fresh or from a checkpoint's EMA weights."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from animegen.core.errors import UserError
from animegen.diffusion.parameterization import Denoiser
from animegen.diffusion.schedules import alpha_bar
from animegen.models.stylegan2 import Generator
from animegen.models.unet import UNet
from animegen.training.checkpoint import load_weights, read_config, resolve_checkpoint
from animegen.training.config import TrainConfig, from_dict, to_dict
from animegen.training.gan_config import GANTrainConfig


def build_denoiser(cfg: TrainConfig) -> Denoiser:
    """A freshly initialised UNet wrapped for cfg.diffusion's schedule and objective."""
    net = UNet(cfg.model)
    return Denoiser(net, alpha_bar(cfg.diffusion.schedule, cfg.diffusion.timesteps), cfg.diffusion.objective)


def config_from_checkpoint(ckpt: Path) -> TrainConfig:
    data = read_config(ckpt)
    if data.get("kind") == "stylegan2":
        raise UserError(f"{ckpt}: a StyleGAN2 checkpoint; this command needs a diffusion model (generate, "
                        f"evaluate and interpolate take GAN checkpoints)")
    return from_dict(TrainConfig, {k: v for k, v in data.items() if k not in ("format", "step")})


def checkpoint_kind(path: str | os.PathLike) -> str:
    """"stylegan2" for a GAN checkpoint, "diffusion" otherwise (from its config.json)."""
    return read_config(resolve_checkpoint(path)).get("kind", "diffusion")


def load_generator(path: str | os.PathLike, device: torch.device | str = "cpu"
                   ) -> tuple[Generator, GANTrainConfig, Path]:
    """A StyleGAN2 run directory or checkpoint folder -> (EMA generator in eval mode, config, folder)."""
    ckpt = resolve_checkpoint(path)
    data = read_config(ckpt)
    cfg = from_dict(GANTrainConfig, {k: v for k, v in data.items() if k not in ("format", "step")})
    G = Generator(cfg.model)
    load_weights(G, ckpt / "ema.safetensors")
    return G.to(device).eval().requires_grad_(False), cfg, ckpt


def load_denoiser(path: str | os.PathLike, which: str = "ema", device: torch.device | str = "cpu"
                  ) -> tuple[Denoiser, TrainConfig, Path]:
    """Run directory or checkpoint folder -> (denoiser in eval mode with `which` weights, config, folder)."""
    ckpt = resolve_checkpoint(path)
    cfg = config_from_checkpoint(ckpt)
    denoiser = build_denoiser(cfg)
    load_weights(denoiser.net, ckpt / f"{which}.safetensors")
    # channels_last: oneDNN's convolutions run ~1.3x faster in it on CPU (BENCHMARKS.md), as in training
    return denoiser.to(device, memory_format=torch.channels_last).eval(), cfg, ckpt


__all__ = ["build_denoiser", "load_denoiser", "load_generator", "checkpoint_kind", "config_from_checkpoint", "to_dict"]
