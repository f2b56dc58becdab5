"""Build a denoiser from a config, fresh or from a checkpoint's EMA weights."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from animegen.diffusion.parameterization import Denoiser
from animegen.diffusion.schedules import alpha_bar
from animegen.models.unet import UNet
from animegen.training.checkpoint import load_weights, read_config, resolve_checkpoint
from animegen.training.config import TrainConfig, from_dict, to_dict


def build_denoiser(cfg: TrainConfig) -> Denoiser:
    """A freshly initialised UNet wrapped for cfg.diffusion's schedule and objective."""
    net = UNet(cfg.model)
    return Denoiser(net, alpha_bar(cfg.diffusion.schedule, cfg.diffusion.timesteps), cfg.diffusion.objective)


def config_from_checkpoint(ckpt: Path) -> TrainConfig:
    data = read_config(ckpt)
    return from_dict(TrainConfig, {k: v for k, v in data.items() if k not in ("format", "step")})


def load_denoiser(path: str | os.PathLike, which: str = "ema", device: torch.device | str = "cpu"
                  ) -> tuple[Denoiser, TrainConfig, Path]:
    """Run directory or checkpoint folder -> (denoiser in eval mode with `which` weights, config, folder)."""
    ckpt = resolve_checkpoint(path)
    cfg = config_from_checkpoint(ckpt)
    denoiser = build_denoiser(cfg)
    load_weights(denoiser.net, ckpt / f"{which}.safetensors")
    return denoiser.to(device).eval(), cfg, ckpt


__all__ = ["build_denoiser", "load_denoiser", "config_from_checkpoint", "to_dict"]
