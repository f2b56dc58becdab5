"""One random generator per image, so image k is the same picture whatever the batch size (EDM's idea)."""

from __future__ import annotations

from typing import Sequence

import torch


class StackedRandomGenerator:
    """A batch of independent torch.Generators, one per image seed.

    `randn(shape)` with shape (B, ...) draws row b from generator b only, so a row's noise depends on
    its seed alone, never on which other images share the batch.
    """

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.generators = [torch.Generator(self.device).manual_seed(int(s) % (1 << 63)) for s in seeds]

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(B, *shape[1:]) standard normal, row b from seed b."""
        if shape[0] != len(self.generators):
            raise ValueError(f"batch {shape[0]} != number of seeds {len(self.generators)}")
        return torch.stack(
            [torch.randn(tuple(shape[1:]), generator=g, device=self.device, dtype=dtype) for g in self.generators]
        )

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like `x`, row b from seed b."""
        return self.randn(x.shape, dtype=x.dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation row by row: a, b (B, ...) and t (B,) in [0, 1]; t = 0 gives a, t = 1 gives b.

    Two independent Gaussian draws are nearly orthogonal, and a straight line between them passes through
    vectors of smaller norm than any draw (a blurred, washed-out face); the arc keeps the norm of a draw."""
    flat_a, flat_b = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    cos = (flat_a * flat_b).sum(1) / (flat_a.norm(dim=1) * flat_b.norm(dim=1)).clamp_min(1e-12)
    theta = cos.clamp(-1, 1).acos()
    t = t.to(theta)
    sin = theta.sin()
    near = sin < 1e-6  # (anti)parallel rows: the arc is undefined there, the line is as good
    w_a = torch.where(near, 1 - t, ((1 - t) * theta).sin() / sin.where(~near, torch.ones_like(sin)))
    w_b = torch.where(near, t, (t * theta).sin() / sin.where(~near, torch.ones_like(sin)))
    shape = (-1,) + (1,) * (a.dim() - 1)
    return (w_a.view(shape) * a.double() + w_b.view(shape) * b.double()).to(a.dtype)


class SlerpRandomGenerator:
    """Draws part of the way from one seed's to another's: row b of every draw is the spherical interpolation,
    at t[b], of what seeds_a[b] and seeds_b[b] would draw (StackedRandomGenerator's rows).

    A sampler that takes its starting noise x_T and every later noise from here moves its picture smoothly
    from seed a's face (t = 0, exactly) to seed b's (t = 1, exactly), stochastic samplers included."""

    def __init__(self, seeds_a: Sequence[int], seeds_b: Sequence[int], t: Sequence[float],
                 device: torch.device | str = "cpu"):
        if not len(seeds_a) == len(seeds_b) == len(t):
            raise ValueError(f"{len(seeds_a)} seeds a, {len(seeds_b)} seeds b and {len(t)} fractions differ")
        self.a = StackedRandomGenerator(seeds_a, device)
        self.b = StackedRandomGenerator(seeds_b, device)
        self.t = torch.tensor([float(v) for v in t], dtype=torch.float64)

    def randn(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(B, *shape[1:]): row b between seed a's and seed b's draw, at t[b]."""
        return slerp(self.a.randn(shape, dtype), self.b.randn(shape, dtype), self.t)

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return self.randn(x.shape, dtype=x.dtype)
