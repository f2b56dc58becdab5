"""A model file apart from the recipe: `model.json`, beside a checkpoint's weights, is all inference reads.

nanoGPT keeps `model_args` apart from its training config; here a checkpoint folder holds `model.json` (the
network, what the denoiser needs of the noise schedule, the image shape, how the model samples by default, and
whose student it is), and the run's `config.json` stays the recipe that only training and --resume read. A
training-only setting can then change name without breaking a single saved model.

Checkpoints written before model.json existed (format "animegen-checkpoint-v1": the whole recipe in config.json),
the models shipped in earlier releases among them, load through `migrate_v1`, the one migration, which reads
that layout as it was and nothing newer.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animegen.core.atomic import write_json
from animegen.core.errors import UserError
from animegen.models.stylegan2 import StyleGANConfig
from animegen.models.unet import UNetConfig
from animegen.samplers.spec import SamplerSpec

MODEL_FILE = "model.json"
MODEL_FORMAT = "animegen-model-v1"
STUDENT_DIR = "student"  # a model folder may carry its few-step student here (export --student; the shipped model)
GUIDE_DIR = "guide"      # ... and the weaker version of itself that guides it (export --guide; diffusion/guidance.py)
V1_CHECKPOINT = "animegen-checkpoint-v1"  # the layout before model.json: config.json held everything


@dataclass(frozen=True)
class DiffusionModel:
    """A UNet denoiser: the network, its schedule and objective, its default sampler, and (for a few-step student
    of `animegen distill`) the name of its teacher."""

    network: UNetConfig
    schedule: str
    timesteps: int
    objective: str
    sample: SamplerSpec
    preset: str = ""
    teacher: str | None = None  # a student's teacher ("shipped" or a checkpoint folder); None: not a student
    guidance: float = 1.0       # the autoguidance weight it samples with when a guide ships beside it (1: none)

    kind = "diffusion"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.network.channels, self.network.image_size, self.network.image_size)

    @property
    def is_student(self) -> bool:
        return self.teacher is not None


@dataclass(frozen=True)
class GANModel:
    """A StyleGAN2 generator."""

    network: StyleGANConfig
    preset: str = "boss"
    psi: float = 1.0  # the truncation its grids used

    kind = "stylegan2"
    is_student = False

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.network.image_size, self.network.image_size)


ModelSpec = DiffusionModel | GANModel


def to_json(model: ModelSpec) -> dict:
    """The model file's contents (JSON-ready)."""
    data = {"format": MODEL_FORMAT, "kind": model.kind, **dataclasses.asdict(model)}
    data["image_shape"] = list(model.image_shape)  # for readers of the file; rebuilt from the network on load
    return data


def from_json(data: Any, source: Path) -> ModelSpec:
    """A model.json's contents -> its model; `source` names the file in errors."""
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{source}: not an animegen model file (format {found!r}; this animegen reads "
                        f"{MODEL_FORMAT}); a newer animegen may have written it")
    try:
        fields = {k: v for k, v in data.items() if k not in ("format", "kind", "image_shape")}
        if data.get("kind") == "stylegan2":
            return GANModel(**{**fields, "network": _build(StyleGANConfig, fields["network"])})
        return DiffusionModel(**{**fields, "network": _build(UNetConfig, fields["network"]),
                                 "sample": SamplerSpec(**fields["sample"])})
    except UserError as err:
        raise UserError(f"{source}: {err}") from None
    except (TypeError, KeyError, ValueError, AttributeError) as err:
        raise UserError(f"{source}: invalid model file ({err}); restore it from the run's checkpoint") from None


def _build(cls: type, data: dict) -> Any:
    """A network config from its JSON dict (lists back to tuples, unknown keys refused by the dataclass)."""
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def write_model_file(folder: Path, model: ModelSpec) -> None:
    write_json(folder / MODEL_FILE, to_json(model))


def read_model_file(folder: Path) -> ModelSpec:
    """The model of checkpoint folder `folder`: its model.json, or a v1 checkpoint's config.json migrated."""
    new, old = folder / MODEL_FILE, folder / "config.json"
    source = new if new.is_file() else old
    try:
        data = json.loads(source.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{source}: unreadable ({err}); the checkpoint is damaged") from None
    if source == new:
        return from_json(data, source)
    if not isinstance(data, dict) or data.get("format") != V1_CHECKPOINT:
        found = data.get("format") if isinstance(data, dict) else None
        raise UserError(f"{source}: not an animegen checkpoint (format {found!r})")
    return migrate_v1(data, source)


def migrate_v1(config: dict, source: Path) -> ModelSpec:
    """The model of a v1 checkpoint from its config.json, read as that layout wrote it (sections `model`,
    `diffusion`, `sample`, `consistency`; `kind` "stylegan2" for a GAN), whatever the recipe has become since."""
    try:
        if config.get("kind") == "stylegan2":
            return GANModel(_build(StyleGANConfig, config["model"]), config.get("preset", "boss"),
                            float(config.get("sample", {}).get("psi", 1.0)))
        diffusion, sample = config["diffusion"], config.get("sample", {})
        name = sample.get("sampler", "ddim")
        spec = SamplerSpec(name, None if name == "ddpm" else int(sample.get("steps", 25)),
                           float(sample.get("eta", 0.0)), sample.get("spacing", "uniform"),
                           sample.get("threshold", "static"))
        consistency = config.get("consistency", {})
        teacher = consistency.get("teacher") or None if consistency.get("enabled") else None
        return DiffusionModel(_build(UNetConfig, config["model"]), diffusion["schedule"], int(diffusion["timesteps"]),
                              diffusion["objective"], spec, config.get("preset", ""), teacher)
    except UserError as err:
        raise UserError(f"{source}: {err}") from None
    except (TypeError, KeyError, ValueError, AttributeError) as err:
        raise UserError(f"{source}: invalid config ({err}); fix or restore this file") from None
