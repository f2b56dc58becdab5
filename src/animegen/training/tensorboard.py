"""Optional TensorBoard logging (`--log tensorboard`): the same rows as log.jsonl, plus the sample grids.

torch.utils.tensorboard needs the `tensorboard` package (`pip install 'animegen[tensorboard]'`); without it the
run is refused in one line before any work, instead of training an hour with no log the user asked for.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from animegen.core.errors import UserError


def require_tensorboard() -> None:
    if importlib.util.find_spec("tensorboard") is None:
        raise UserError("--log tensorboard needs the tensorboard package: pip install 'animegen[tensorboard]' "
                        "(or leave out --log; log.jsonl and loss.png are always written)")


class TensorBoardLog:
    """Scalars and images under run_dir/tensorboard, one event file per process start."""

    def __init__(self, run_dir: Path):
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def scalars(self, row: dict) -> None:
        """A log row {"step": N, "loss": ..., "lr": ..., "img_per_s": ..., "eval": {...}} as scalars."""
        step = row["step"]
        for key, value in row.items():
            if key == "eval":
                for name, score in value.items():
                    self.writer.add_scalar(f"eval/{name}", score, step)
            elif key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(f"train/{key}", value, step)
        self.writer.flush()

    def grid(self, step: int, grid: torch.Tensor) -> None:
        """uint8 (3, H, W) sample grid."""
        self.writer.add_image("samples", grid, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
