"""Request validation: every number and name a request carries, checked with the command line's limits
(core/limits.py, SamplerSpec) before any work starts; a bad value becomes one message with status 400."""

from __future__ import annotations

import argparse
import copy
from typing import Any, Callable, Mapping

from animegen.core.errors import UserError
from animegen.core.limits import COUNT, MAX_GUIDANCE, POSITIVE, at_least, in_range
from animegen.samplers.spec import SamplerSpec
from animegen.serve.samplers import sampler_options

# what one request may ask of the machine: a page request is answered in seconds, the hand-in is 1000 faces
MAX_GRID = 64                 # faces in one Draw grid
MAX_EVALUATIONS = 4096        # faces x network evaluations in one Draw, Explore or Watch request
MAX_FRAMES = 60               # Watch frames
MAX_HANDIN = 1000             # faces in one Download or Score
MAX_SEED = 2**31 - 1          # a seed the page's JavaScript holds exactly
PSI_RANGE = (0.0, 2.0)        # StyleGAN2 truncation: 1 = none, 0 = the average face


class BadRequest(Exception):
    """A request the server refuses, with the message the page shows (`status`: the HTTP status)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class Params:
    """One request's parameters (a query string or a JSON object): each is read once, checked, and a name
    nobody read is refused (a misspelt parameter would otherwise be silently ignored)."""

    def __init__(self, values: Mapping[str, Any]):
        self.values = {str(k): v for k, v in values.items()}
        self.read: set[str] = set()

    def raw(self, name: str) -> str | None:
        self.read.add(name)
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, (dict, list)):
            raise BadRequest(f"{name}: expected a single value, got {type(value).__name__}")
        return str(value)

    def number(self, name: str, parse: Callable[[str], Any], default: Any = None, high: float | None = None):
        """The parameter parsed by an argparse type (the CLI's), `default` when absent, at most `high`."""
        text = self.raw(name)
        if text is None:
            return default
        try:
            value = parse(text)
        except argparse.ArgumentTypeError as err:
            raise BadRequest(f"{name}: {err}") from None
        if high is not None and value > high:
            raise BadRequest(f"{name}: must be at most {high:g}, got {text}")
        return value

    def choice(self, name: str, choices: list[str] | tuple[str, ...], default: str | None = None) -> str | None:
        text = self.raw(name)
        if text is None:
            return default
        if text not in choices:
            raise BadRequest(f"{name}: unknown value {text[:60]!r}; choose from {', '.join(choices)}")
        return text

    def text(self, name: str, default: str | None = None, max_length: int = 300) -> str | None:
        text = self.raw(name)
        if text is not None and (len(text) > max_length or "\x00" in text):
            raise BadRequest(f"{name}: too long or not text")
        return default if text is None else text

    def seed(self, name: str = "seed", default: int = 0) -> int:
        return self.number(name, COUNT, default, high=MAX_SEED)

    def done(self) -> None:
        """Refuse parameters this request does not take."""
        unknown = sorted(set(self.values) - self.read)
        if unknown:
            raise BadRequest(f"unknown parameter {unknown[0]!r}; this request takes {', '.join(sorted(self.read))}")


def sampling(params: Params, model):
    """(the model that draws, the SamplerSpec a request asks for resolved for it as `generate --sampler` resolves
    it, psi): runs/model.py's sampler_for, so a sampler that needs a student draws with the model's. A StyleGAN2 has
    no sampler (None) and reads psi; a diffusion model reads sampler, steps, eta, spacing and guidance (the weight
    of the guide that ships with it, as `generate --guidance`)."""
    options = sampler_options()
    name = params.choice("sampler", list(options))
    steps = params.number("steps", POSITIVE)
    eta = params.number("eta", in_range(0.0, 1.0))
    spacing = params.text("spacing")
    guidance = params.number("guidance", at_least(1.0, float), None, high=MAX_GUIDANCE)
    psi = params.number("psi", at_least(PSI_RANGE[0], float), 1.0, high=PSI_RANGE[1])
    if model.kind != "diffusion":
        if name or steps or eta is not None or spacing or guidance is not None:
            raise BadRequest(f"{model.checkpoint.name}: a StyleGAN2 draws in one pass; it takes psi, not a sampler")
        return model, None, psi
    if psi != 1.0:
        raise BadRequest("psi: truncation is for StyleGAN2 models; a diffusion model takes sampler, steps, eta")
    try:
        if guidance is not None:  # a copy: the loaded model is shared by every request
            model = copy.copy(model).with_guide(None, guidance)
        return (*model.sampler_for(name, steps, eta, spacing), psi)
    except UserError as err:  # the CLI's own checks: options a sampler does not read, steps beyond T, no guide
        raise BadRequest(str(err)) from None


def check_work(faces: int, spec: SamplerSpec | None) -> None:
    """Refuse a page request that would hold the machine for long (faces x network evaluations)."""
    evaluations = faces * (spec.nfe if spec is not None else 1)
    if evaluations > MAX_EVALUATIONS:
        raise BadRequest(f"{faces} faces x {spec.nfe} steps = {evaluations} network evaluations; a page request "
                         f"takes at most {MAX_EVALUATIONS}: draw fewer faces or take fewer steps (`animegen generate` "
                         f"has no such limit)")


def limits() -> dict[str, Any]:
    """What the page needs to set its inputs' ranges."""
    return {"max_grid": MAX_GRID, "max_evaluations": MAX_EVALUATIONS, "max_frames": MAX_FRAMES,
            "max_handin": MAX_HANDIN, "max_seed": MAX_SEED, "psi": list(PSI_RANGE), "max_guidance": MAX_GUIDANCE}
