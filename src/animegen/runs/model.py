"""A trained model ready to draw faces: a diffusion denoiser or a StyleGAN2 generator, loaded once per command.

`TrainedModel.load(path)` reads a run directory or checkpoint folder (None: the model shipped with animegen);
`model.images(seeds, spec)` yields uint8 batches in which image k depends on seeds[k] alone, at any batch size.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch

from animegen.assets import shipped_model
from animegen.core.device import pick_device
from animegen.core.precision import Precision, device_precision
from animegen.diffusion.parameterization import Denoiser
from animegen.models.stylegan2 import Generator
from animegen.models.unet import UNetConfig
from animegen.runs.config import TrainConfig
from animegen.runs.gan_config import GANTrainConfig
from animegen.runs.load import checkpoint_kind, load_denoiser, load_generator
from animegen.samplers.compiled_net import compiled, plan_sampling_compile
from animegen.samplers.gan import gan_batches
from animegen.samplers.run import sample_images
from animegen.samplers.spec import SamplerSpec

log = logging.getLogger(__name__)

# activations of the first UNet level per sampling batch (batch x dim x (H/patch)^2) that run fastest on a CPU:
# larger batches spill the cache (BENCHMARKS.md: 64 px, dim 16: 80 img-evals/s at batch 64, 46 at 256)
BATCH_ACTIVATIONS = 64 * 16 * 64 * 64
LARGE_BATCH = 250  # on a GPU, and for StyleGAN2 (whose grouped convolutions want big batches on a CPU too)


def default_batch_size(model_cfg: UNetConfig) -> int:
    """Sampling batch for a UNet config: a power of two in [16, 256] that keeps the first level in cache."""
    pixels = (model_cfg.image_size // model_cfg.patch_size) ** 2
    fit = max(1, BATCH_ACTIVATIONS // (model_cfg.dim * pixels))
    return min(256, max(16, 1 << (fit.bit_length() - 1)))


@dataclass
class TrainedModel:
    """kind "diffusion" (net is a Denoiser) or "stylegan2" (net is a Generator), its config and checkpoint."""

    kind: str
    net: Denoiser | Generator
    config: TrainConfig | GANTrainConfig
    checkpoint: Path
    device: torch.device
    precision: Precision = Precision(None, False, "fp32")  # the UNet samples under its autocast
    compile: str = "off"  # auto | on | off: torch.compile the UNet for generations long enough to repay it
    _compiled: Denoiser | None = field(default=None, repr=False)  # made once, on the first generation that wants it
    _told: bool = field(default=False, repr=False)  # the precision line is said once, when sampling starts

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str | torch.device = "auto",
             precision: str = "auto", compile: str = "off") -> "TrainedModel":
        """A run directory or checkpoint folder (its EMA weights); None loads the model shipped with animegen.
        precision auto | bf16 | fp16 | fp32 (or the older on | off): auto samples in what the device computes
        natively (core/precision.py: bf16 on sm80+ GPUs and AVX512-BF16/AMX CPUs, fp16 on sm70/sm75 GPUs).
        compile auto | on | off: auto compiles the UNet for generations long enough to repay it
        (samplers/compiled_net.py)."""
        source = shipped_model() if path is None else path
        device = pick_device(str(device))
        if checkpoint_kind(source) == "stylegan2":
            G, cfg, ckpt = load_generator(source, device)
            return cls("stylegan2", G, cfg, ckpt, device)
        denoiser, cfg, ckpt = load_denoiser(source, device=device)
        return cls("diffusion", denoiser, cfg, ckpt, device, device_precision(precision, device), compile)

    @property
    def spec(self) -> SamplerSpec | None:
        """The sampler the model was trained to preview with (None for a GAN, which needs none)."""
        return self.config.sample.spec if self.kind == "diffusion" else None

    def default_batch_size(self) -> int:
        if self.kind == "stylegan2" or self.device.type == "cuda":
            return LARGE_BATCH
        return default_batch_size(self.config.model)

    def images(self, seeds: Sequence[int], spec: SamplerSpec | None = None, batch_size: int | None = None,
               psi: float = 1.0) -> Iterator[torch.Tensor]:
        """uint8 (b, 3, H, W) batches for `seeds` in order; spec None = the model's own sampler; psi: StyleGAN2
        truncation (1 = none)."""
        seeds = list(seeds)
        batch_size = batch_size or self.default_batch_size()
        if self.kind == "stylegan2":
            return gan_batches(self.net, seeds, psi, batch_size, self.device)
        if not self._told:  # here, not at load: a refused command still says one line only
            log.info("sampling on %s in %s", self.device, self.precision.reason)
            self._told = True
        spec = (spec or self.spec).resolve(self.net.timesteps)
        calls = -(-len(seeds) // batch_size) * spec.nfe
        on, note = plan_sampling_compile(self.compile, self.device, calls * min(batch_size, len(seeds)))
        if note:
            log.info(note)
        if on and self._compiled is None:
            self._compiled = compiled(self.net)
        denoiser = self._compiled if on else self.net
        return sample_images(denoiser, seeds, spec, batch_size, self.device, self.precision.dtype,
                             fixed_shape=on)
