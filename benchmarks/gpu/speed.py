"""Training img/s on one GPU, animegen against lucidrains' denoising-diffusion-pytorch, in one run.

    PYTHONPATH=src:benchmarks/peer python benchmarks/gpu/speed.py --data .gpu-data/faces.zip --json speed.json

For `simple` and `strong` at batch 16 (the homework's) and 128, one row per side:
- animegen `--compile off` (eager, bf16 autocast where the GPU has it, fused Adam), `--compile auto` (the whole
  step as one CUDA graph) and, with --inductor, `--compile on` (inductor + the graph; compiling takes a minute);
- lucidrains: its Trainer's inner loop as benchmarks/peer/train_speed.py runs it (fp32, its default: diffusion(img)
  -> backward -> clip 1.0 -> Adam -> EMA every 10 steps, loss.item() per step as its Trainer logs it).
animegen's step is Trainer.train_step() itself: uint8 set on the GPU -> gather -> augment -> loss -> backward ->
clip -> Adam -> EMA. Each row: warm-up steps (compiling/capturing), then img/s over `--seconds`, synchronised.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from animegen.data.dataset import load_images
from animegen.runs.presets import preset_config
from animegen.training.diffusion_trainer import DiffusionTrainer
from train_speed import LR, peer_side  # benchmarks/peer: the same peer step as on the CPU

BATCHES = (16, 128)
PRESETS = ("simple", "strong")


def rate(step: Callable[[], object], batch: int, seconds: float, warmup: int) -> tuple[float, float]:
    """(img/s over about `seconds` after `warmup` steps, seconds the warm-up took)."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    warm = time.perf_counter() - start
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            step()
        n += 10
        torch.cuda.synchronize()
    return n * batch / (time.perf_counter() - start), warm


def animegen_step(preset: str, batch: int, compile_: str, images: torch.Tensor, run_dir: Path) -> Callable:
    cfg = preset_config(preset, {"optim.batch_size": batch, "optim.lr": LR, "compile": compile_})
    trainer = DiffusionTrainer(cfg, run_dir, images, device="cuda")
    return trainer.train_step


def peer_step(preset: str, batch: int) -> Callable:
    return peer_side(preset, torch.rand(batch, 3, 64, 64, device="cuda")).train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sides", default="off,auto,peer",
                        help="animegen's --compile off / auto / on (on compiles for about a minute), and peer")
    parser.add_argument("--configs", default=",".join(f"{p}:{b}" for p in PRESETS for b in BATCHES),
                        help="preset:batch pairs")
    args = parser.parse_args()
    images = load_images(args.data, 64, progress=False)
    sides = args.sides.split(",")
    rows = []
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs.split(",")]
    for preset, batch in configs:
        for side in sides:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    step = peer_step(preset, batch) if side == "peer" else \
                        animegen_step(preset, batch, side, images, Path(tmp))
                    img_s, warm = rate(step, batch, args.seconds, warmup=3 if side == "on" else 10)
                    row = {"preset": preset, "batch": batch, "side": side, "img_s": round(img_s, 1),
                           "warmup_s": round(warm, 1)}
                except Exception as err:  # one failing row must not lose the others
                    row = {"preset": preset, "batch": batch, "side": side, "error": repr(err)[:500]}
            print(json.dumps(row), flush=True)
            rows.append(row)
            torch.cuda.empty_cache()
    table(rows)
    args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                     "rows": rows}, indent=1))


def table(rows: list[dict]) -> None:
    """Markdown: one line per preset x batch, img/s per side and each animegen side's ratio to the peer."""
    by = {(r["preset"], r["batch"], r["side"]): r.get("img_s") for r in rows}
    sides = [s for s in ("off", "auto", "on", "peer") if any(k[2] == s for k in by)]
    if "peer" not in sides:
        sides.append("peer")
    print("| preset | batch | " + " | ".join(sides) + " | " + " | ".join(f"{s}/peer" for s in sides[:-1]) + " |")
    print("|" + " --- |" * (2 + 2 * len(sides) - 1))
    for preset, batch in dict.fromkeys((r["preset"], r["batch"]) for r in rows):
        vals = [by.get((preset, batch, s)) for s in sides]
        peer = by.get((preset, batch, "peer"))
        ratios = [f"{v / peer:.2f}x" if v and peer else "-" for v in vals[:-1]]
        print(f"| {preset} | {batch} | " + " | ".join(f"{v:,.0f}" if v else "-" for v in vals) + " | "
              + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
