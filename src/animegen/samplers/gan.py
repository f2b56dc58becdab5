"""Images from a StyleGAN2 generator: one forward pass, seeded per image like the diffusion samplers."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from animegen.core.imagefiles import to_uint8
from animegen.core.rng import StackedRandomGenerator
from animegen.models.stylegan2 import Generator


def gan_images(G: Generator, seeds: Sequence[int], psi: float = 1.0, device: torch.device | str = "cpu"
               ) -> torch.Tensor:
    """uint8 (len(seeds), 3, S, S): image k from z drawn with seed k alone, constant noise (reproducible)."""
    z = StackedRandomGenerator(seeds, device).randn((len(seeds), G.cfg.z_dim))
    with torch.inference_mode():
        return to_uint8(G(z, psi=psi, noise="const"))


def gan_batches(G: Generator, seeds: Sequence[int], psi: float, batch_size: int,
                device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Yield uint8 batches of `gan_images` for `seeds` in order."""
    for start in range(0, len(seeds), batch_size):
        yield gan_images(G, seeds[start : start + batch_size], psi, device)


def gan_lerp_images(G: Generator, seeds_a: Sequence[int], seeds_b: Sequence[int], t: Sequence[float],
                    psi: float = 1.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (B, 3, S, S): row b part of the way, t[b] in [0, 1], from the face of seeds_a[b] to that of seeds_b[b],
    linear in w (where the mapping network makes the path perceptually even; StyleGAN's perceptual path length)."""
    t_col = torch.tensor([float(v) for v in t], device=device).view(-1, 1)
    z_a = StackedRandomGenerator(seeds_a, device).randn((len(seeds_a), G.cfg.z_dim))
    z_b = StackedRandomGenerator(seeds_b, device).randn((len(seeds_b), G.cfg.z_dim))
    with torch.inference_mode():
        w = G.mapping(z_a, psi).lerp(G.mapping(z_b, psi), t_col)
        ws = w[:, None].repeat(1, G.cfg.num_ws, 1)
        return to_uint8(G.synthesis(ws, noise="const"))
