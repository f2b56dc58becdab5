"""Models from checkpoint folders: rebuild a denoiser or a StyleGAN2 generator from its model file
(runs/model_file.py) and its EMA weights. Inference (generate, progress, compare, export, serve) starts here and
never touches training code or the training recipe.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from animegen.assets import SHIPPED, shipped_model
from animegen.core.errors import UserError
from animegen.diffusion.parameterization import Denoiser
from animegen.diffusion.schedules import alpha_bar
from animegen.models.stylegan2 import Generator
from animegen.models.unet import UNet
from animegen.runs.checkpoint import load_weights, resolve_checkpoint
from animegen.runs.model_file import MODEL_FILE, DiffusionModel, GANModel, ModelSpec, read_model_file


def model_folder(name: str | os.PathLike | None) -> Path:
    """A checkpoint folder from what a user or a config names: None or "shipped" is the model shipped with
    animegen, anything else a run directory (its newest checkpoint) or a checkpoint folder."""
    return shipped_model() if name is None or str(name) == SHIPPED else resolve_checkpoint(name)


def build_denoiser(model: DiffusionModel) -> Denoiser:
    """A freshly initialised UNet wrapped for the model's schedule and objective."""
    return Denoiser(UNet(model.network), alpha_bar(model.schedule, model.timesteps), model.objective,
                    model.image_shape)


def build_network(model: ModelSpec) -> Denoiser | Generator:
    return build_denoiser(model) if isinstance(model, DiffusionModel) else Generator(model.network)


def load_model(path: str | os.PathLike | None, which: str = "ema", device: torch.device | str = "cpu"
               ) -> tuple[Denoiser | Generator, ModelSpec, Path]:
    """A run directory or checkpoint folder (None: the shipped model) -> (network in eval mode with its `which`
    weights, its model file, the checkpoint folder)."""
    ckpt = model_folder(path)
    model = read_model_file(ckpt)
    net = build_network(model)
    load_weights(net.net if isinstance(net, Denoiser) else net, ckpt / f"{which}.safetensors", ckpt / MODEL_FILE)
    if isinstance(net, Denoiser):
        # channels_last: oneDNN's convolutions run faster in it on CPU (BENCHMARKS.md), as in training
        return net.to(device, memory_format=torch.channels_last).eval(), model, ckpt
    return net.to(device).eval().requires_grad_(False), model, ckpt


def load_denoiser(path: str | os.PathLike | None, which: str = "ema", device: torch.device | str = "cpu"
                  ) -> tuple[Denoiser, DiffusionModel, Path]:
    """load_model for a diffusion model; a StyleGAN2 checkpoint is refused in one line."""
    net, model, ckpt = load_model(path, which, device)
    if not isinstance(model, DiffusionModel):
        raise UserError(f"{ckpt}: a StyleGAN2 checkpoint; this command needs a diffusion model (generate, "
                        f"evaluate and interpolate take GAN checkpoints)")
    return net, model, ckpt


def load_generator(path: str | os.PathLike | None, device: torch.device | str = "cpu"
                   ) -> tuple[Generator, GANModel, Path]:
    """load_model for a StyleGAN2; a diffusion checkpoint is refused in one line."""
    net, model, ckpt = load_model(path, "ema", device)
    if not isinstance(model, GANModel):
        raise UserError(f"{ckpt}: a diffusion checkpoint; this command needs a StyleGAN2 one (--preset boss)")
    return net, model, ckpt


def load_guide(name: str | os.PathLike, model: DiffusionModel, checkpoint: Path, device: torch.device | str = "cpu"
               ) -> tuple[Denoiser, str]:
    """The guide a user names for the model in `checkpoint` -> (its denoiser in eval mode, what it is). A post-hoc
    EMA snapshot (run/phema/step-N-std-S.safetensors) is read as its run's network, any other weights file as the
    model's own; a folder is a run directory or checkpoint with its own model file (a smaller model may guide); a
    bare name is looked up in the model's run: its checkpoints/ (step-N) and phema/ snapshots."""
    path = Path(name).expanduser()
    if not path.exists():
        run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint
        found = [p for p in (run / "checkpoints" / str(name), run / "phema" / str(name),
                             run / "phema" / f"{name}.safetensors") if p.exists()]
        if not found:
            raise UserError(f"guide {name}: no such file or folder, and no checkpoint or snapshot of that name in "
                            f"{run}; give a run directory, a checkpoint folder or a snapshot file")
        path = found[0]
    if path.is_file():
        # a run's snapshot is of that run's network (which may be smaller); another weights file, of the model's
        run = path.parent.parent if path.parent.name == "phema" else None
        source = resolve_checkpoint(run) if run is not None and (run / "latest").is_file() else checkpoint
        guide = build_denoiser(read_model_file(source) if source != checkpoint else model)
        load_weights(guide.net, path, source / MODEL_FILE)
    else:
        guide, _, path = load_denoiser(path, device=device)
    return guide.to(device, memory_format=torch.channels_last).eval(), str(path)
