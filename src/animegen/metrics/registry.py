"""Metrics registered by name: `evaluate` and `train --eval-every` look them up here.

A metric reads folders (generated images, real images) and returns named numbers; it never trains,
never writes into the folders it reads, and keeps any reference statistics in its own cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch


@dataclass(frozen=True)
class EvalContext:
    """What every metric may need; each reads only its own fields."""

    images: Path                       # folder of generated images
    real: Path | None = None           # folder of real images (reference)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 50
    num_workers: int = 0
    inception_weights: str | None = None   # FID: path to pt_inception-2015-12-05-6726825d.pth
    detector: str = "animeface"            # AFD: "animeface" (offline) or "yolo"
    detector_weights: str | None = None    # AFD with yolo: yolov8x6_animeface.pt
    cache_dir: Path | None = None          # reference statistics cache (default: user cache dir)
    seed: int = 0


MetricFn = Callable[[EvalContext], dict[str, float]]
METRICS: dict[str, MetricFn] = {}


def register(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator: make `fn` available to `animegen evaluate --metrics name`."""

    def wrap(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        return fn

    return wrap
