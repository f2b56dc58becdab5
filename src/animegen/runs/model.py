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

from animegen.core.device import pick_device
from animegen.core.errors import UserError
from animegen.core.limits import MAX_GUIDANCE
from animegen.core.precision import Precision, device_precision
from animegen.diffusion.guidance import GuidedDenoiser, check_guide
from animegen.diffusion.parameterization import Denoiser
from animegen.models.stylegan2 import Generator
from animegen.models.unet import UNetConfig
from animegen.runs.checkpoint import is_model_folder
from animegen.runs.load import load_guide, load_model
from animegen.runs.model_file import GUIDE_DIR, STUDENT_DIR, GANModel, ModelSpec
from animegen.samplers.compiled_net import compiled, plan_sampling_compile
from animegen.samplers.gan import gan_batches
from animegen.samplers.run import sample_images
from animegen.samplers.spec import SamplerSpec, choose
from animegen.samplers.table import SAMPLERS

log = logging.getLogger(__name__)

# activations of the first UNet level per sampling batch (batch x dim x (H/patch)^2) that run fastest on a CPU:
# larger batches spill the cache (BENCHMARKS.md: 64 px, dim 16: 80 img-evals/s at batch 64, 46 at 256)
BATCH_ACTIVATIONS = 64 * 16 * 64 * 64
LARGE_BATCH = 250  # on a GPU, and for StyleGAN2 (whose grouped convolutions want big batches on a CPU too)
DEFAULT_GUIDANCE = 2.0  # autoguidance's weight when a guide is named without one (EDM2 found 2-3 best)


def default_batch_size(model_cfg: UNetConfig) -> int:
    """Sampling batch for a UNet config: a power of two in [16, 256] that keeps the first level in cache."""
    pixels = (model_cfg.image_size // model_cfg.patch_size) ** 2
    fit = max(1, BATCH_ACTIVATIONS // (model_cfg.dim * pixels))
    return min(256, max(16, 1 << (fit.bit_length() - 1)))


@dataclass
class TrainedModel:
    """kind "diffusion" (net is a Denoiser) or "stylegan2" (net is a Generator), its model file and folder."""

    kind: str
    net: Denoiser | Generator
    config: ModelSpec  # its model file (runs/model_file.py): network, schedule, default sampler
    checkpoint: Path
    device: torch.device
    precision: Precision = Precision(None, False, "fp32")  # the UNet samples under its autocast
    compile: str = "off"  # auto | on | off: torch.compile the UNet for generations long enough to repay it
    _compiled: Denoiser | None = field(default=None, repr=False)  # made once, on the first generation that wants it
    _student: TrainedModel | None = field(default=None, repr=False)
    _precision_setting: str = field(default="auto", repr=False)
    guide: Denoiser | None = field(default=None, repr=False)  # autoguidance's weaker model (diffusion/guidance.py)
    guide_name: str = ""                                        # what it is, for logs and reports
    guidance: float = 1.0                                       # its weight: 1 samples the model alone
    _guided: GuidedDenoiser | None = field(default=None, repr=False)
    _told: bool = field(default=False, repr=False)  # the precision line is said once, when sampling starts

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str | torch.device = "auto",
             precision: str = "auto", compile: str = "auto") -> "TrainedModel":
        """A run directory or checkpoint folder (its EMA weights); None loads the model shipped with animegen.
        precision auto | bf16 | fp16 | fp32 (or the older on | off): auto samples in what the device computes
        natively (core/precision.py: bf16 on sm80+ GPUs and AVX512-BF16/AMX CPUs, fp16 on sm70/sm75 GPUs).
        compile auto | on | off: auto compiles the UNet for generations long enough to repay it
        (samplers/compiled_net.py)."""
        device = pick_device(str(device))
        net, model, ckpt = load_model(path, device=device)
        if isinstance(model, GANModel):
            return cls("stylegan2", net, model, ckpt, device)
        loaded = cls("diffusion", net, model, ckpt, device, device_precision(precision, device), compile,
                     _precision_setting=precision)
        if model.guidance != 1.0 and is_model_folder(ckpt / GUIDE_DIR):  # a guide ships with it: sample guided
            loaded.with_guide(ckpt / GUIDE_DIR, model.guidance)
        return loaded

    def with_guide(self, guide: str | os.PathLike | None, weight: float | None = None) -> TrainedModel:
        """Sample with autoguidance: `guide` (a checkpoint or run, a snapshot file, or a name in this model's run:
        runs/load.py load_guide) at `weight` (> 1 pushes away from it; 1 is the model alone). guide None keeps the
        guide it has (the one that ships with it) and changes only the weight."""
        if self.kind != "diffusion":
            raise UserError(f"{self.checkpoint}: a StyleGAN2 draws in one pass; autoguidance guides diffusion models")
        if weight is not None and not (isinstance(weight, (int, float)) and 1.0 <= weight <= MAX_GUIDANCE):
            raise UserError(f"guidance weight {weight!r}: must be from 1 (none) to {MAX_GUIDANCE:g}")
        if guide is not None:
            loaded, name = load_guide(guide, self.config, self.checkpoint, self.device)
            check_guide(self.net, loaded)  # before anything changes: a refused guide leaves the model as it was
            self.guide, self.guide_name = loaded, name
            self.guidance = DEFAULT_GUIDANCE if weight is None else float(weight)
        elif weight is not None:
            if self.guide is None and weight != 1.0:
                raise UserError(f"{self.checkpoint}: no guide ships with this model; name one with --guide (an "
                                f"earlier checkpoint or snapshot of its run, or a smaller model)")
            self.guidance = float(weight)
        self._guided = None if self.guide is None or self.guidance == 1.0 else \
            GuidedDenoiser(self.net, self.guide, self.guidance)
        self._compiled = None
        return self

    @property
    def denoiser(self) -> Denoiser:
        """What samplers evaluate: the network, guided when a guide and a weight other than 1 are set."""
        return self._guided if self._guided is not None else self.net

    def evaluations(self, spec: SamplerSpec) -> float:
        """Network evaluations per image with `spec`: the guide's count too, as far as generations so far used it
        (all of a sampler's steps unless an interval leaves some out)."""
        if self._guided is None:
            return float(spec.nfe)
        main, guide = self._guided.calls
        return spec.nfe * (1 + (guide / main if main else 1.0))

    @property
    def spec(self) -> SamplerSpec | None:
        """Its own sampler, from its model file (None for a GAN, which needs none)."""
        return self.config.sample if self.kind == "diffusion" else None

    def student(self) -> TrainedModel | None:
        """The few-step student that ships with this model (its student/ folder), or one given by `with_student`;
        loaded once, with this model's device and settings."""
        if self._student is None and is_model_folder(self.checkpoint / STUDENT_DIR):
            self._student = type(self).load(self.checkpoint / STUDENT_DIR, self.device, self._precision_setting,
                                            self.compile)
        return self._student

    def with_student(self, student: TrainedModel | None) -> TrainedModel:
        """This model with `student` standing in for samplers that need one (None: keep its own)."""
        if student is not None:
            self._student = student
        return self

    def runner(self, name: str) -> TrainedModel:
        """The model that runs sampler `name`: itself, or for a sampler that needs a student (the samplers' table
        says which) its student; refused in one line where none ships with it. The one home of that rule."""
        if self.kind != "diffusion" or not SAMPLERS[name].needs_student or self.config.is_student:
            return self
        student = self.student()
        if student is None:
            raise UserError(f"{self.checkpoint}: the {name} sampler needs a few-step student of this model, and none "
                            f"ships with it: distill one (animegen distill --checkpoint {self.checkpoint}) and pass "
                            f"its run as --checkpoint (or export both: animegen export --student)")
        return student

    def sampler_for(self, sampler: str | None = None, steps: int | None = None, eta: float | None = None,
                    spacing: str | None = None, threshold: str | None = None
                    ) -> tuple[TrainedModel, SamplerSpec | None]:
        """(the model that runs it, the spec resolved for that model) for what a user asked, as `generate
        --sampler ...` resolves it: what is left out is the running model's own. A GAN has no sampler (None)."""
        if self.kind != "diffusion":
            return self, None
        model = self.runner(sampler or self.spec.name)  # what is left out is the student's own if one stands in
        spec = choose(model.spec, sampler, steps, eta, spacing, threshold)
        return model, spec.resolve(model.net.timesteps)

    def default_batch_size(self) -> int:
        if self.kind == "stylegan2" or self.device.type == "cuda":
            return LARGE_BATCH
        return default_batch_size(self.config.network)

    def images(self, seeds: Sequence[int], spec: SamplerSpec | None = None, batch_size: int | None = None,
               psi: float = 1.0) -> Iterator[torch.Tensor]:
        """uint8 (b, 3, H, W) batches for `seeds` in order; spec: resolved for this model (`sampler_for`), None
        = its own sampler; psi: StyleGAN2 truncation (1 = none)."""
        seeds = list(seeds)
        batch_size = batch_size or self.default_batch_size()
        if self.kind == "stylegan2":
            return gan_batches(self.net, seeds, psi, batch_size, self.device)
        if not self._told:  # here, not at load: a refused command still says one line only
            log.info("sampling on %s in %s", self.device, self.precision.reason)
            self._told = True
        spec = spec or self.spec.resolve(self.net.timesteps)
        calls = -(-len(seeds) // batch_size) * self.evaluations(spec)
        on, note = plan_sampling_compile(self.compile, self.device, calls * min(batch_size, len(seeds)))
        if note:
            log.info(note)
        if on and self._compiled is None:
            self._compiled = compiled(self.denoiser)
        denoiser = self._compiled if on else self.denoiser
        return sample_images(denoiser, seeds, spec, batch_size, self.device, self.precision.dtype,
                             fixed_shape=on)
