"""How to sample, as one validated value: which sampler, how many steps, its noise, spacing and thresholding.

A `SamplerSpec` is checked when it is built and resolved once, against the model's T, by whoever chose it (the
model's `sampler_for`, the training grids); below that nothing re-defaults it, and `sample_batch` refuses a spec
that was not resolved for its model. Which options each sampler reads comes from the samplers' table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from animegen.core.errors import UserError
from animegen.core.names import SPACINGS, THRESHOLDS
from animegen.samplers.table import SAMPLERS


@dataclass(frozen=True)
class SamplerSpec:
    """name: a key of the samplers' table; steps: sampler steps (None for one that runs all T); eta: 0 = ODE
    (deterministic) .. 1 = SDE (DDPM-like noise); spacing: which timesteps a few-step sampler visits; threshold:
    how each x0 prediction is kept in [-1, 1]. `timesteps`: the model's T once resolved (`resolve`)."""

    name: str = "ddim"
    steps: int | None = 25
    eta: float = 0.0
    spacing: str = "uniform"
    threshold: str = "static"
    timesteps: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.name not in SAMPLERS:
            raise UserError(f"unknown sampler {self.name!r}; choose from {', '.join(SAMPLERS)}")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or self.steps < 1):
            raise UserError(f"sampling steps must be a whole number >= 1, got {self.steps!r}")
        if isinstance(self.eta, bool) or not isinstance(self.eta, (int, float)) or not 0.0 <= self.eta <= 1.0:
            raise UserError(f"eta must be from 0 (deterministic) to 1 (DDPM-like noise), got {self.eta!r}")
        if self.spacing not in SPACINGS:
            raise UserError(f"unknown spacing {self.spacing!r}; choose from {', '.join(SPACINGS)}")
        if self.threshold not in THRESHOLDS:
            raise UserError(f"unknown threshold {self.threshold!r}; choose from {', '.join(THRESHOLDS)}")

    @property
    def info(self):
        """The samplers' table entry (samplers/table.py SamplerInfo)."""
        return SAMPLERS[self.name]

    def resolve(self, timesteps: int) -> SamplerSpec:
        """This spec for a model with T = `timesteps`: a sampler that runs all T steps takes them (another count
        is refused); the others need 1 <= steps <= T."""
        if self.timesteps == timesteps:
            return self
        if self.info.all_steps:
            if self.steps not in (None, timesteps):
                raise UserError(f"{self.name} runs all T = {timesteps} steps of this model; drop the step count "
                                f"or use ddim/dpmpp for {self.steps} steps")
            return dataclasses.replace(self, steps=timesteps, eta=0.0, spacing="uniform", timesteps=timesteps)
        if self.steps is None:
            raise UserError(f"{self.name} needs a step count, e.g. {self.name}:20")
        if self.steps > timesteps:
            raise UserError(f"{self.name} with {self.steps} steps: this model has only T = {timesteps}; "
                            f"choose 1 to {timesteps}")
        return dataclasses.replace(self, timesteps=timesteps)

    @property
    def nfe(self) -> int:
        """Network evaluations per image (after `resolve`)."""
        return int(self.steps or 0) * self.info.evals_per_step

    @property
    def variant(self) -> str:
        """The sampler and its non-default options, e.g. 'ddim eta=1': one line in the NFE plot."""
        return " ".join([self.name, *self._options("=")])

    @property
    def label(self) -> str:
        """A folder-safe name, e.g. 'ddim-50' or 'ddim-50-eta1-trailing-dynamic'."""
        return "-".join([self.name, str(self.steps), *self._options("")])

    def _options(self, eta_sep: str) -> list[str]:
        default = SamplerSpec(self.name)
        return ([f"eta{eta_sep}{self.eta:g}"] if self.eta else []) + (
            [self.spacing] if self.spacing != default.spacing else []) + (
            [self.threshold] if self.threshold != default.threshold else [])


def choose(model: SamplerSpec, name: str | None = None, steps: int | None = None, eta: float | None = None,
           spacing: str | None = None, threshold: str | None = None) -> SamplerSpec:
    """The spec a command runs, from the model's own (its model file's `sample`) and what the user gave.

    No sampler named: the model's spec with the given fields changed. A sampler named: that sampler fresh (eta 0,
    uniform spacing) at the model's step count and thresholding, with the given fields changed."""
    given = {k: v for k, v in {"steps": steps, "eta": eta, "spacing": spacing, "threshold": threshold}.items()
             if v is not None}
    if name is not None and name not in SAMPLERS:
        raise UserError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    ignored = [k for k in given if k not in (*SAMPLERS[name or model.name].options, "steps", "threshold")]
    if ignored:  # the step count of a sampler that runs all T steps is checked against T in `resolve`
        raise UserError(f"{name or model.name} does not use {' or '.join(ignored)}")
    if name is None:
        return dataclasses.replace(model, timesteps=None, **given)
    base = {"steps": None if SAMPLERS[name].all_steps else model.steps, "threshold": model.threshold}
    return SamplerSpec(name, **{**base, **given})


def parse_spec(text: str, model: SamplerSpec) -> SamplerSpec:
    """'ddim:50:eta=1:spacing=trailing:threshold=dynamic' -> a spec (`choose` fills what the text leaves out);
    errors do not repeat `text`, the caller names it."""
    name, _, rest = text.strip().partition(":")
    steps_text, *options = rest.split(":") if rest else [""]
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    allowed = [k for k in (*SAMPLERS[name].options, "threshold") if k != "steps"]
    given: dict = {}
    if steps_text:
        try:
            given["steps"] = int(steps_text)
        except ValueError:
            raise UserError(f"steps must be a whole number, e.g. {name}:50") from None
    for option in options:
        key, _, value = option.partition("=")
        if key not in allowed:
            raise UserError(f"unknown option {option!r} for {name} (options: {', '.join(k + '=' for k in allowed)})")
        if key == "eta":
            try:
                given["eta"] = float(value)
            except ValueError:
                raise UserError(f"eta must be a number from 0 to 1, e.g. {name}:50:eta=0.5") from None
        else:
            given[key] = value
    return choose(model, name, **given)
