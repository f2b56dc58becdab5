"""Models from run directories: rebuild a denoiser or a StyleGAN2 generator from a saved config and its EMA
weights. Inference (generate, progress, compare, export) starts here and never touches training code."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from animegen.core.errors import UserError
from animegen.diffusion.parameterization import Denoiser
from animegen.diffusion.schedules import alpha_bar
from animegen.models.stylegan2 import Generator
from animegen.models.unet import UNet
from animegen.runs.checkpoint import load_weights, read_config, resolve_checkpoint
from animegen.runs.config import TrainConfig, from_dict
from animegen.runs.gan_config import GANTrainConfig

RunConfigT = TrainConfig | GANTrainConfig


def config_from_json(data: dict, source: Path) -> RunConfigT:
    """A saved config.json (a run's or a checkpoint's) as its config class; `source` names it in errors."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: not a config (expected a JSON object)")
    cls = GANTrainConfig if data.get("kind") == "stylegan2" else TrainConfig
    try:
        return from_dict(cls, {k: v for k, v in data.items() if k not in ("format", "step")})
    except UserError as err:
        raise UserError(f"{source}: {err}") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise UserError(f"{source}: invalid config ({err}); fix or restore this file") from None


def build_denoiser(cfg: TrainConfig) -> Denoiser:
    """A freshly initialised UNet wrapped for cfg.diffusion's schedule and objective."""
    net = UNet(cfg.model)
    return Denoiser(net, alpha_bar(cfg.diffusion.schedule, cfg.diffusion.timesteps), cfg.diffusion.objective)


def checkpoint_kind(path: str | os.PathLike) -> str:
    """"stylegan2" for a GAN checkpoint, "diffusion" otherwise (from its config.json)."""
    return read_config(resolve_checkpoint(path)).get("kind", "diffusion")


def load_generator(path: str | os.PathLike, device: torch.device | str = "cpu"
                   ) -> tuple[Generator, GANTrainConfig, Path]:
    """A StyleGAN2 run directory or checkpoint folder -> (EMA generator in eval mode, config, folder)."""
    ckpt = resolve_checkpoint(path)
    cfg = config_from_json(read_config(ckpt), ckpt / "config.json")
    if not isinstance(cfg, GANTrainConfig):
        raise UserError(f"{ckpt}: a diffusion checkpoint; this command needs a StyleGAN2 one (--preset boss)")
    G = Generator(cfg.model)
    load_weights(G, ckpt / "ema.safetensors", ckpt / "config.json")
    return G.to(device).eval().requires_grad_(False), cfg, ckpt


def load_denoiser(path: str | os.PathLike, which: str = "ema", device: torch.device | str = "cpu"
                  ) -> tuple[Denoiser, TrainConfig, Path]:
    """Run directory or checkpoint folder -> (denoiser in eval mode with `which` weights, config, folder)."""
    ckpt = resolve_checkpoint(path)
    cfg = config_from_json(read_config(ckpt), ckpt / "config.json")
    if not isinstance(cfg, TrainConfig):
        raise UserError(f"{ckpt}: a StyleGAN2 checkpoint; this command needs a diffusion model (generate, "
                        f"evaluate and interpolate take GAN checkpoints)")
    denoiser = build_denoiser(cfg)
    load_weights(denoiser.net, ckpt / f"{which}.safetensors", ckpt / "config.json")
    # channels_last: oneDNN's convolutions run ~1.3x faster in it on CPU (BENCHMARKS.md), as in training
    return denoiser.to(device, memory_format=torch.channels_last).eval(), cfg, ckpt
