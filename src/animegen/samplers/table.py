"""The samplers' one table: name -> what it is, which options it reads, its network evaluations per step, whether
it needs a few-step student, and the function that runs it.

Every reader takes its facts from here: the CLI's choices and --help, `compare`'s parser and SamplerSpec's checks
(samplers/spec.py), the API, `serve`'s page, `sample_batch` (samplers/run.py) and docs/samplers.md (written by
scripts/sampler_table.py, and checked against this table by the tests). The module imports no torch, so
`animegen --help` starts at once; a sampler's code is imported when it first runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class SamplerInfo:
    """One sampler: `options` are the SamplerSpec fields it reads besides `threshold` (which all do); a sampler
    without "steps" runs all T steps of the model; `needs_student` samplers run only on a student of
    `animegen distill` (runs/model.py swaps one in, or refuses); `impl` is "module:function" of a
    `run(denoiser, x, spec, noise, callback) -> x0` (the function is imported on first use)."""

    name: str
    summary: str
    options: tuple[str, ...]
    evals_per_step: int
    needs_student: bool
    impl: str

    def function(self) -> Callable:
        module, _, attr = self.impl.partition(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def all_steps(self) -> bool:
        """Runs every one of the model's T steps (no step count to choose)."""
        return "steps" not in self.options


SAMPLERS: dict[str, SamplerInfo] = {info.name: info for info in [
    SamplerInfo("ddpm", "ancestral DDPM over all T steps (Ho et al. 2020)", (), 1, False,
                "animegen.samplers.ddpm:run"),
    SamplerInfo("ddim", "DDIM over a subsequence of steps; eta 0 deterministic, 1 DDPM-like (Song et al. 2021)",
                ("steps", "eta", "spacing"), 1, False, "animegen.samplers.ddim:run"),
    SamplerInfo("dpmpp", "DPM-Solver++(2M); eta 1 is its SDE variant (Lu et al. 2022)",
                ("steps", "eta", "spacing"), 1, False, "animegen.samplers.dpmpp:run"),
    SamplerInfo("unipc", "UniPC-bh2, order 2, predictor-corrector (Zhao et al. 2023)", ("steps", "spacing"), 1,
                False, "animegen.samplers.unipc:run"),
    SamplerInfo("consistency", "multistep consistency sampling, 1-4 steps, for a student of `animegen distill` "
                               "(Song et al. 2023)", ("steps",), 1, True, "animegen.samplers.consistency:run"),
]}


# report Q2's samplers, for `animegen compare` and Model.compare alike: DDPM against DDIM at falling step counts,
# and DPM-Solver++ at the step counts the presets use
COMPARE_SAMPLERS = "ddpm,ddim:100,ddim:50,ddim:20,dpmpp:20,dpmpp:10"
# report Q1's sampler: DDPM's every step, from pure noise to the face
PROGRESS_SAMPLER = "ddpm"


def markdown() -> str:
    """The table as markdown: docs/samplers.md's body."""
    rows = ["| sampler | what | options (besides threshold) | network evaluations a step | needs a student |",
            "| --- | --- | --- | --- | --- |"]
    for info in SAMPLERS.values():
        options = ", ".join(info.options) if info.options else "none (all T steps)"
        rows.append(f"| `{info.name}` | {info.summary} | {options} | {info.evals_per_step} | "
                    f"{'yes' if info.needs_student else 'no'} |")
    return "\n".join(rows) + "\n"
