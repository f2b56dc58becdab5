"""The long jobs: Download writes the hand-in through `generate` itself (so its archive is byte for byte the
command's), Score runs `evaluate`'s metrics. Both write only under the hand-in folder (--out):
OUT/images/1.jpg..N.jpg and OUT/images.tgz, and OUT/score/ for faces drawn to be scored."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from animegen.api import Model
from animegen.core.device import pick_device
from animegen.metrics.registry import EvalContext
from animegen.samplers.spec import SamplerSpec
from animegen.serve.worker import Gate
from animegen.workflows.evaluate import evaluate, format_table
from animegen.workflows.generate import generate

Progress = Callable[..., None]


class Paced:
    """A model whose batches are drawn one at a time through the gate (page requests go between them),
    counting faces for the progress bar; everything else is the model's own."""

    def __init__(self, model: Model, gate: Gate, progress: Progress, total: int, then: str):
        self._model, self._gate, self._progress, self._done = model, gate, progress, 0
        self._total, self._then = total, then  # the phase that follows the last batch

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def images(self, *args, **kwargs) -> Iterator:
        with self._gate.use(urgent=False):
            batches = self._model.images(*args, **kwargs)
        while True:
            with self._gate.use(urgent=False):
                batch = next(batches, None)
            if batch is None:
                return
            self._done += len(batch)
            self._progress(done=self._done, phase="drawing faces" if self._done < self._total else self._then)
            yield batch


def write_handin(model: Model, out: Path, num: int, seed: int, spec: SamplerSpec | None, psi: float,
                 gate: Gate, progress: Progress) -> dict:
    """`generate --num NUM --seed SEED --out OUT/images --tgz OUT/images.tgz --force` with this model."""
    progress(phase="drawing faces")
    paced = Paced(model, gate, progress, num, "fitting the JPEG quality under 2,000,000 bytes")
    done = generate(paced, out / "images", num, seed, spec, None, psi, out / "images.tgz", force=True)
    return {"folder": str(done.out.resolve()), "tgz": str(done.tgz.resolve()), "tgz_bytes": done.tgz_bytes,
            "num": done.num, "jpeg_quality": done.jpeg_quality}


def score(images: Path, real: Path | None, device: str, gate: Gate, progress: Progress) -> dict:
    """AFD (and SWD, given real faces) of a folder, as `animegen evaluate` prints them."""
    metrics = ["afd", "swd"] if real is not None else ["afd"]
    progress(phase=f"scoring {', '.join(m.upper() for m in metrics)}")
    ctx = EvalContext(images=images, real=real, device=pick_device(device))
    with gate.use(urgent=False):  # the metrics run whole: page requests wait for them
        results = evaluate(ctx, metrics)
    return {"table": format_table(results), "metrics": results, "images": str(images)}


def score_model(model: Model, out: Path, num: int, spec: SamplerSpec | None, psi: float, real: Path | None,
                device: str, gate: Gate, progress: Progress) -> dict:
    """Draw `num` faces (seeds 0..num-1) into OUT/score with `generate`, then score them."""
    generate(Paced(model, gate, progress, num, "writing the faces"), out / "score", num, 0, spec, None, psi,
             force=True)
    return score(out / "score", real, device, gate, progress)
