"""`animegen compare` (report Q2): the same model and seeds through several samplers, timed and scored.

Every sampler writes the same N seeds (image k uses seed k - 1 for all of them), so rows differ only in the sampler;
each row records NFE (network evaluations per image), wall time, img/s and the metrics of `animegen evaluate`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import torch

from animegen.core.atomic import write_json
from animegen.core.errors import UserError
from animegen.core.imagefiles import list_images, read_rgb
from animegen.metrics.registry import EvalContext
from animegen.samplers.run import SAMPLERS
from animegen.training.factory import config_from_checkpoint
from animegen.training.checkpoint import resolve_checkpoint
from animegen.viz.compare import plot_metrics_vs_nfe, save_side_by_side
from animegen.workflows.evaluate import evaluate
from animegen.workflows.generate import generate

log = logging.getLogger(__name__)
HIGHER_IS_BETTER = {"afd"}


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
    sampler: str
    steps: int

    @property
    def name(self) -> str:
        return f"{self.sampler}-{self.steps}"


def parse_samplers(text: str, timesteps: int) -> list[SamplerSpec]:
    """'ddpm:1000,ddim:50,dpmpp:20' -> specs; ddpm always runs all T steps, so its count must be T (or omitted)."""
    specs = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        sampler, _, steps = item.partition(":")
        if sampler not in SAMPLERS:
            raise UserError(f"--samplers {item}: unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
        try:
            n = int(steps) if steps else (timesteps if sampler == "ddpm" else 50)
        except ValueError:
            raise UserError(f"--samplers {item}: steps must be a whole number, e.g. ddim:50") from None
        if sampler == "ddpm" and n != timesteps:
            raise UserError(f"--samplers {item}: DDPM runs all T = {timesteps} steps of this model; write ddpm:{timesteps}")
        if not 1 <= n <= timesteps:
            raise UserError(f"--samplers {item}: steps must be between 1 and T = {timesteps}")
        specs.append(SamplerSpec(sampler, n))
    if not specs:
        raise UserError("--samplers is empty; e.g. ddpm:1000,ddim:50,dpmpp:20")
    return specs


def compare(checkpoint: str, real: Path | None, samplers: str, out: Path, num: int = 1000, seed: int = 0,
            batch_size: int = 250, metrics: tuple[str, ...] = ("afd", "swd"), device: str = "cpu",
            ctx_kwargs: dict | None = None) -> list[dict]:
    """Generate `num` images per sampler into out/samples/<sampler>-<steps>/, score them, write the report."""
    cfg = config_from_checkpoint(resolve_checkpoint(checkpoint))
    specs = parse_samplers(samplers, cfg.diffusion.timesteps)
    rows = []
    for spec in specs:
        folder = out / "samples" / spec.name
        log.info("%s: %d images", spec.name, num)
        start = time.perf_counter()
        generate(checkpoint, folder, num, spec.sampler, spec.steps, seed=seed, batch_size=batch_size,
                 force=True, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        ctx = EvalContext(images=folder, real=real, device=torch.device(device), **(ctx_kwargs or {}))
        scores = evaluate(ctx, list(metrics))
        rows.append({"sampler": spec.sampler, "steps": spec.steps, "nfe": spec.steps, "num": num,
                     "seconds": round(seconds, 2), "img_per_s": round(num / seconds, 2),
                     **{k: v for k, v in scores.items() if not k.endswith("_seconds")}})
        write_report(rows, out, checkpoint, num, seed, device, metrics)  # a killed compare keeps finished rows
    save_side_by_side([_first_images(out / "samples" / s.name, 8) for s in specs], [s.name for s in specs],
                      out / "samplers.png")
    return rows


def _first_images(folder: Path, k: int) -> torch.Tensor:
    return torch.stack([torch.from_numpy(read_rgb(p).copy()).permute(2, 0, 1) for p in list_images(folder)[:k]])


def write_report(rows: list[dict], out: Path, checkpoint: str, num: int, seed: int, device: str,
                 metrics: tuple[str, ...]) -> None:
    """report.json, report.md (the table) and metrics-vs-nfe.png from the rows so far."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "report.json", {"checkpoint": str(checkpoint), "num": num, "seed": seed, "device": device,
                                     "rows": rows})
    (out / "report.md").write_text(markdown_table(rows, metrics) + "\n")
    plot_metrics_vs_nfe(rows, [m for m in metrics if m in rows[0]], out / "metrics-vs-nfe.png")


def markdown_table(rows: list[dict], metrics: tuple[str, ...]) -> str:
    """One line per sampler; the reference for ratios is the row with the most NFE (DDPM when present)."""
    ref = max(rows, key=lambda r: r["nfe"])
    shown = [m for m in metrics if m in ref]
    head = ["sampler", "steps", "NFE", "wall s", "img/s", "speed-up", *(f"{m.upper()}" for m in shown)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["sampler"], str(r["steps"]), str(r["nfe"]), f"{r['seconds']:.1f}", f"{r['img_per_s']:.1f}",
                 f"{ref['seconds'] / r['seconds']:.1f}x"]
        for m in shown:
            rel = (r[m] - ref[m]) / ref[m] * 100 if ref[m] else 0.0
            cells.append(f"{r[m]:.3f} ({rel:+.1f}%)" if r is not ref else f"{r[m]:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
