"""Files shipped inside the package: the small `cpu`-preset model that `animegen generate` uses by default, with
its few-step student in its `student/` folder (a model folder may carry its student there: runs/model_file.py).
Only paths live here; loading them is runs/load.py's, which imports this module and never the other way round."""

from __future__ import annotations

from pathlib import Path

from animegen.core.errors import UserError

SHIPPED_MODEL = Path(__file__).resolve().parent / "cpu-faces"
SHIPPED_STUDENT = SHIPPED_MODEL / "student"
SHIPPED = "shipped"  # how a config names the shipped model (a student's teacher), wherever animegen is installed


def shipped_model() -> Path:
    """The shipped model folder (model.json, ema.safetensors in fp16, MODEL_CARD.md, student/)."""
    if not (SHIPPED_MODEL / "ema.safetensors").is_file():
        raise UserError(f"{SHIPPED_MODEL}: the shipped model is missing from this install; reinstall animegen "
                        f"or pass --checkpoint RUN_DIR")
    return SHIPPED_MODEL
