"""Batch augmentations as tensor ops (no per-image Python): flip, small rotation, brightness/contrast jitter.

The homework's medium recipe is flip + 10 degrees + ColorJitter(brightness=0.25, contrast=0.25).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    hflip: bool = False          # mirror left-right with probability 0.5
    rotate_deg: float = 0.0      # rotate by U(-deg, deg)
    brightness: float = 0.0      # multiply by U(1-b, 1+b)
    contrast: float = 0.0        # blend with the image's grey mean by U(1-c, 1+c)

    @property
    def enabled(self) -> bool:
        return self.hflip or self.rotate_deg > 0 or self.brightness > 0 or self.contrast > 0


def augment(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """x: (B, 3, H, W) float in [0, 1] -> augmented (B, 3, H, W) in [0, 1]."""
    if not cfg.enabled:
        return x
    b = x.shape[0]
    rand = torch.rand(b, 4, generator=generator, device=generator.device, dtype=torch.float32).to(x.device)
    if cfg.hflip:
        x = torch.where((rand[:, 0] < 0.5).view(b, 1, 1, 1), x.flip(-1), x)
    if cfg.rotate_deg > 0:
        angle = (rand[:, 1] * 2 - 1) * math.radians(cfg.rotate_deg)
        cos, sin = angle.cos(), angle.sin()
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        # reflection instead of black corners: a model must not learn to paint black triangles
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if cfg.brightness > 0:
        factor = 1 + (rand[:, 2] * 2 - 1) * cfg.brightness
        x = (x * factor.view(b, 1, 1, 1)).clamp(0, 1)
    if cfg.contrast > 0:
        factor = (1 + (rand[:, 3] * 2 - 1) * cfg.contrast).view(b, 1, 1, 1)
        grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).mean(dim=(1, 2)).view(b, 1, 1, 1)
        x = ((x - grey) * factor + grey).clamp(0, 1)
    return x
