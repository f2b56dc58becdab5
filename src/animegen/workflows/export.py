"""`animegen export`: a run's EMA weights as a small inference-only model folder (what animegen ships)."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from animegen.core.atomic import atomic_path, write_json
from animegen.core.errors import UserError
from animegen.core.outputs import output_dir, writing
from animegen.runs.checkpoint import read_config, resolve_checkpoint


def export_model(checkpoint: str, out: Path, half: bool = True) -> Path:
    """out/config.json + out/ema.safetensors (fp16 when `half`): loadable by every --checkpoint option.

    fp16 halves the size; weights are cast back to fp32 on load, so sampling runs in fp32 as trained."""
    ckpt = resolve_checkpoint(checkpoint)
    config = read_config(ckpt)
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out}: folder is not empty; choose a new --out")
    output_dir(out)
    tensors = load_file(ckpt / "ema.safetensors")
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    with writing(out):
        with atomic_path(out / "ema.safetensors") as tmp:
            save_file(tensors, tmp, metadata={"format": str(config.get("format")), "step": str(config.get("step")),
                                              "dtype": "float16" if half else "float32"})
        write_json(out / "config.json", config)
    return out
