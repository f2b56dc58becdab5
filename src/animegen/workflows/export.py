"""`animegen export`: a run's EMA weights as a small inference-only model folder (what animegen ships).

The folder holds model.json (runs/model_file.py) and ema.safetensors, and optionally the model's few-step student
in student/ (`--student`): a consistency sampler on the exported model then uses it. A v1 checkpoint (before
model.json) is exported in the new layout, so export is also how an old model is brought up to date.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from safetensors.torch import load_file, save_file

from animegen.core.atomic import atomic_path
from animegen.core.errors import UserError
from animegen.core.outputs import output_dir, writing
from animegen.runs.checkpoint import resolve_checkpoint
from animegen.runs.model_file import GUIDE_DIR, MODEL_FORMAT, STUDENT_DIR, read_model_file, write_model_file


def export_model(checkpoint: str, out: Path, half: bool = True, student: str | None = None,
                 guide: str | None = None, guidance: float | None = None) -> Path:
    """out/model.json + out/ema.safetensors (fp16 when `half`), the student's in out/student/, and the guide that
    autoguidance samples with in out/guide/ (its weight in model.json): loadable by every --checkpoint option.
    fp16 halves the size; weights are cast back to fp32 on load."""
    ckpt = resolve_checkpoint(checkpoint)
    model = read_model_file(ckpt)
    guide_net = None
    if guide is not None:  # checked now, as generate would load it: nothing is written for a guide that won't do
        from animegen.runs.model import TrainedModel

        guided = TrainedModel.load(ckpt, "cpu", compile="off").with_guide(guide, guidance)
        guide_net, model = guided.guide, dataclasses.replace(model, guidance=guided.guidance)
    student_ckpt = resolve_checkpoint(student) if student is not None else None
    if student_ckpt is not None:
        learner = read_model_file(student_ckpt)
        if not learner.is_student or learner.network != model.network:
            raise UserError(f"{student_ckpt}: not a student of {ckpt} (a run of `animegen distill --checkpoint "
                            f"{checkpoint}`)")
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out}: folder is not empty; choose a new --out")
    output_dir(out)
    _write(load_file(ckpt / "ema.safetensors"), model, ckpt.name, out, half)
    if student_ckpt is not None:
        _write(load_file(student_ckpt / "ema.safetensors"), read_model_file(student_ckpt), student_ckpt.name,
               out / STUDENT_DIR, half)
    if guide_net is not None:
        # the guide's own network (it may be smaller), the model's schedule (check_guide made sure)
        _write(guide_net.net.state_dict(), dataclasses.replace(model, network=guide_net.net.cfg, guidance=1.0),
               Path(guided.guide_name).name, out / GUIDE_DIR, half)
    return out


def _write(tensors: dict, model, source: str, out: Path, half: bool) -> None:
    if half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "ema.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp,
                      metadata={"format": MODEL_FORMAT, "checkpoint": source, "dtype": "float16" if half else "float32"})
        write_model_file(out, model)
