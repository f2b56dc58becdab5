"""`animegen evaluate` and `animegen fid-ref`: score a folder of generated faces with registered metrics."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import animegen.metrics.afd  # noqa: F401 - importing a metric module registers it
import animegen.metrics.fid  # noqa: F401
import animegen.metrics.swd  # noqa: F401
from animegen.core.atomic import write_json
from animegen.core.errors import UserError
from animegen.core.outputs import output_file, writing
from animegen.metrics.fid import compute_reference_stats, resolve_weights
from animegen.metrics.registry import METRICS, EvalContext

log = logging.getLogger(__name__)
NEEDS_REAL = ("fid", "swd")


def parse_metrics(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise UserError(f"unknown metric(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(sorted(METRICS))}")
    return names


def fid_available(weights: str | None) -> bool:
    """True when the FID Inception weights are on this machine (no download is tried)."""
    try:
        resolve_weights(weights)
        return True
    except UserError:
        return False


def evaluate(ctx: EvalContext, metrics: list[str]) -> dict[str, float]:
    """Run each named metric on ctx; returns all their numbers (plus seconds per metric)."""
    if not Path(ctx.images).is_dir():
        raise UserError(f"{ctx.images}: not a folder of images (give --images the folder you generated)")
    missing_real = [m for m in metrics if m in NEEDS_REAL and ctx.real is None]
    if missing_real:
        raise UserError(f"{', '.join(missing_real)} compare with real images: add --real FOLDER")
    if "fid" in metrics:
        resolve_weights(ctx.inception_weights)  # fail (or download) before minutes of other metrics run
    results: dict[str, float] = {}
    for name in metrics:
        start = time.perf_counter()
        results.update(METRICS[name](ctx))
        results[f"{name}_seconds"] = round(time.perf_counter() - start, 2)
    return results


def format_table(results: dict[str, float]) -> str:
    """A two-column table for the terminal."""
    width = max(len(k) for k in results)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 10}"]
    for key, value in results.items():
        shown = f"{value:.4f}" if isinstance(value, float) and not value.is_integer() else f"{int(value)}"
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)


def run_evaluate(ctx: EvalContext, metrics: list[str], json_out: Path | None = None) -> dict[str, float]:
    """`animegen evaluate`: the table on screen, and the same numbers as JSON (the path checked first)."""
    if json_out is not None:
        output_file(json_out)
    results = evaluate(ctx, metrics)
    print(format_table(results))
    if json_out is not None:
        ctx_dict = {k: str(v) for k, v in dataclasses.asdict(ctx).items()}
        with writing(json_out):
            write_json(json_out, {"metrics": results, "context": ctx_dict})
    return results


def fid_reference(real: Path, weights: str | None, batch_size: int = 50, cache_dir: Path | None = None) -> Path:
    """Precompute (and cache) the FID statistics of a real-image folder."""
    stats = compute_reference_stats(real, weights, batch_size=batch_size, cache_dir=cache_dir)
    return stats.path

