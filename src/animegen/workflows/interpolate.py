"""`animegen interpolate`: walk between latent points of a StyleGAN2 — a row per pair of seeds."""

from __future__ import annotations

from pathlib import Path

from animegen.core.errors import UserError
from animegen.core.outputs import output_file, writing
from animegen.runs.model import TrainedModel
from animegen.samplers.gan import gan_lerp_images
from animegen.viz.grid import save_grid


def interpolate(model: TrainedModel, out: Path, rows: int = 4, steps: int = 8, seed: int = 0, psi: float = 1.0) -> Path:
    """Row r goes from the face of seed `seed + 2r` to that of `seed + 2r + 1` in `steps` equal steps of w
    (linear in w, where the mapping network makes the path perceptually even)."""
    if model.kind != "stylegan2":
        raise UserError(f"{model.checkpoint}: interpolate needs a StyleGAN2 checkpoint (train one with "
                        f"--preset boss)")
    if rows < 1 or steps < 2:
        raise UserError("interpolate needs --rows >= 1 and --steps >= 2")
    out = output_file(out)
    pairs = [(seed + 2 * r, seed + 2 * r + 1, k / (steps - 1)) for r in range(rows) for k in range(steps)]
    seeds_a, seeds_b, t = zip(*pairs)
    images = gan_lerp_images(model.net, seeds_a, seeds_b, t, psi, model.device)
    with writing(out):
        save_grid(images.cpu(), out, nrow=steps, scale=2)
    return out
