"""`animegen distill`: a few-step consistency student of a trained diffusion model.

The student is the teacher's network and schedule (its `model` and `diffusion` settings), started from the
teacher's EMA weights. By default it learns to jump from points of the teacher's own ODE solves to their ends
(training/trajectory_distill.py; no data needed); given `--data`, a discriminator on real faces adds its gradient
on the student's images (training/adversarial.py: sharper faces). `--method ect` tunes it on real faces with the
consistency loss instead (diffusion/consistency.py); in equal CPU time the first found more faces at 2 steps, at
lower SWD (docs/q2-ddpm-vs-ddim.md has both comparisons).
It is an ordinary diffusion run in every other way — run directory, checkpoints, --resume, --max-minutes, the lr
plan — whose model samples with `--sampler consistency --steps 1|2|4`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from animegen.assets import SHIPPED
from animegen.core.errors import UserError
from animegen.runs.config import ConsistencyConfig, TrainConfig
from animegen.runs.load import model_folder
from animegen.runs.model_file import DiffusionModel, read_model_file
from animegen.workflows.train import next_run_dir, read_run_config, train

log = logging.getLogger(__name__)

# the student's recipe on top of the teacher's network: the cpu preset's own lr (1e-3 beat 2e-4 at 2 steps on
# both scores in 6-minute runs), decayed to the planned end; the power EMA sizes its average to the run's length
DISTILL: dict[str, Any] = {
    "consistency.enabled": True,
    "optim.lr": 1e-3, "optim.warmup_steps": 0, "optim.lr_schedule": "cosine",
    "ema.kind": "power", "ema.every": 1, "ema.std": 0.10, "ema.snapshot_every": 0,
    "augment.hflip": False, "augment.rotate_deg": 0.0, "augment.brightness": 0.0, "augment.contrast": 0.0,
    "sample.sampler": "consistency", "sample.steps": 2, "sample.threshold": "static",
}


# the weight of the adversarial term (training/adversarial.py) when distill is given faces: chosen on held-out seeds
# from 30-minute students of the shipped model (docs/q2-ddpm-vs-ddim.md)
ADVERSARIAL = 1.0


def student_overrides(teacher: DiffusionModel, teacher_name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The teacher's network and schedule (from its model file), the distill recipe, then the user's overrides."""
    taken = {f"model.{key}": value for key, value in dataclasses.asdict(teacher.network).items()}
    taken.update({"diffusion.schedule": teacher.schedule, "diffusion.timesteps": teacher.timesteps,
                  "diffusion.objective": teacher.objective})
    return {**taken, **DISTILL, "consistency.teacher": teacher_name, **overrides}


def distill(data: str | None = None, checkpoint: str | None = None, overrides: dict[str, Any] | None = None,
            out: Path | None = None, resume: bool = False, cache_dir: Path | None = None,
            allow_out_in_data: bool = False) -> Path:
    """Distill a student of `checkpoint` (None: the shipped model); returns the run dir. The trajectory method
    (the default) needs no data, and given faces at `data` adds the adversarial term; ect tunes on them."""
    overrides = dict(overrides or {})
    saved = read_run_config(out) if resume and out is not None and (out / "config.json").is_file() else None
    saved = saved if isinstance(saved, TrainConfig) else None

    def setting(key: str) -> Any:  # the user's override, else the resumed run's value, else the config default
        return overrides.get(f"consistency.{key}",
                             getattr(saved.consistency if saved else ConsistencyConfig, key))

    method = setting("method")
    if method == "ect" and data is None:
        raise UserError("--method ect tunes the student on real faces: pass --data FOLDER (or .zip/.tar.gz)")
    if method == "trajectory" and data is not None and saved is None and "consistency.adversarial" not in overrides:
        overrides["consistency.adversarial"] = ADVERSARIAL  # given faces, a discriminator sharpens the student
    adversarial = setting("adversarial")
    if adversarial and data is None:
        raise UserError("consistency.adversarial shows a discriminator real faces: pass --data FOLDER (or "
                        ".zip/.tar.gz)")
    if method == "trajectory" and data is None and saved is None:
        log.info("with --data FACES, a discriminator on real faces would sharpen the student too (2 steps: SWD "
                 "31.6 instead of 41.1; docs/q2-ddpm-vs-ddim.md)")
    if method == "trajectory" and data is not None and not adversarial:
        log.info("--data is not used: consistency.adversarial=0 learns from the teacher's own ODE solves alone")
        data = None
    if checkpoint is None and saved is not None and saved.consistency.teacher:
        checkpoint = saved.consistency.teacher  # a resume goes on from the teacher it started with
    # recorded as the checkpoint folder itself (absolute), so a resume finds the same weights from anywhere even
    # if the teacher's run has saved newer ones since
    teacher_name = SHIPPED if checkpoint in (None, SHIPPED) else str(model_folder(checkpoint).resolve())
    ckpt = model_folder(teacher_name)
    teacher = read_model_file(ckpt)
    if not isinstance(teacher, DiffusionModel):
        raise UserError(f"{ckpt} is a StyleGAN2 checkpoint: it already draws a face in one step; distill needs "
                        f"a diffusion model")
    overrides = student_overrides(teacher, teacher_name, overrides)
    out = out or next_run_dir(Path("runs"), f"{teacher.preset}-student")
    # a fresh run starts from the teacher's weights; a resumed one from its own checkpoint (train decides)
    return train(data, teacher.preset, overrides, out, resume, cache_dir, init_from=ckpt,
                 allow_out_in_data=allow_out_in_data)
