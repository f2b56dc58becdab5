"""DiffAugment (Zhao et al. 2020): the same differentiable augmentations on real and fake images before D,
so a GAN trained on little data does not let D memorise the real set.

Policies: "color" (brightness, saturation, contrast), "translation" (up to 1/8 of the size, zero fill),
"cutout" (one square of half the size, zeroed). Images (B, C, H, W) in about [-1, 1]; every random draw comes
from `generator`, so a resumed run augments exactly as the uninterrupted one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    for name in (p.strip() for p in policy.split(",") if p.strip()):
        if name not in POLICIES:
            raise ValueError(f"unknown DiffAugment policy {name!r}; choose from {', '.join(POLICIES)}")
        x = {"color": _color, "translation": _translation, "cutout": _cutout}[name](x, generator)
    return x


def _rand(x: torch.Tensor, generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    device = generator.device if generator is not None else x.device
    return torch.rand(x.shape[0], *shape, generator=generator, device=device).to(x.device, x.dtype)


def _color(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    x = x + (_rand(x, g, 1, 1, 1) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x, g, 1, 1, 1) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, g, 1, 1, 1) + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, g: torch.Generator | None, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = (_rand(x, g, 1) * (2 * sh + 1)).long().clamp(max=2 * sh) - sh  # integer shifts in [-sh, sh]
    tx = (_rand(x, g, 1) * (2 * sw + 1)).long().clamp(max=2 * sw) - sw
    rows = (torch.arange(h, device=x.device)[None] - ty).clamp(-1, h)  # (B, H); -1 and h index the zero border
    cols = (torch.arange(w, device=x.device)[None] - tx).clamp(-1, w)
    padded = F.pad(x, (1, 1, 1, 1))
    idx_b = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_b, rows[:, :, None] + 1, cols[:, None, :] + 1]
    return out.permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, g: torch.Generator | None, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = (_rand(x, g, 1) * (h + (1 - ch % 2))).long()  # the square's centre
    cx = (_rand(x, g, 1) * (w + (1 - cw % 2))).long()
    ys = torch.arange(h, device=x.device)[None]
    xs = torch.arange(w, device=x.device)[None]
    inside_y = ((ys - cy + ch // 2) >= 0) & ((ys - cy + ch // 2) < ch)  # (B, H)
    inside_x = ((xs - cx + cw // 2) >= 0) & ((xs - cx + cw // 2) < cw)
    mask = ~(inside_y[:, :, None] & inside_x[:, None, :])
    return x * mask[:, None].to(x.dtype)
