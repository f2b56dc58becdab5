"""Files shipped inside the package: the small `cpu`-preset model that `animegen generate` uses by default."""

from __future__ import annotations

from pathlib import Path

from animegen.core.errors import UserError

SHIPPED_MODEL = Path(__file__).resolve().parent / "cpu-faces"
SHIPPED_STUDENT = Path(__file__).resolve().parent / "cpu-faces-student"


def shipped_model() -> Path:
    """The shipped checkpoint folder (config.json, ema.safetensors in fp16, MODEL_CARD.md)."""
    if not (SHIPPED_MODEL / "ema.safetensors").is_file():
        raise UserError(f"{SHIPPED_MODEL}: the shipped model is missing from this install; reinstall animegen "
                        f"or pass --checkpoint RUN_DIR")
    return SHIPPED_MODEL


def shipped_student() -> Path:
    """The consistency student of the shipped model (what `--sampler consistency` uses without --checkpoint)."""
    if not (SHIPPED_STUDENT / "ema.safetensors").is_file():
        raise UserError("no consistency student ships with this version yet: tune one with `animegen distill "
                        "--data faces/ --max-minutes 30` and pass its run as --checkpoint")
    return SHIPPED_STUDENT
