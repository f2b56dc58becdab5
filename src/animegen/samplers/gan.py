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
