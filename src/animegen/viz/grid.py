"""Image grids as PNG, straight from uint8 tensors (no torchvision)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from animegen.core.atomic import atomic_path


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, fill: int = 255) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (C, rows*(H+pad)+pad, nrow*(W+pad)+pad) with `fill` between tiles."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = torch.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), fill, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = images[i]
    return grid


def grid_image(images: torch.Tensor | Sequence[Image.Image], nrow: int | None = None, scale: int = 1) -> Image.Image:
    """uint8 (N, 3, H, W) images, or PIL images of one size, as one PIL grid (a notebook displays it inline)."""
    if not isinstance(images, torch.Tensor):
        images = torch.stack([torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)
                              for im in images])
    picture = Image.fromarray(make_grid(images, nrow).permute(1, 2, 0).numpy())
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    return picture


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> None:
    """Write uint8 (N, 3, H, W) images as one PNG grid (atomically), optionally upscaled by `scale`."""
    with atomic_path(path) as tmp:
        grid_image(images, nrow, scale).save(tmp, format="PNG", optimize=True)
