"""`animegen interpolate`: walk between latent points of a StyleGAN2 — a row per pair of seeds."""

from __future__ import annotations

from pathlib import Path

import torch

from animegen.core.errors import UserError
from animegen.core.imagefiles import to_uint8
from animegen.core.outputs import output_file, writing
from animegen.core.rng import StackedRandomGenerator
from animegen.runs.model import TrainedModel
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
    G, cfg = model.net, model.config
    z = StackedRandomGenerator(list(range(seed, seed + 2 * rows)), model.device).randn((2 * rows, cfg.model.z_dim))
    with torch.inference_mode():
        w = G.mapping(z, psi)
        t = torch.linspace(0, 1, steps, device=w.device).view(1, steps, 1)
        path = w[0::2, None].lerp(w[1::2, None], t)  # (rows, steps, w_dim)
        ws = path.reshape(rows * steps, 1, -1).repeat(1, cfg.model.num_ws, 1)
        images = to_uint8(G.synthesis(ws, noise="const"))
    with writing(out):
        save_grid(images.cpu(), out, nrow=steps, scale=2)
    return out
