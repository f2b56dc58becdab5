"""Files shipped inside the package: the small `cpu`-preset model that `animegen generate` uses by default."""

from __future__ import annotations

from pathlib import Path

from animegen.core.errors import UserError

SHIPPED_MODEL = Path(__file__).resolve().parent / "cpu-faces"


def shipped_model() -> Path:
    """The shipped checkpoint folder (config.json, ema.safetensors in fp16, MODEL_CARD.md)."""
    if not (SHIPPED_MODEL / "ema.safetensors").is_file():
        raise UserError(f"{SHIPPED_MODEL}: the shipped model is missing from this install; reinstall animegen "
                        f"or pass --checkpoint RUN_DIR")
    return SHIPPED_MODEL
