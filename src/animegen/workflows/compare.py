"""`animegen compare` (report Q2): the same model and seeds through several samplers, timed and scored.

Every sampler writes the same N seeds (image k uses seed k - 1 for all of them), so rows differ only in the sampler;
each row records NFE (network evaluations per image), wall time, img/s and the metrics of `animegen evaluate`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import torch

from animegen.core.atomic import write_json
from animegen.core.errors import UserError
from animegen.core.imagefiles import list_images, read_rgb
from animegen.diffusion.parameterization import THRESHOLDS
from animegen.metrics.registry import EvalContext
from animegen.samplers.run import SAMPLERS
from animegen.samplers.timesteps import SPACINGS
from animegen.training.factory import config_from_checkpoint
from animegen.training.checkpoint import resolve_checkpoint
from animegen.viz.compare import plot_metrics_vs_nfe, row_label, save_side_by_side
from animegen.workflows.evaluate import evaluate
from animegen.workflows.generate import generate

log = logging.getLogger(__name__)
HIGHER_IS_BETTER = {"afd"}


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
    sampler: str
    steps: int
    eta: float = 0.0
    spacing: str = "uniform"
    threshold: str | None = None  # None: the model's own (its config's sample.threshold)

    def _options(self, eta_sep: str) -> list[str]:
        return ([f"eta{eta_sep}{self.eta:g}"] if self.eta else []) + (
            [self.spacing] if self.spacing != "uniform" else []) + ([self.threshold] if self.threshold else [])

    @property
    def variant(self) -> str:
        """The sampler and its non-default options, e.g. 'ddim eta=1': one line in the NFE plot."""
        return " ".join([self.sampler, *self._options("=")])

    @property
    def name(self) -> str:
        """Folder name of its samples, e.g. 'ddim-50' or 'ddim-50-eta1-trailing'."""
        return "-".join([self.sampler, str(self.steps), *self._options("")])


def parse_samplers(text: str, timesteps: int) -> list[SamplerSpec]:
    """'ddpm:1000,ddim:50:eta=1,dpmpp:20:spacing=logsnr' -> specs.

    ddpm always runs all T steps, so its count must be T (or omitted); options after the steps are eta (0..1: the
    noise of DDIM, or of DPM-Solver++ as an SDE solver), spacing (which timesteps a few-step sampler visits) and
    threshold (how x0 predictions are kept in range; default: the model's)."""
    specs = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        sampler, _, rest = item.partition(":")
        steps, *options = rest.split(":") if rest else [""]
        if sampler not in SAMPLERS:
            raise UserError(f"--samplers {item}: unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
        try:
            n = int(steps) if steps else (timesteps if sampler == "ddpm" else 50)
        except ValueError:
            raise UserError(f"--samplers {item}: steps must be a whole number, e.g. ddim:50") from None
        if sampler == "ddpm" and n != timesteps:
            raise UserError(f"--samplers {item}: DDPM runs all T = {timesteps} steps of this model; "
                            f"write ddpm:{timesteps}")
        if not 1 <= n <= timesteps:
            raise UserError(f"--samplers {item}: steps must be between 1 and T = {timesteps}")
        specs.append(SamplerSpec(sampler, n, **_parse_options(item, sampler, options)))
    if not specs:
        raise UserError("--samplers is empty; e.g. ddpm:1000,ddim:50,dpmpp:20")
    return specs


def _parse_options(item: str, sampler: str, options: list[str]) -> dict:
    """['eta=1', 'spacing=trailing'] -> {'eta': 1.0, 'spacing': 'trailing'}, refusing what the sampler ignores."""
    parsed: dict = {}
    for option in options:
        key, _, value = option.partition("=")
        if key == "eta" and sampler in ("ddim", "dpmpp"):
            try:
                parsed["eta"] = float(value)
            except ValueError:
                parsed["eta"] = None
            if parsed["eta"] is None or not 0.0 <= parsed["eta"] <= 1.0:
                raise UserError(f"--samplers {item}: eta must be a number from 0 to 1, e.g. ddim:50:eta=0.5")
        elif key == "spacing" and sampler != "ddpm":
            if value not in SPACINGS:
                raise UserError(f"--samplers {item}: unknown spacing {value!r}; choose from {', '.join(SPACINGS)}")
            parsed["spacing"] = value
        elif key == "threshold":
            if value not in THRESHOLDS:
                raise UserError(f"--samplers {item}: unknown threshold {value!r}; choose from {', '.join(THRESHOLDS)}")
            parsed["threshold"] = value
        else:
            allowed = "threshold=" if sampler == "ddpm" else "eta=, spacing=, threshold="
            raise UserError(f"--samplers {item}: unknown option {option!r} for {sampler} (options: {allowed})")
    return parsed


def compare(checkpoint: str, real: Path | None, samplers: str, out: Path, num: int = 1000, seed: int = 0,
            batch_size: int | None = None, metrics: tuple[str, ...] = ("afd", "swd"), device: str = "cpu",
            ctx_kwargs: dict | None = None, resume: bool = False) -> list[dict]:
    """Generate `num` images per sampler into out/samples/<name>/, score them, write the report.

    With `resume`, a sampler whose row is already in out/report.json (same checkpoint, num and seed) and whose
    images are all there keeps its images and wall time; only metrics that row lacks are computed."""
    cfg = config_from_checkpoint(resolve_checkpoint(checkpoint))
    specs = parse_samplers(samplers, cfg.diffusion.timesteps)
    earlier = earlier_rows(out, checkpoint, num, seed) if resume else {}
    rows = []
    for spec in specs:
        folder = out / "samples" / spec.name
        row = earlier.get(spec.name)
        if row is None or len(list_images(folder)) != num:
            log.info("%s: %d images", spec.name, num)
            seconds = _timed_generate(checkpoint, folder, num, spec, seed, batch_size, device)
            row = {"sampler": spec.sampler, "steps": spec.steps, "eta": spec.eta, "spacing": spec.spacing,
                   "threshold": spec.threshold or cfg.sample.threshold, "variant": spec.variant, "name": spec.name,
                   "nfe": spec.steps, "num": num, "seconds": round(seconds, 2), "img_per_s": round(num / seconds, 2)}
        else:
            log.info("%s: keeping the %d images and wall time of the earlier report", spec.name, num)
        missing = [m for m in metrics if m not in row]
        if missing:
            ctx = EvalContext(images=folder, real=real, device=torch.device(device), **(ctx_kwargs or {}))
            row.update({k: v for k, v in evaluate(ctx, missing).items() if not k.endswith("_seconds")})
        rows.append(row)
        # a killed compare keeps finished rows, and the earlier rows it has not reached yet
        pending = [earlier[s.name] for s in specs[len(rows):] if s.name in earlier]
        write_report(rows + pending, out, checkpoint, num, seed, device, metrics)
    save_side_by_side([_first_images(out / "samples" / s.name, 8) for s in specs], [s.name for s in specs],
                      out / "samplers.png")
    return rows


def _timed_generate(checkpoint: str, folder: Path, num: int, spec: SamplerSpec, seed: int, batch_size: int | None,
                    device: str) -> float:
    """Seconds to write `num` images with `spec`, model loading and JPEG encoding included."""
    start = time.perf_counter()
    generate(checkpoint, folder, num, spec.sampler, spec.steps, eta=spec.eta, seed=seed, batch_size=batch_size,
             spacing=spec.spacing, force=True, device=device, threshold=spec.threshold)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


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
