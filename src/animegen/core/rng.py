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
