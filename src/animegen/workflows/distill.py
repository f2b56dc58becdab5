"""`animegen distill`: tune a few-step consistency student from a trained diffusion model (ECT-style).

The student is the teacher's network and schedule (its `model` and `diffusion` settings), started from the
teacher's EMA weights and trained on real faces with the consistency loss (diffusion/consistency.py). It is an
ordinary diffusion run in every other way — run directory, checkpoints, --resume, --max-minutes, the lr plan —
whose model samples with `--sampler consistency --steps 1|2|4`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from animegen.assets import shipped_model
from animegen.core.errors import UserError
from animegen.runs.checkpoint import read_config, resolve_checkpoint
from animegen.runs.config import TrainConfig, to_dict
from animegen.runs.load import config_from_json
from animegen.workflows.train import next_run_dir, train

# the student's recipe on top of the teacher's network: ECT tunes with a lower lr than pre-training, and the
# power EMA keeps the average sized to however long the tuning runs
DISTILL: dict[str, Any] = {
    "consistency.enabled": True,
    "optim.lr": 2e-4, "optim.warmup_steps": 0, "optim.lr_schedule": "cosine",
    "ema.kind": "power", "ema.every": 1, "ema.std": 0.10,
    "augment.hflip": False, "augment.rotate_deg": 0.0, "augment.brightness": 0.0, "augment.contrast": 0.0,
    "sample.sampler": "consistency", "sample.steps": 2, "sample.threshold": "static",
}


def student_overrides(teacher: TrainConfig, ckpt: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The teacher's network and schedule, the distill recipe, then the user's own overrides."""
    taken = {f"{section}.{key}": value for section in ("model", "diffusion")
             for key, value in to_dict(teacher)[section].items()}
    return {**taken, **DISTILL, "consistency.teacher": str(ckpt), **overrides}


def distill(data: str, checkpoint: str | None = None, overrides: dict[str, Any] | None = None,
            out: Path | None = None, resume: bool = False, cache_dir: Path | None = None) -> Path:
    """Tune a student of `checkpoint` (None: the shipped model) on the faces at `data`; returns the run dir."""
    ckpt = resolve_checkpoint(shipped_model() if checkpoint is None else Path(checkpoint))
    teacher = config_from_json(read_config(ckpt), ckpt / "config.json")
    if not isinstance(teacher, TrainConfig):
        raise UserError(f"{ckpt} is a StyleGAN2 checkpoint: it already draws a face in one step; distill needs "
                        f"a diffusion model")
    overrides = student_overrides(teacher, ckpt, overrides or {})
    out = out or next_run_dir(Path("runs"), f"{teacher.preset}-student")
    # a fresh run starts from the teacher's weights; a resumed one from its own checkpoint (train decides)
    return train(data, teacher.preset, overrides, out, resume, cache_dir, init_from=ckpt)
