"""A compact StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN") for 64x64.

Generator: mapping MLP (normalised z -> w), a learned 4x4 constant, per resolution two modulated/demodulated 3x3
convolutions with per-pixel noise of learned strength, and skip-connection RGB outputs summed across resolutions.
Discriminator: residual blocks, minibatch standard deviation, a small MLP head. Every layer uses the equalised
learning rate (weights stored at unit variance, scaled at run time). Images are (B, 3, H, W) in about [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class StyleGANConfig:
    image_size: int = 64
    z_dim: int = 256
    w_dim: int = 256
    mapping_layers: int = 4           # NVlabs use 8 at 1024 px; their small-resolution configs use fewer
    channels: int = 256               # feature maps at 4..16 px; halved at each level above (capped by max)
    max_channels: int = 256
    mbstd_group: int = 4
    w_avg_beta: float = 0.995         # tracking of the mean w (for truncation)

    def level_channels(self, res: int) -> int:
        return min(self.max_channels, max(32, self.channels * 16 // max(res, 16)))

    @property
    def num_ws(self) -> int:
        """How many w vectors a forward pass consumes: 2 per resolution above 4x4, 1 conv + 1 RGB at 4x4."""
        return 2 * int(math.log2(self.image_size)) - 2


class EqualLinear(nn.Module):
    """Linear layer with the equalised learning rate; `lr_mul` slows the mapping network (0.01 in the paper)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(in_dim), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.act else x


class EqualConv2d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, bias: bool = True, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale, self.pad, self.act = 1 / math.sqrt(in_ch * kernel * kernel), kernel // 2, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.act else x


class MappingNetwork(nn.Module):
    """z (B, z_dim) -> w (B, w_dim); keeps a running mean of w for truncation."""

    def __init__(self, cfg: StyleGANConfig):
        super().__init__()
        dims = [cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
        self.layers = nn.Sequential(*[EqualLinear(i, o, lr_mul=0.01, act=True) for i, o in zip(dims, dims[1:])])
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        self.beta = cfg.w_avg_beta

    def forward(self, z: torch.Tensor, psi: float = 1.0, track: bool = False) -> torch.Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # normalise z onto the sphere
        w = self.layers(z)
        if track:
            self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, self.beta))
        return w if psi == 1 else self.w_avg.lerp(w, psi)  # truncation: pull w towards the mean


class ModulatedConv2d(nn.Module):
    """Conv whose input channels are scaled by a style from w (modulation), then each output channel is
    renormalised to unit expected variance (demodulation) — replaces StyleGAN1's AdaIN without its droplets."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, w_dim: int, demodulate: bool = True, up: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)  # styles start at 1: an unmodulated conv
        self.scale, self.pad = 1 / math.sqrt(in_ch * kernel * kernel), kernel // 2
        self.demodulate, self.up = demodulate, up

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        b, in_ch, _, _ = x.shape
        style = self.affine(w)  # (B, in)
        weight = self.weight[None] * self.scale * style[:, None, :, None, None]  # (B, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        h, w_ = x.shape[-2:]
        # one grouped convolution applies each sample's own weights
        out = F.conv2d(x.reshape(1, b * in_ch, h, w_), weight.reshape(-1, in_ch, *weight.shape[-2:]),
                       padding=self.pad, groups=b)
        return out.reshape(b, -1, h, w_)


class StyledLayer(nn.Module):
    """Modulated conv + per-pixel noise (learned strength, starts at 0) + bias + leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv(x, w)
        if noise is None:
            noise = torch.randn(x.shape[0], 1, *x.shape[-2:], device=x.device, dtype=x.dtype)
        x = x + self.noise_strength * noise + self.bias.view(1, -1, 1, 1)
        return F.leaky_relu(x, 0.2) * SQRT2


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, 3, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias.view(1, -1, 1, 1)


class Generator(nn.Module):
    """z (B, z_dim) -> image (B, 3, S, S). `mix_z` mixes styles (a second latent from a random layer on);
    `psi` < 1 truncates; `noise="const"` uses fixed per-layer noise buffers (reproducible pictures)."""

    def __init__(self, cfg: StyleGANConfig):
        super().__init__()
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg)
        c4 = cfg.level_channels(4)
        self.const = nn.Parameter(torch.randn(1, c4, 4, 4))
        self.layers, self.to_rgb = nn.ModuleList([StyledLayer(c4, c4, cfg.w_dim)]), nn.ModuleList([ToRGB(c4, cfg.w_dim)])
        res, ch = 4, c4
        while res < cfg.image_size:
            res *= 2
            out = cfg.level_channels(res)
            self.layers.extend([StyledLayer(ch, out, cfg.w_dim, up=True), StyledLayer(out, out, cfg.w_dim)])
            self.to_rgb.append(ToRGB(out, cfg.w_dim))
            ch = out
        for i, layer in enumerate(self.layers):  # fixed noise for noise="const"
            size = 4 * 2 ** ((i + 1) // 2)
            self.register_buffer(f"noise_const_{i}", torch.randn(1, 1, size, size))

    def styles(self, z: torch.Tensor, psi: float = 1.0, mix_z: torch.Tensor | None = None,
               cutoff: int | None = None, track: bool = False) -> torch.Tensor:
        """(B, num_ws, w_dim): w repeated per layer; from layer `cutoff` on, the w of `mix_z` (style mixing)."""
        ws = self.mapping(z, psi, track)[:, None].repeat(1, self.cfg.num_ws, 1)
        if mix_z is not None:
            ws[:, cutoff:] = self.mapping(mix_z, psi)[:, None]
        return ws

    def synthesis(self, ws: torch.Tensor, noise: str = "random") -> torch.Tensor:
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        rgb = None
        for i, layer in enumerate(self.layers):
            fixed = getattr(self, f"noise_const_{i}") if noise == "const" else None
            if fixed is not None:
                fixed = fixed.expand(ws.shape[0], -1, -1, -1)
            x = layer(x, ws[:, i], fixed)
            if i % 2 == 0:  # after the 4x4 conv and after each resolution's second conv: add this level's RGB
                level = i // 2
                y = self.to_rgb[level](x, ws[:, i + 1])
                rgb = y if rgb is None else y + F.interpolate(rgb, scale_factor=2, mode="bilinear",
                                                              align_corners=False)
        return rgb

    def forward(self, z: torch.Tensor, psi: float = 1.0, mix_z: torch.Tensor | None = None,
                cutoff: int | None = None, noise: str = "random") -> torch.Tensor:
        return self.synthesis(self.styles(z, psi, mix_z, cutoff), noise)


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs then 2x average-pool, plus a 1x1 skip; the sum scaled by 1/sqrt(2) (residual D)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3, act=True)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3, act=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(F.avg_pool2d(x, 2))
        x = F.avg_pool2d(self.conv2(self.conv1(x)), 2)
        return (x + skip) / SQRT2


class Discriminator(nn.Module):
    """image (B, 3, S, S) -> logit (B,)."""

    def __init__(self, cfg: StyleGANConfig):
        super().__init__()
        self.cfg = cfg
        res = cfg.image_size
        self.from_rgb = EqualConv2d(3, cfg.level_channels(res), 1, act=True)
        blocks = []
        while res > 4:
            blocks.append(DiscriminatorBlock(cfg.level_channels(res), cfg.level_channels(res // 2)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        c4 = cfg.level_channels(4)
        self.conv = EqualConv2d(c4 + 1, c4, 3, act=True)
        self.fc = EqualLinear(c4 * 16, c4, act=True)
        self.out = EqualLinear(c4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.from_rgb(x))
        x = self.conv(minibatch_stddev(x, self.cfg.mbstd_group))
        return self.out(self.fc(x.flatten(1))).squeeze(1)


def minibatch_stddev(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append one channel: the std over groups of samples, averaged — lets D see a collapsed batch."""
    b, c, h, w = x.shape
    g = min(group, b)
    while b % g:
        g -= 1
    y = x.reshape(g, -1, c, h, w)
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/g,)
    y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)
