"""`animegen ema`: post-hoc EMA (EDM2, Karras et al. 2024) — after training, the EMA of any width, rebuilt from
the snapshots the run stored (training/phema.py) as one inference model folder per width.

Each width is the least-squares combination of the stored profiles (runs/phema.py) at the run's last snapshot;
the folders are what `animegen export` writes (model.json + ema.safetensors), so `generate`, `compare` and
`animegen.load` take them, plus phema.json saying how each was made.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from animegen.core.atomic import fsync_dir, write_json
from animegen.core.errors import UserError
from animegen.core.outputs import output_dir, writing
from animegen.runs.checkpoint import resolve_checkpoint
from animegen.runs.model_file import MODEL_FORMAT, ModelSpec, read_model_file, write_model_file
from animegen.runs.phema import FOLDER, MAX_STD, Snapshot, list_snapshots, power_exponent, solve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconstruction:
    """One rebuilt width: its folder, the step it is at, and how well the stored profiles fit its profile."""

    std: float
    path: Path
    step: int
    fit_error: float        # ||sum_i x_i p_i - p|| / ||p|| of the profiles (0: exact)
    coefficient_sum: float  # sum |x_i|: how much the snapshots' fp16 rounding is amplified


def folder_name(std: float) -> str:
    return f"std-{std:.3f}"


def run_directory(checkpoint: str | os.PathLike) -> Path:
    """The run directory holding phema/: `checkpoint` itself, or the run of a checkpoint folder inside it."""
    path = Path(checkpoint).expanduser()
    if path.parent.name == "checkpoints" and not (path / FOLDER).is_dir():
        return path.parent.parent
    return path


def reconstruct_ema(checkpoint: str | os.PathLike, stds: Sequence[float], out: Path, half: bool = True
                    ) -> list[Reconstruction]:
    """out/std-S/ for each relative width S in `stds`: the run's EMA of that width at its last snapshot (fp16 when
    `half`, as `export`). Nothing is written unless every width and folder is fine."""
    run_dir = run_directory(checkpoint)
    model = read_model_file(resolve_checkpoint(run_dir))
    snapshots = list_snapshots(run_dir)
    if not snapshots:
        raise UserError(f"{run_dir}: no post-hoc EMA snapshots ({FOLDER}/ is empty or missing): the run was trained "
                        f"without them; train with --set ema.snapshot_every=250 (the cpu preset's default)")
    stds = check_stds(stds)
    out = output_dir(out)
    targets = [out / folder_name(s) for s in stds]
    for target in targets:
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise UserError(f"{target}: exists and is not empty; choose a new --out or delete it")
    last = snapshots[-1]
    times = np.array([s.updates for s in snapshots], np.float64)
    gammas = np.array([s.gamma for s in snapshots])
    solved = [solve(times, gammas, last.updates, power_exponent(std)) for std in stds]
    weights = combine(snapshots, [x for x, _ in solved])
    results = []
    for std, target, (x, fit_error), tensors in zip(stds, targets, solved, weights):
        card = {"std": std, "gamma": power_exponent(std), "step": last.step, "updates": last.updates,
                "run": str(run_dir.resolve()), "fit_error": fit_error,
                "snapshots": [{"file": s.path.name, "coefficient": float(c)} for s, c in zip(snapshots, x)]}
        write_model(target, tensors, model, card, half)
        results.append(Reconstruction(std, target, last.step, fit_error, float(np.abs(x).sum())))
    return results


def check_stds(stds: Sequence[float]) -> list[float]:
    """The asked widths, sorted, each in (0, MAX_STD)."""
    if not stds:
        raise UserError("--std is empty; e.g. --std 0.05,0.10,0.15")
    for std in stds:
        if not 0.0 < std < MAX_STD:
            raise UserError(f"--std {std:g}: a relative EMA width must be between 0 and {MAX_STD} (EDM2's useful "
                            f"range is about 0.02-0.25)")
    return sorted(set(float(s) for s in stds))


def combine(snapshots: list[Snapshot], coefficients: list[np.ndarray]) -> list[dict[str, torch.Tensor]]:
    """sum_i x_i * snapshot_i for each coefficient vector x, in fp32, reading each snapshot once."""
    sums: list[dict[str, torch.Tensor]] = [{} for _ in coefficients]
    keys = None
    for i, snap in enumerate(snapshots):
        try:
            tensors = load_file(snap.path)
        except (SafetensorError, OSError) as err:
            raise UserError(f"{snap.path}: unreadable snapshot ({err}); delete it and run again") from None
        if keys is not None and set(tensors) != keys:
            raise UserError(f"{snap.path}: holds other weights than {snapshots[0].path.name}; the snapshots are "
                            f"not of one model")
        keys = set(tensors)
        for total, x in zip(sums, coefficients):
            for name, value in tensors.items():
                if not value.is_floating_point():  # counters and the like: the last snapshot's
                    total[name] = value
                elif name in total:
                    total[name].add_(value.float(), alpha=float(x[i]))
                else:
                    total[name] = value.float() * float(x[i])
    return sums


def write_model(target: Path, tensors: dict[str, torch.Tensor], model: ModelSpec, card: dict, half: bool) -> None:
    """target/{ema.safetensors, model.json, phema.json}, staged beside it and renamed in whole."""
    stage = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    with writing(target):
        stage.mkdir()
        try:
            if half:
                tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
            save_file({k: v.contiguous() for k, v in tensors.items()}, stage / "ema.safetensors",
                      metadata={"format": MODEL_FORMAT, "step": str(card["step"]),
                                "dtype": "float16" if half else "float32"})
            write_model_file(stage, model)
            write_json(stage / "phema.json", card)
            with open(stage / "ema.safetensors", "rb") as handle:
                os.fsync(handle.fileno())
            if target.is_dir():
                target.rmdir()  # empty (checked before any work)
            os.replace(stage, target)
            fsync_dir(target.parent)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
