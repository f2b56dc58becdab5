"""Files shipped inside the package: the small `cpu`-preset model that `animegen generate` uses by default."""

from __future__ import annotations

from pathlib import Path

from animegen.core.errors import UserError

SHIPPED_MODEL = Path(__file__).resolve().parent / "cpu-faces"
SHIPPED_STUDENT = Path(__file__).resolve().parent / "cpu-faces-student"
SHIPPED = "shipped"  # how a config names the shipped model (a student's teacher), wherever animegen is installed


def shipped_model() -> Path:
    """The shipped checkpoint folder (config.json, ema.safetensors in fp16, MODEL_CARD.md)."""
    if not (SHIPPED_MODEL / "ema.safetensors").is_file():
        raise UserError(f"{SHIPPED_MODEL}: the shipped model is missing from this install; reinstall animegen "
                        f"or pass --checkpoint RUN_DIR")
    return SHIPPED_MODEL


def teacher_checkpoint(name: str) -> Path:
    """A config's record of a checkpoint -> its folder: SHIPPED is the shipped model, anything else a path."""
    from animegen.runs.checkpoint import resolve_checkpoint

    return shipped_model() if name == SHIPPED else resolve_checkpoint(name)


def shipped_student() -> Path:
    """The consistency student of the shipped model (what `--sampler consistency` uses without --checkpoint)."""
    if not (SHIPPED_STUDENT / "ema.safetensors").is_file():
        raise UserError(f"{SHIPPED_STUDENT}: the shipped student is missing from this install; reinstall "
                        f"animegen, or distill one (`animegen distill --max-minutes 30 --out RUN`) and pass "
                        f"--checkpoint RUN")
    return SHIPPED_STUDENT
