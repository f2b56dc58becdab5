"""`animegen progress` (report Q1): samples across the denoising steps, and what the model "sees" (x0_pred)."""

from __future__ import annotations

from pathlib import Path

from animegen.core.rng import StackedRandomGenerator
from animegen.samplers.run import sample_batch, to_uint8
from animegen.training.factory import load_denoiser
from animegen.viz.progress import pick_frames, save_progress_figure


def progress(checkpoint: str, out: Path, num: int = 5, frames: int = 20, seed: int = 0, sampler: str = "ddpm",
             steps: int | None = None, device: str = "cpu") -> tuple[Path, Path]:
    """Write OUT (x_t per column) and OUT with suffix -x0 (x0_pred per column); returns both paths."""
    denoiser, cfg, _ = load_denoiser(checkpoint, device=device)
    states: list[dict] = []
    shape = (cfg.model.channels, cfg.model.image_size, cfg.model.image_size)
    seeds = list(range(seed, seed + num))

    def keep(state: dict) -> None:
        states.append({"t": state["t"], "x": state["x"].cpu(), "x0_pred": state["x0_pred"].cpu()})

    sample_batch(denoiser, seeds, sampler=sampler, steps=steps, image_shape=shape, device=device, callback=keep)
    x_T = StackedRandomGenerator(seeds, device).randn((num, *shape)).cpu()  # the same draw the sampler began with
    picks = pick_frames(len(states), frames)
    # column 0 is pure noise x_T (t = T); column j > 0 is the state after sampler step j - 1
    xs = [to_uint8(x_T if j == 0 else states[j - 1]["x"]) for j in picks]
    x0s = [to_uint8(states[max(j - 1, 0)]["x0_pred"]) for j in picks]
    titles = [f"t={denoiser.timesteps}" if j == 0 else f"t={states[j - 1]['t']}" for j in picks]
    out = Path(out)
    x0_path = out.with_name(out.stem + "-x0" + out.suffix)
    save_progress_figure(xs, titles, out, f"{sampler}: x_t from noise to image")
    save_progress_figure(x0s, titles, x0_path, f"{sampler}: predicted x0 at each step")
    return out, x0_path
