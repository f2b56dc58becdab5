"""The page's pictures: a Draw grid, an Explore frame between two seeds, the Watch frames of one seed.
Each runs on the worker thread with a loaded model and returns PNG bytes (or, for Watch, a sprite sheet)."""

from __future__ import annotations

import base64
import io
import math

import torch
from PIL import Image

from animegen.api import Model
from animegen.core.imagefiles import to_uint8
from animegen.core.rng import SlerpRandomGenerator
from animegen.samplers.gan import gan_lerp_images
from animegen.samplers.run import sample_batch
from animegen.samplers.spec import SamplerSpec
from animegen.viz.grid import make_grid
from animegen.workflows.progress import progress_frames


def png(images: torch.Tensor) -> bytes:
    """uint8 (3, H, W) as PNG bytes (light compression: the page waits for it, the network is local)."""
    buf = io.BytesIO()
    Image.fromarray(images.permute(1, 2, 0).numpy(), "RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def draw_grid(model: Model, seed: int, num: int, spec: SamplerSpec | None, psi: float) -> bytes:
    """Faces of seeds seed..seed+num-1 (face k as `generate --seed SEED` writes (k+1).jpg) as one PNG grid."""
    faces = torch.cat(list(model.images(range(seed, seed + num), spec, None, psi))).cpu()
    return png(make_grid(faces, nrow=math.ceil(math.sqrt(num))))


def explore_frame(model: Model, seed_a: int, seed_b: int, t: float, spec: SamplerSpec | None, psi: float) -> bytes:
    """One face part of the way (t in [0, 1]) from seed a's to seed b's: the starting noise and every later draw
    slerped for a diffusion model or student, w lerped for a StyleGAN2 (as `interpolate`)."""
    if model.kind == "stylegan2":
        return png(gan_lerp_images(model.net, [seed_a], [seed_b], [t], psi, model.device)[0].cpu())
    noise = SlerpRandomGenerator([seed_a], [seed_b], [t], model.device)
    x0 = sample_batch(model.denoiser, [seed_a], spec, model.device, dtype=model.precision.dtype, noise=noise)
    return png(to_uint8(x0)[0].cpu())


def watch_frames(model: Model, seed: int, frames: int, spec: SamplerSpec | None) -> dict:
    """The Q1 frames of one seed as a sprite sheet: row 0 x_t, row 1 the predicted x0, one column per frame."""
    shown = progress_frames(model, [seed], frames, spec)
    tiles = torch.cat([torch.cat(shown.x_t), torch.cat(shown.x0_pred)])  # (2F, 3, H, W)
    sheet = make_grid(tiles, nrow=len(shown.titles), pad=0)
    return {"titles": shown.titles, "frames": len(shown.titles), "size": int(tiles.shape[-1]),
            "sampler": shown.spec.variant, "steps": shown.spec.nfe,
            "sprite": "data:image/png;base64," + base64.b64encode(png(sheet)).decode()}
