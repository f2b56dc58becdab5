"""animegen from Python (a notebook, a script): the same code paths as the command line.

    import animegen
    run = animegen.train("faces/", preset="cpu", max_minutes=60)   # -> Run
    model = run.load()                                              # or animegen.load() for the shipped model
    images = model.generate(16, seed=0)                             # -> list of PIL images
    model.save("submission", num=1000, tgz="images.tgz")            # the hand-in, under 2 MB
    animegen.evaluate("submission", real="faces/")                  # -> {"afd": ..., "swd": ...}

Image k of `generate` / `save` uses seed `seed + k - 1` alone, so the pixels equal `animegen generate`'s.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from animegen.core.errors import UserError
from animegen.core.imagefiles import save_jpeg
from animegen.runs.model import TrainedModel
from animegen.runs.presets import FLAG_KEYS
from animegen.samplers.table import COMPARE_SAMPLERS, PROGRESS_SAMPLER


class Model(TrainedModel):
    """A trained model (diffusion or StyleGAN2) with the homework's outputs as methods. Sampler options
    (`sampler="ddim"`, `steps=50`, `eta=0.0`, `spacing=...`, `threshold=...`) are resolved as `generate --sampler`
    resolves them (`sampler_for`): a sampler that needs a student runs on the one that ships with the model."""

    def tensor(self, n: int, seed: int = 0, batch_size: int | None = None, psi: float = 1.0,
               **sampler: Any) -> torch.Tensor:
        """uint8 (n, 3, H, W) images for seeds seed..seed+n-1."""
        if n < 1:
            raise UserError(f"n must be at least 1, got {n}")
        model, spec = self.sampler_for(**sampler)
        return torch.cat(list(model.images(range(seed, seed + n), spec, batch_size, psi))).cpu()

    def generate(self, n: int, seed: int = 0, batch_size: int | None = None, psi: float = 1.0,
                 **sampler: Any) -> list[Image.Image]:
        """n faces as PIL images (RGB), image k from seed `seed + k` alone."""
        return [Image.fromarray(x.permute(1, 2, 0).numpy(), "RGB") for x in self.tensor(n, seed, batch_size, psi,
                                                                                           **sampler)]

    def save(self, folder: str | os.PathLike = "submission", num: int = 1000, seed: int = 0,
             tgz: str | os.PathLike | None = None, force: bool = False, jpeg_quality: int | None = None,
             batch_size: int | None = None, psi: float = 1.0, **sampler: Any):
        """Write 1.jpg..num.jpg (and the homework's images.tgz, fitted under 2 MB); returns what was written."""
        from animegen.workflows.generate import generate

        model, spec = self.sampler_for(**sampler)
        return generate(model, Path(folder), num, seed, spec, batch_size, psi, Path(tgz) if tgz else None, force,
                        jpeg_quality)

    def progress(self, out: str | os.PathLike = "q1.png", num: int = 5, frames: int = 20, seed: int = 0,
                 **sampler: Any) -> tuple[Image.Image, Image.Image]:
        """Report Q1: (x_t from noise to image, predicted x0 per step) as PIL images, also written to `out`."""
        from animegen.workflows.progress import progress

        sampler.setdefault("sampler", PROGRESS_SAMPLER)
        model, spec = self.sampler_for(**sampler)
        paths = progress(model, Path(out), num, frames, seed, spec)
        return tuple(_loaded(p) for p in paths)

    def compare(self, samplers: str = COMPARE_SAMPLERS, real: str | os.PathLike | None = None,
                out: str | os.PathLike = "report", num: int = 1000, seed: int = 0,
                metrics: Sequence[str] = ("afd", "swd"), resume: bool = False,
                student: "Model | None" = None) -> Comparison:
        """Report Q2: the same seeds through each sampler, timed and scored (see `animegen compare`); rows of a
        sampler that needs a student sample with `student`, else with the one that ships with this model."""
        from animegen.workflows.compare import compare

        out = Path(out)
        rows = compare(self.with_student(student), Path(real) if real else None, samplers, out, num, seed, None,
                       tuple(metrics), None, resume)
        return Comparison(rows, (out / "report.md").read_text(), _loaded(out / "metrics-vs-nfe.png"),
                          _loaded(out / "samplers.png"))


@dataclass(frozen=True)
class Comparison:
    """`Model.compare`'s result: one dict per sampler, the markdown table, and the two figures."""

    rows: list[dict]
    table: str
    plot: Image.Image
    grid: Image.Image

    def _repr_markdown_(self) -> str:  # a notebook shows the table
        return self.table


@dataclass(frozen=True)
class Run:
    """A run directory: its config, log and sample grids; `load()` gives its model (EMA weights)."""

    path: Path

    @property
    def config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    def log(self) -> list[dict]:
        """log.jsonl as a list of rows (step, loss, lr, img_per_s, ...)."""
        from animegen.viz.curves import read_log

        return read_log(self.path / "log.jsonl")

    def samples(self) -> Image.Image | None:
        """The newest sample grid, or None before the first."""
        grids = sorted((self.path / "samples").glob("step-*.png"))
        return _loaded(grids[-1]) if grids else None

    def load(self, device: str = "auto", precision: str = "auto", compile: str = "auto",
             guide: str | os.PathLike | None = None, guidance: float | None = None, bf16: str | None = None
             ) -> Model:
        return load(self.path, device, precision, compile, guide, guidance, bf16=bf16)


def load(path: str | os.PathLike | None = None, device: str = "auto", precision: str = "auto",
         compile: str = "auto", guide: str | os.PathLike | None = None, guidance: float | None = None,
         bf16: str | None = None) -> Model:
    """A run directory or checkpoint folder; None loads the model shipped with animegen (works offline).
    precision auto | bf16 | fp16 | fp32: auto samples in what the device computes natively (bf16 on sm80+ GPUs
    and CPUs with AVX512-BF16 or AMX, fp16 on sm70/sm75 GPUs such as the T4, fp32 elsewhere); bf16 auto | on | off
    is the older name (on = bf16, off = fp32).
    compile auto | on | off: auto torch.compiles the UNet for generations long enough to repay the compile, on
    CPUs with native bf16 (samplers/compiled_net.py); on an AVX2-only CPU it stays eager.
    guide, guidance: autoguidance, as `generate --guide --guidance` (a model that ships with a guide samples
    guided by default; guidance=1.0 samples it alone). bf16: the older name of precision (on | off)."""
    model = Model.load(path, device, bf16 if bf16 is not None else precision, compile)
    return model.with_guide(guide, guidance) if guide is not None or guidance is not None else model


def load_student(path: str | os.PathLike | None = None, device: str = "auto", precision: str = "auto",
                 compile: str = "auto", bf16: str | None = None) -> Model:
    """A few-step student (`animegen distill`'s run); None loads the student of the shipped model. It samples
    with its own sampler, `consistency` at 2 steps: `load_student().generate(16, steps=1)` for one step."""
    from animegen.assets import SHIPPED_STUDENT

    return Model.load(SHIPPED_STUDENT if path is None else path, device, bf16 if bf16 is not None else precision,
                      compile)


def distill(checkpoint: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
            max_minutes: float | None = None, steps: int | None = None, data: str | os.PathLike | None = None,
            resume: bool = False, cache_dir: str | os.PathLike | None = None, allow_out_in_data: bool = False,
            **overrides: Any) -> Run:
    """Distill a 1-4 step student of `checkpoint` (None: the shipped model) as `animegen distill` does; `data`:
    real faces for the adversarial term (trajectory) or to tune on (method="ect"). Overrides as for `train`
    (lr=1e-3, method="ect", consistency__adversarial=0.0)."""
    from animegen.workflows.distill import distill as distill_workflow

    dotted = _dotted(overrides, max_minutes, steps)
    run_dir = distill_workflow(str(data) if data else None, str(checkpoint) if checkpoint else None, dotted,
                               Path(out) if out else None, resume, Path(cache_dir) if cache_dir else None,
                               allow_out_in_data)
    return Run(Path(run_dir))


def _dotted(overrides: dict[str, Any], max_minutes: float | None, steps: int | None) -> dict[str, Any]:
    """Flag names (batch_size) or config keys with "__" for "." -> dotted config keys, with the budget."""
    dotted = {FLAG_KEYS.get(k, k.replace("__", ".")): v for k, v in overrides.items()}
    dotted.update({k: v for k, v in (("max_minutes", max_minutes), ("steps", steps)) if v is not None})
    return dotted


def train(data: str | os.PathLike, preset: str | None = None, out: str | os.PathLike | None = None,
          max_minutes: float | None = None, steps: int | None = None, resume: bool = False,
          cache_dir: str | os.PathLike | None = None, allow_out_in_data: bool = False, **overrides: Any) -> Run:
    """Train on a folder or archive of faces; returns the Run. `overrides` take the CLI's flag names
    (batch_size=64, lr=2e-4, dim=32, ...) or any config key with "__" for "." (model__attn_resolutions=[16]).
    An `out` inside the `data` folder is refused unless allow_out_in_data=True (`--allow-out-in-data`)."""
    from animegen.workflows.train import train as train_workflow

    dotted = _dotted(overrides, max_minutes, steps)
    run_dir = train_workflow(str(data), preset, dotted, Path(out) if out else None, resume,
                             Path(cache_dir) if cache_dir else None, allow_out_in_data=allow_out_in_data)
    return Run(Path(run_dir))


def ema(run: str | os.PathLike, stds: Sequence[float] = (0.05, 0.10, 0.15), out: str | os.PathLike = "ema",
        fp32: bool = False) -> dict[float, Path]:
    """Post-hoc EMA as `animegen ema` does: the run's EMA of each relative width in `stds`, rebuilt from the
    snapshots it stored (ema.snapshot_every), as model folders out/std-S/ -> {width: folder}; `load` takes them."""
    from animegen.workflows.ema import reconstruct_ema

    return {r.std: r.path for r in reconstruct_ema(run, list(stds), Path(out), half=not fp32)}


def evaluate(images: str | os.PathLike | Iterable[Image.Image], real: str | os.PathLike | None = None,
             metrics: Sequence[str] = ("afd", "swd"), **options: Any) -> dict[str, float]:
    """Score a folder (or a list of PIL images) as `animegen evaluate` does; options: batch_size, num_workers,
    inception_weights, detector, detector_weights, device, seed."""
    from animegen.core.device import pick_device
    from animegen.metrics.registry import EvalContext
    from animegen.workflows.evaluate import evaluate as evaluate_workflow, parse_metrics

    options["device"] = pick_device(str(options.get("device", "auto")))
    names = parse_metrics(",".join(metrics))
    with tempfile.TemporaryDirectory(prefix="animegen-eval-") as tmp:
        if not isinstance(images, (str, os.PathLike)):  # PIL images: scored from JPEGs, like a hand-in
            for k, im in enumerate(images, start=1):
                save_jpeg(torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1),
                          Path(tmp) / f"{k}.jpg", 95)
            images = tmp
        ctx = EvalContext(images=Path(images), real=Path(real) if real else None, **options)
        return {k: v for k, v in evaluate_workflow(ctx, names).items() if not k.endswith("_seconds")}


def _loaded(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im.copy()
