"""`animegen progress` (report Q1): samples across the denoising steps, and what the model "sees" (x0_pred)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from animegen.core.errors import UserError
from animegen.core.imagefiles import to_uint8
from animegen.core.outputs import output_file
from animegen.core.rng import StackedRandomGenerator
from animegen.runs.model import TrainedModel
from animegen.samplers.run import sample_batch
from animegen.samplers.spec import SamplerSpec
from animegen.viz.progress import pick_frames, save_progress_figure


def _needs_diffusion(model: TrainedModel) -> None:
    if model.kind != "diffusion":
        raise UserError(f"{model.checkpoint}: a StyleGAN2 checkpoint; progress shows a diffusion model's denoising "
                        f"steps, a GAN draws in one pass (try `animegen interpolate`)")


@dataclass(frozen=True)
class Frames:
    """The Q1 frames of some seeds: x_t[j] and x0_pred[j] are uint8 (num, 3, H, W) at column j, titled t=..."""

    x_t: list[torch.Tensor]
    x0_pred: list[torch.Tensor]
    titles: list[str]
    spec: SamplerSpec


def progress_frames(model: TrainedModel, seeds: list[int], frames: int = 20, spec: SamplerSpec | None = None
                    ) -> Frames:
    """Up to `frames` columns from pure noise x_T to the image, with the x0 the model predicted at each (what
    `progress` draws and `serve` plays back)."""
    _needs_diffusion(model)
    denoiser = model.denoiser
    spec = (spec or model.spec).resolve(denoiser.timesteps)
    states: list[dict] = []

    def keep(state: dict) -> None:
        states.append({"t": state["t"], "x": state["x"].cpu(), "x0_pred": state["x0_pred"].cpu()})

    sample_batch(denoiser, seeds, spec, model.device, callback=keep)
    # the same draw the sampler began with
    x_T = StackedRandomGenerator(seeds, model.device).randn((len(seeds), *denoiser.image_shape)).cpu()
    picks = pick_frames(len(states), frames)
    # column 0 is pure noise x_T (t = T); column j > 0 is the state after sampler step j - 1
    xs = [to_uint8(x_T if j == 0 else states[j - 1]["x"]) for j in picks]
    x0s = [to_uint8(states[max(j - 1, 0)]["x0_pred"]) for j in picks]
    titles = [f"t={denoiser.timesteps}" if j == 0 else f"t={states[j - 1]['t']}" for j in picks]
    return Frames(xs, x0s, titles, spec)


def progress(model: TrainedModel, out: Path, num: int = 5, frames: int = 20, seed: int = 0,
             spec: SamplerSpec | None = None) -> tuple[Path, Path]:
    """Write OUT (x_t per column) and OUT with suffix -x0 (x0_pred per column); returns both paths."""
    _needs_diffusion(model)
    out = output_file(out)
    x0_path = output_file(out.with_name(out.stem + "-x0" + out.suffix))
    shown = progress_frames(model, list(range(seed, seed + num)), frames, spec)
    save_progress_figure(shown.x_t, shown.titles, out, f"{shown.spec.variant}: x_t from noise to image")
    save_progress_figure(shown.x0_pred, shown.titles, x0_path, f"{shown.spec.variant}: predicted x0 at each step")
    return out, x0_path
