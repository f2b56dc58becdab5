"""Typed run configuration: frozen dataclasses, built from a preset plus overrides, saved as a run's config.json.

`RunConfig` holds what every run has (steps, seed, checkpoint and log cadence, time limit, device); `TrainConfig`
(diffusion) and `GANTrainConfig` (runs/gan_config.py) add their recipes. A model is rebuilt from its saved
config alone: loading it never touches training code."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any

from animegen.core.errors import UserError
from animegen.core.names import (BF16_ALIASES, COMPILE_SETTINGS, DIST_SYNCS, DISTILL_METHODS, PRECISION_SETTINGS,
                                 TEACHER_SOLVERS)
from animegen.data.augment import AugmentConfig
from animegen.diffusion.loss import T_SAMPLINGS
from animegen.diffusion.parameterization import OBJECTIVES
from animegen.diffusion.schedules import SCHEDULES
from animegen.models.unet import UNetConfig
from animegen.runs.model_file import DiffusionModel
from animegen.runs.phema import MAX_STD
from animegen.samplers.spec import SamplerSpec


LINEAR_MIN_T = 21  # the smallest T whose linear betas (scaled by 1000/T) all stay below 1


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int = 100
    schedule: str = "linear"            # linear | cosine | sigmoid
    objective: str = "pred_noise"       # pred_noise | pred_x0 | pred_v | edm
    min_snr_gamma: float | None = None  # e.g. 5.0 (Hang et al. 2023); None = plain MSE
    t_sampling: str = "uniform"         # training timesteps: uniform in [0, T), or lognormal in sigma (EDM)
    p_mean: float = -1.2                # lognormal: ln(sigma) ~ N(p_mean, p_std^2) (EDM's values)
    p_std: float = 1.2

    def __post_init__(self) -> None:
        for name, value, choices in [("objective", self.objective, OBJECTIVES), ("schedule", self.schedule, SCHEDULES),
                                     ("t_sampling", self.t_sampling, T_SAMPLINGS)]:
            if value not in choices:
                raise UserError(f"diffusion.{name}={value!r}: choose from {', '.join(choices)}")
        check_ranges("diffusion", self, positive=("p_std",), at_least_one=("timesteps",))
        if self.schedule == "linear" and self.timesteps <= LINEAR_MIN_T - 1:
            raise UserError(f"diffusion.timesteps={self.timesteps}: the linear schedule's betas (0.02 x 1000/T at the "
                            f"end) reach 1 below T = {LINEAR_MIN_T}, which noises images to nothing; use T >= "
                            f"{LINEAR_MIN_T} or the cosine schedule")


LR_SCHEDULES = ("constant", "cosine", "linear")  # training/lr_plan.py gives them their shapes


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"                  # adam | adamw
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_schedule: str = "constant"       # constant | cosine | linear: decay to lr_floor * lr at the planned last step
    lr_floor: float = 0.01
    grad_clip: float = 1.0
    batch_size: int = 16                # global batch (summed over processes and accumulation)
    grad_accum: int = 1

    def __post_init__(self) -> None:
        check_ranges("optim", self, positive=("lr",), at_least_one=("batch_size", "grad_accum"))
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"optim.lr_schedule={self.lr_schedule!r}: choose from {', '.join(LR_SCHEDULES)}")
        if not 0.0 <= self.lr_floor <= 1.0:
            raise UserError(f"optim.lr_floor={self.lr_floor!r}: a fraction of lr, from 0 to 1")


@dataclass(frozen=True)
class EMAConfig:
    decay: float = 0.995
    every: int = 10                     # update the EMA every this many optimizer steps
    warmup: bool = True                 # ramp the decay up as the homework's ema_pytorch does
    kind: str = "homework"              # homework (decay above) | power (EDM2's, sized to the run by std)
    std: float = 0.10                   # power: relative width sigma_rel of the average (EDM2: 0.05-0.15)
    snapshot_every: int = 0             # post-hoc EMA: save the snapshot_stds profiles every this many steps (0 = off)
    snapshot_stds: tuple[float, ...] = (0.05, 0.10)  # the power-function profiles tracked for it (EDM2's two)

    def __post_init__(self) -> None:
        if self.kind not in ("homework", "power"):
            raise UserError(f"ema.kind={self.kind!r}: choose homework or power")
        if not 0.0 < self.std < MAX_STD:
            raise UserError(f"ema.std={self.std!r}: must be between 0 and {MAX_STD}")
        stds = self.snapshot_stds
        widths = isinstance(stds, (tuple, list)) and all(isinstance(s, (int, float)) and not isinstance(s, bool)
                                                         and 0.0 < s < MAX_STD for s in stds)
        if not widths or not stds or len(set(stds)) != len(stds):
            raise UserError(f"ema.snapshot_stds={stds!r}: one or more different widths between 0 and {MAX_STD}, "
                            f"e.g. [0.05,0.10]")
        check_ranges("ema", self, at_least_one=("every",), at_least_zero=("snapshot_every",))


@dataclass(frozen=True)
class ConsistencyConfig:
    """A few-step consistency student (`animegen distill`): distilled from the teacher's ODE solves
    (training/trajectory_distill.py) or consistency-tuned on data (ECT, diffusion/consistency.py); off for every
    preset."""

    enabled: bool = False
    method: str = "trajectory"          # trajectory: to the end of the teacher's ODE solve; ect: tuning on data
    teacher: str = ""                   # the checkpoint distilled ("shipped": the shipped model); read on resume
    teacher_solver: str = "unipc"       # trajectory: the ODE solver of the teacher's solve, unipc | dpmpp
    teacher_steps: int = 10             # trajectory: its steps (UniPC 10 ~ DPM-Solver++ 20 at half the cost)
    reuse: int = 2                      # trajectory: passes over each pool of teacher solves (docs/q2-ddpm-vs-ddim.md)
    stages: int = 6                     # ect: the gap t - r halves this many times over the run (stage 0: r = 0)
    p_mean: float = -1.1                # ect: t from ln(sigma) ~ N(p_mean, p_std^2) (ECT's values)
    p_std: float = 2.0
    huber_c: float = 0.03               # pseudo-Huber constant of the distance, in [-1, 1] pixel units
    adversarial: float = 0.0            # trajectory: a discriminator's gradient at this share of the distance's
                                        # (training/adversarial.py; needs --data); 0 = off
    teacher_guidance: float | None = None  # trajectory: the teacher solves guided by the guide that ships with it
                                        # at this weight; None = as `generate` samples it (its own), 1 = alone

    def __post_init__(self) -> None:
        for name, value, choices in [("method", self.method, DISTILL_METHODS),
                                     ("teacher_solver", self.teacher_solver, TEACHER_SOLVERS)]:
            if value not in choices:
                raise UserError(f"consistency.{name}={value!r}: choose from {', '.join(choices)}")
        if not isinstance(self.adversarial, (int, float)) or self.adversarial < 0:
            raise UserError(f"consistency.adversarial={self.adversarial!r}: must be a number, at least 0")
        check_ranges("consistency", self, positive=("p_std", "huber_c"),
                     at_least_one=("stages", "teacher_steps", "reuse"))


@dataclass(frozen=True)
class SampleConfig:
    """The sample grids written during training, and how the model samples by default (`spec`)."""

    every: int = 1000                   # write a sample grid every this many steps (0 = never)
    num: int = 64
    seed: int = 0
    sampler: str = "ddim"
    steps: int = 25
    eta: float = 0.0                    # ddim / dpmpp noise (0 = ODE, 1 = SDE)
    threshold: str = "static"           # x0_pred into [-1, 1]: static clamp or dynamic (Imagen)
    spacing: str = "uniform"

    def __post_init__(self) -> None:
        try:  # refused when the config is built, not at the first grid 1000 steps into training
            self.spec
        except UserError as err:
            raise UserError(f"sample: {err}") from None

    @property
    def spec(self) -> SamplerSpec:
        """The model's own sampler: what generate, compare, grids and evaluation use unless told otherwise."""
        steps = None if self.sampler == "ddpm" else self.steps
        return SamplerSpec(self.sampler, steps, self.eta, self.spacing, self.threshold)


@dataclass(frozen=True)
class RunConfig:
    """What every run has, diffusion or GAN: its length, seed, and the cadence of logs, checkpoints and scores."""

    preset: str = "simple"
    steps: int = 10_000
    seed: int = 0
    save_every: int = 1000              # checkpoint every this many steps
    keep_checkpoints: int = 3
    log_every: int = 50
    eval_every: int = 0                 # score SWD/AFD (FID with weights) on a small sample; 0 = never
    eval_num: int = 256
    max_minutes: float | None = None    # stop (and save) after this much training wall time
    save_minutes: float | None = 10.0   # also checkpoint when this much time passed since the last save
    tensorboard: bool = False           # also log scalars and grids for TensorBoard (run/tensorboard/)
    device: str = "auto"

    def __post_init__(self) -> None:
        check_ranges("", self, positive=("max_minutes", "save_minutes"),
                     at_least_one=("steps", "save_every", "keep_checkpoints", "log_every", "eval_num"),
                     at_least_zero=("eval_every", "seed"))


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    """A diffusion run: the UNet, the noise schedule and objective, augmentation, optimizer, EMA, sampling."""

    model: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    precision: str = "auto"             # auto | bf16 | fp16 | fp32 (core/precision.py); saved as `bf16` before
    compile: str = "auto"               # auto | on | off: inductor and/or a CUDA graph (training/compile_plan.py)
    dist_sync: str = "auto"             # auto | ddp | allreduce: how gradients meet over processes (compile_plan)
    channels_last: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, choices in [("precision", PRECISION_SETTINGS), ("compile", COMPILE_SETTINGS),
                              ("dist_sync", DIST_SYNCS)]:
            if getattr(self, name) not in choices:
                raise UserError(f"{name}={getattr(self, name)!r}: choose from {', '.join(choices)}")

    def model_spec(self) -> DiffusionModel:
        """What inference needs of this recipe: the model file its checkpoints carry (runs/model_file.py)."""
        d, c = self.diffusion, self.consistency
        return DiffusionModel(self.model, d.schedule, d.timesteps, d.objective, self.sample.spec, self.preset,
                              (c.teacher or None) if c.enabled else None)


def check_ranges(section: str, cfg: Any, positive: tuple[str, ...] = (), at_least_one: tuple[str, ...] = (),
                 at_least_zero: tuple[str, ...] = ()) -> None:
    """Refuse out-of-range numbers when a config is built (from flags, --set or a saved run alike)."""
    prefix = f"{section}." if section else ""
    rules = [(positive, lambda v: v > 0, "above 0", (int, float)), (at_least_one, lambda v: v >= 1, "at least 1", int),
             (at_least_zero, lambda v: v >= 0, "at least 0", int)]
    for names, ok, words, kind in rules:
        for name in names:
            value = getattr(cfg, name)
            if value is None and name in ("max_minutes", "save_minutes"):
                continue
            if isinstance(value, bool) or not isinstance(value, kind) or not ok(value):
                raise UserError(f"{prefix}{name}={value!r}: must be {'a whole number ' if kind is int else ''}{words}")


def to_dict(cfg: Any) -> dict:
    """Nested plain dict (JSON-ready) of a config dataclass."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, data: dict) -> Any:
    """Rebuild a (nested) config dataclass from `to_dict` output; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if "precision" in names and "bf16" in data:  # configs saved before --precision (the shipped models' too)
        data = {**{k: v for k, v in data.items() if k != "bf16"}, "precision": legacy_bf16(data["bf16"])}
    unknown = set(data) - names
    if unknown:
        raise UserError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value)
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def with_overrides(cfg: Any, overrides: dict[str, Any]) -> Any:
    """Apply dotted overrides like {"model.dim": 32, "optim.lr": 2e-4} to a config."""
    data = to_dict(cfg)
    if "bf16" in overrides and "precision" in data:  # --bf16 / bf16= / --set bf16=: the older name of precision
        overrides = dict(overrides)
        bf16 = legacy_bf16(overrides.pop("bf16"))
        if overrides.setdefault("precision", bf16) != bf16:
            raise UserError(f"bf16 and precision disagree ({bf16} vs {overrides['precision']}): give --precision "
                            f"alone")
    for dotted, value in overrides.items():
        node, parts = data, dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise UserError(f"--set {dotted}: {part!r} is not a config section")
            node = node[part]
        if parts[-1] not in node:
            raise UserError(f"--set {dotted}: no such setting (see `animegen train --dry-run`)")
        node[parts[-1]] = value
    return from_dict(type(cfg), data)


def legacy_bf16(value: Any) -> Any:
    """The older bf16 setting (auto | on | off) as a precision (auto | bf16 | fp32); other values pass through to
    be refused by the config's own check."""
    return BF16_ALIASES.get(value, value) if isinstance(value, str) else value


def parse_override(text: str) -> tuple[str, Any]:
    """'model.dim_mults=[1,2,4]' -> ('model.dim_mults', [1, 2, 4]); values are JSON, else plain strings."""
    if "=" not in text:
        raise UserError(f"--set {text}: expected KEY=VALUE, e.g. --set model.dim=32")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value
