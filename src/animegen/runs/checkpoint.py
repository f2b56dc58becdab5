"""Checkpoints: inference weights (safetensors + model.json) and resume state, written crash-safely.

Layout of a run directory:
    run/checkpoints/step-0000500/{model.json, ema.safetensors, model.safetensors, config.json, state.pt}
    run/latest            -> text "checkpoints/step-0000500", replaced only after that folder is complete
model.json is what inference reads (runs/model_file.py); config.json is the recipe at that step, for --resume.

Nothing here unpickles code: weights load with safetensors, resume state with torch.load(weights_only=True).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from animegen.core.atomic import fsync_dir, write_text
from animegen.core.errors import UserError
from animegen.runs.model_file import MODEL_FILE, ModelSpec, write_model_file

FORMAT = "animegen-checkpoint-v2"  # v2: model.json beside the weights (v1 checkpoints load through its migration)


def save_checkpoint(run_dir: Path, step: int, model: nn.Module, ema: nn.Module, model_spec: ModelSpec,
                    config: dict, state: dict, keep: int = 3) -> Path:
    """Write checkpoints/step-N atomically (temp folder, fsync, rename), then move `latest` to it."""
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:07d}"
    tmp = ckpt_root / f".tmp-step-{step:07d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        meta = {"format": FORMAT, "step": str(step)}
        save_file(_cpu_state(model), tmp / "model.safetensors", metadata=meta)
        save_file(_cpu_state(ema), tmp / "ema.safetensors", metadata=meta)
        write_model_file(tmp, model_spec)
        (tmp / "config.json").write_text(json.dumps({"format": FORMAT, "step": step, **config}, indent=2))
        torch.save(state, tmp / "state.pt")
        for f in tmp.iterdir():
            with open(f, "rb") as handle:
                os.fsync(handle.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(ckpt_root)
    except (OSError, SafetensorError, RuntimeError) as err:  # safetensors and torch.save wrap the OS error
        shutil.rmtree(tmp, ignore_errors=True)
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        latest = run_dir / "latest"
        kept = (f"the previous checkpoint ({latest.read_text().strip()}) is intact" if latest.is_file()
                else "no earlier checkpoint exists")
        raise UserError(f"could not save checkpoint {final} ({reason}); {kept} — free disk space and "
                        f"--resume") from None
    write_text(run_dir / "latest", f"checkpoints/{final.name}\n")
    _prune(ckpt_root, keep)
    return final


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


def _prune(ckpt_root: Path, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints (and stale temp folders)."""
    done = sorted(p for p in ckpt_root.glob("step-*") if p.is_dir())
    for old in done[: max(0, len(done) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in ckpt_root.glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run directory (follows `latest`) or a checkpoint folder -> the checkpoint folder."""
    path = Path(path).expanduser()
    if is_model_folder(path):
        return path
    latest = path / "latest"
    if latest.is_file():
        target = path / latest.read_text().strip()
        if (target / "ema.safetensors").is_file():
            return target
        raise UserError(f"{latest} points to {target}, which is incomplete; delete `latest` to use an older one")
    candidates = sorted((path / "checkpoints").glob("step-*")) if path.is_dir() else []
    if candidates:
        return candidates[-1]
    raise UserError(f"{path}: no checkpoint here (expected a run directory with `latest`, or a folder with "
                    f"model.json and ema.safetensors)")


def is_model_folder(path: Path) -> bool:
    """A checkpoint or exported model: its weights beside model.json (or a v1 checkpoint's config.json)."""
    return (path / "ema.safetensors").is_file() and ((path / MODEL_FILE).is_file() or (path / "config.json").is_file())


def load_weights(module: nn.Module, file: Path, config: Path | None = None) -> None:
    """Load safetensors `file` into `module` (built from `config`), with a clear error naming what does not
    match; with `config`, the error names both files, since either may be the one that was changed."""
    try:
        tensors = load_file(file)
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{file}: unreadable weights ({err}); the file is truncated or not safetensors") from None
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    shapes = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or extra or shapes:
        detail = []
        if missing:
            detail.append(f"missing {len(missing)} (e.g. {missing[0]})")
        if extra:
            detail.append(f"unexpected {len(extra)} (e.g. {extra[0]})")
        if shapes:
            k = shapes[0]
            detail.append(f"shape of {k} is {tuple(tensors[k].shape)}, the model wants {tuple(expected[k].shape)}")
        where = f"{file} and {config} do not match" if config else f"{file}: weights do not match this architecture"
        raise UserError(f"{where}: {'; '.join(detail)}")
    module.load_state_dict(tensors, strict=True)


def load_state(ckpt: Path) -> dict:
    """Resume state (optimizer, step, RNG, ...) via torch.load(weights_only=True): no code is unpickled."""
    file = ckpt / "state.pt"
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are noise beside our own message
            warnings.simplefilter("ignore")
            return torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{file}: missing; this checkpoint has inference weights only and cannot resume") from None
    except pickle.UnpicklingError:  # weights_only refused an object: the file asks to run code
        raise UserError(f"{file}: holds code, not only tensors, so it was not loaded (animegen never writes such "
                        f"a file); delete it or resume from an older checkpoint") from None
    except Exception as err:  # noqa: BLE001 - truncated zip, wrong format, ...: all mean "refuse this file"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{file}: unreadable resume state ({first[:120]}); the file is damaged — resume from an "
                        f"older checkpoint") from None
