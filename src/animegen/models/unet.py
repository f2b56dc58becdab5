"""The denoising UNet (Ronneberger et al. 2015, as used by DDPM): (x, noise_level) -> output of the same shape.

It knows nothing of the noise schedule or the parameterization; `diffusion.parameterization.Denoiser` wraps it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from animegen.models.layers import Attention, Downsample, ResBlock, Upsample, group_norm, sinusoidal_embedding


@dataclass(frozen=True)
class UNetConfig:
    image_size: int = 64
    channels: int = 3
    dim: int = 16                          # base channel count
    dim_mults: tuple[int, ...] = (1, 2, 4)  # channels per level = dim * mult; one downsample between levels
    num_res_blocks: int = 2                # residual blocks per level
    attn_resolutions: tuple[int, ...] = (16,)  # feature-map sizes that get self-attention
    dropout: float = 0.0
    head_dim: int = 32
    patch_size: int = 1                    # space-to-depth at the input: the UNet runs at image_size / patch_size


class UNet(nn.Module):
    """x: (B, C, H, W), noise_level: (B,) float (any scale; the Denoiser passes 1000 * t / T) -> (B, C, H, W)."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        emb_dim = 4 * cfg.dim
        self.emb = nn.Sequential(nn.Linear(cfg.dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if cfg.image_size % cfg.patch_size:
            raise ValueError(f"image_size {cfg.image_size} is not a multiple of patch_size {cfg.patch_size}")
        # space-to-depth: a p x p patch becomes p*p*C channels, so every layer runs on p*p times fewer positions
        pixel_ch = cfg.channels * cfg.patch_size ** 2
        self.stem = nn.Conv2d(pixel_ch, cfg.dim, 3, padding=1)
        chans = [cfg.dim * m for m in cfg.dim_mults]

        def block(i: int, o: int, res: int) -> nn.ModuleList:
            layers = [ResBlock(i, o, emb_dim, cfg.dropout)]
            if res in cfg.attn_resolutions:
                layers.append(Attention(o, cfg.head_dim))
            return nn.ModuleList(layers)

        # encoder: every block's output is kept as a skip connection
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, ch, res = [], cfg.dim, cfg.image_size // cfg.patch_size
        for level, out in enumerate(chans):
            for _ in range(cfg.num_res_blocks):
                self.down.append(block(ch, out, res))
                ch = out
                skips.append(ch)
            last = level == len(chans) - 1
            self.downsample.append(nn.Identity() if last else Downsample(ch, ch))
            if not last:
                res //= 2
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, cfg.dropout), Attention(ch, cfg.head_dim),
                                  ResBlock(ch, ch, emb_dim, cfg.dropout)])
        # decoder: as many blocks per level as the encoder, each eating one skip (lucidrains' layout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level, out in reversed(list(enumerate(chans))):
            for _ in range(cfg.num_res_blocks):
                self.up.append(block(ch + skips.pop(), out, res))
                ch = out
            first = level == 0
            self.upsample.append(nn.Identity() if first else Upsample(ch, ch))
            if not first:
                res *= 2
        self.out_norm = group_norm(ch)
        self.out = nn.Conv2d(ch, pixel_ch, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        emb = self.emb(sinusoidal_embedding(noise_level, cfg.dim))
        h = self.stem(F.pixel_unshuffle(x, cfg.patch_size))
        hs = []
        blocks = iter(self.down)
        for downsample in self.downsample:
            for _ in range(cfg.num_res_blocks):
                h = _run(next(blocks), h, emb)
                hs.append(h)
            h = downsample(h)
        for layer in self.mid:
            h = layer(h, emb)
        blocks = iter(self.up)
        for upsample in self.upsample:
            for _ in range(cfg.num_res_blocks):
                h = _run(next(blocks), torch.cat([h, hs.pop()], dim=1), emb)
            h = upsample(h)
        return F.pixel_shuffle(self.out(F.silu(self.out_norm(h))), cfg.patch_size)


def _run(layers: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        h = layer(h, emb)
    return h
