"""Typed configuration of the StyleGAN2 ("boss") trainer; saved in the run's config.json with kind "stylegan2"."""

from __future__ import annotations

from dataclasses import dataclass, field

from animegen.data.augment import AugmentConfig
from animegen.models.stylegan2 import StyleGANConfig
from animegen.runs.config import RunConfig, check_ranges
from animegen.runs.model_file import GANModel


@dataclass(frozen=True)
class GANOptimConfig:
    lr_g: float = 0.0025
    lr_d: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    batch_size: int = 32
    r1_gamma: float = 0.1               # NVlabs' small-resolution configs use 0.01-1; faces at 64 px: 0.1
    r1_every: int = 16                  # lazy regularisation: R1 every this many D steps
    pl_weight: float = 0.0              # path-length regularisation (NVlabs: 2 at 256+ px, off at small sizes)
    pl_every: int = 4                   # lazy: PL every this many G steps
    pl_decay: float = 0.01              # rate of the running mean of path lengths
    pl_batch_shrink: int = 2            # PL runs on batch_size / this fakes

    def __post_init__(self) -> None:
        check_ranges("optim", self, positive=("lr_g", "lr_d"), at_least_one=("batch_size", "r1_every", "pl_every"))


@dataclass(frozen=True)
class GANSampleConfig:
    every: int = 500
    num: int = 64
    psi: float = 1.0                    # truncation for grids and generation (1 = none)
    seed: int = 0


@dataclass(frozen=True)
class GANTrainConfig(RunConfig):
    kind: str = "stylegan2"
    preset: str = "boss"
    steps: int = 20_000
    model: StyleGANConfig = field(default_factory=StyleGANConfig)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(hflip=True))
    diffaugment: str = "color,translation,cutout"  # Zhao et al. 2020; "" = off
    style_mixing: float = 0.9
    ema_kimg: float = 10.0              # G's EMA half-life in thousands of images
    ema_rampup: float = 0.05            # ... but at most this share of the images seen so far
    optim: GANOptimConfig = field(default_factory=GANOptimConfig)
    sample: GANSampleConfig = field(default_factory=GANSampleConfig)

    def model_spec(self) -> GANModel:
        """What inference needs of this recipe: the model file its checkpoints carry (runs/model_file.py)."""
        return GANModel(self.model, self.preset, self.sample.psi)
