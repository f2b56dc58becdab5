"""`animegen compare` (report Q2): the same model and seeds through several samplers, timed and scored.

Every sampler writes the same N seeds (image k uses seed k - 1 for all of them), so rows differ only in the sampler;
each row records NFE (network evaluations per image), wall time, img/s and the metrics of `animegen evaluate`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from animegen.core.atomic import write_json
from animegen.core.errors import UserError
from animegen.core.imagefiles import list_images, read_rgb
from animegen.core.outputs import output_dir
from animegen.metrics.registry import EvalContext
from animegen.runs.model import TrainedModel
from animegen.samplers.spec import SamplerSpec, parse_spec
from animegen.samplers.table import SAMPLERS
from animegen.viz.compare import plot_metrics_vs_nfe, row_label, save_side_by_side
from animegen.workflows.evaluate import evaluate
from animegen.workflows.generate import generate

log = logging.getLogger(__name__)


def parse_samplers(text: str, model: TrainedModel) -> list[tuple[TrainedModel, SamplerSpec]]:
    """'ddpm,ddim:50:eta=1,dpmpp:20:spacing=logsnr' -> (the model that runs each, its resolved spec): a sampler that
    needs a student runs on the model's (runs/model.py); what an item leaves out is that model's own."""
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise UserError("--samplers is empty; e.g. ddpm,ddim:50,dpmpp:20")
    rows = []
    for item in items:
        try:
            name = item.partition(":")[0]
            runner = model.runner(name) if name in SAMPLERS else model  # parse_spec names an unknown sampler
            rows.append((runner, parse_spec(item, runner.spec).resolve(runner.net.timesteps)))
        except UserError as err:
            raise UserError(f"--samplers {item}: {err}") from None
    return rows


def compare(model: TrainedModel, real: Path | None, samplers: str, out: Path, num: int = 1000, seed: int = 0,
            batch_size: int | None = None, metrics: tuple[str, ...] = ("afd", "swd"),
            ctx_kwargs: dict | None = None, resume: bool = False) -> list[dict]:
    """Generate `num` images per sampler into out/samples/<label>/, score them, write the report. Rows of a
    sampler that needs a student sample with the model's (`model.with_student(...)` to give one).

    With `resume`, a sampler whose row is already in out/report.json (same checkpoint, num and seed) and whose
    images are all there keeps its images and wall time; only metrics that row lacks are computed."""
    if model.kind != "diffusion":
        raise UserError(f"{model.checkpoint}: a StyleGAN2 checkpoint; compare runs diffusion samplers, a GAN has none")
    runs = parse_samplers(samplers, model)
    specs = [spec for _, spec in runs]
    output_dir(out)
    checkpoint = str(model.checkpoint)
    earlier = earlier_rows(out, checkpoint, num, seed) if resume else {}
    rows = []
    for sampler_model, spec in runs:
        folder = out / "samples" / spec.label
        row = earlier.get(spec.label)
        if row is None or row.get("checkpoint", checkpoint) != str(sampler_model.checkpoint) \
                or not folder.is_dir() or len(list_images(folder)) != num:
            log.info("%s: %d images", spec.label, num)
            start = time.perf_counter()  # model loading is paid once, before the first row
            generate(sampler_model, folder, num, seed, spec, batch_size, force=True)
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            row = {"sampler": spec.name, "steps": spec.steps, "eta": spec.eta, "spacing": spec.spacing,
                   "threshold": spec.threshold, "variant": spec.variant, "name": spec.label,
                   "nfe": round(sampler_model.evaluations(spec), 2), "num": num, "seconds": round(seconds, 2),
                   "img_per_s": round(num / seconds, 2), "checkpoint": str(sampler_model.checkpoint)}
            if sampler_model.denoiser is not sampler_model.net:  # autoguidance: with what, how strongly
                row.update(guide=sampler_model.guide_name, guidance=sampler_model.guidance)
        else:
            log.info("%s: keeping the %d images and wall time of the earlier report", spec.label, num)
        missing = [m for m in metrics if m not in row]
        if missing:
            ctx = EvalContext(images=folder, real=real, device=model.device, **(ctx_kwargs or {}))
            row.update({k: v for k, v in evaluate(ctx, missing).items() if not k.endswith("_seconds")})
        rows.append(row)
        # a killed compare keeps finished rows, and the earlier rows it has not reached yet
        pending = [earlier[s.label] for s in specs[len(rows):] if s.label in earlier]
        write_report(rows + pending, out, checkpoint, num, seed, str(model.device), metrics)
    save_side_by_side([_first_images(out / "samples" / s.label, 8) for s in specs], [s.label for s in specs],
                      out / "samplers.png")
    return rows


def compare_models(models: dict[str, TrainedModel], real: Path | None, samplers: str, out: Path, num: int = 1000,
                   seed: int = 0, batch_size: int | None = None, metrics: tuple[str, ...] = ("afd", "swd"),
                   ctx_kwargs: dict | None = None, resume: bool = False) -> list[dict]:
    """Several models by name (e.g. the widths `animegen ema` rebuilt) through the same samplers and seeds: each
    compared into out/<name>/ as above, then every row in one table (out/report.md, report.json) and the first
    sampler's images of each model side by side (out/models.png)."""
    rows = []
    for name, model in models.items():
        rows += [{"model": name, **row} for row in compare(model, real, samplers, out / name, num, seed, batch_size,
                                                            metrics, ctx_kwargs, resume)]
        write_json(out / "report.json", {"num": num, "seed": seed, "rows": rows})
        (out / "report.md").write_text(models_table(rows, metrics) + "\n")
    first = rows[0]["name"]
    save_side_by_side([_first_images(out / name / "samples" / first, 8) for name in models], list(models),
                      out / "models.png")
    return rows


def models_table(rows: list[dict], metrics: tuple[str, ...]) -> str:
    """One line per model and sampler, the metrics as measured."""
    shown = [m for m in metrics if m in rows[0]]
    head = ["model", "sampler", "NFE", "wall s", *(m.upper() for m in shown)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], row_label(r), str(r["nfe"]), f"{r['seconds']:.1f}", *(f"{r[m]:.3f}" for m in shown)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def earlier_rows(out: Path, checkpoint: str, num: int, seed: int) -> dict[str, dict]:
    """Rows of out/report.json by sampler name, or {} when there is none or it was made with other settings."""
    try:
        report = json.loads((out / "report.json").read_text())
    except (OSError, ValueError):
        return {}
    if (report.get("checkpoint"), report.get("num"), report.get("seed")) != (str(checkpoint), num, seed):
        log.warning("%s: made with another checkpoint, --num or --seed; running every sampler again",
                    out / "report.json")
        return {}
    return {row["name"]: row for row in report.get("rows", []) if "name" in row}


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
        cells = [row_label(r), str(r["steps"]), str(r["nfe"]), f"{r['seconds']:.1f}", f"{r['img_per_s']:.1f}",
                 f"{ref['seconds'] / r['seconds']:.1f}x"]
        for m in shown:
            rel = (r[m] - ref[m]) / ref[m] * 100 if ref[m] else 0.0
            cells.append(f"{r[m]:.3f} ({rel:+.1f}%)" if r is not ref else f"{r[m]:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
