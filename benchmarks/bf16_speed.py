"""Training img/s with bf16 autocast vs fp32, same process, alternating (is `--bf16 auto` right on this CPU?).

    python benchmarks/bf16_speed.py [--presets simple,cpu] [--steps 15] [--reps 3]

Each repetition times `Trainer.train_step` for --steps steps (after 3 warm-up steps) at the preset's batch size on
faces-1k, fp32 and bf16 in turn; prints the median img/s of each and their ratio, and whether the CPU has bf16 in
hardware (what `--bf16 auto` decides on).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from animegen.core.device import cpu_has_native_bf16
from animegen.data.dataset import load_images
from animegen.training.diffusion_trainer import DiffusionTrainer
from animegen.runs.presets import preset_config

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces-1k"


def img_per_s(trainer: DiffusionTrainer, steps: int) -> float:
    for _ in range(3):
        trainer.train_step()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return steps * trainer.cfg.optim.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="simple,cpu")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 in hardware: {cpu_has_native_bf16()}")
    print("| preset | fp32 img/s | bf16 img/s | bf16 / fp32 | runs (fp32; bf16) |\n|---|---|---|---|---|")
    for name in args.presets.split(","):
        images = load_images(FACES, preset_config(name).model.image_size, progress=False)
        runs: dict[str, list[float]] = {"off": [], "on": []}
        with tempfile.TemporaryDirectory() as tmp:
            trainers = {mode: DiffusionTrainer(preset_config(name, {"bf16": mode, "sample.every": 0}), Path(tmp) / mode,
                                      images, device="cpu") for mode in runs}
            for _ in range(args.reps):
                for mode, trainer in trainers.items():
                    runs[mode].append(img_per_s(trainer, args.steps))
        fp32, bf16 = statistics.median(runs["off"]), statistics.median(runs["on"])
        listed = "; ".join(", ".join(f"{v:.1f}" for v in runs[m]) for m in ("off", "on"))
        print(f"| {name} | {fp32:.1f} | {bf16:.1f} | {bf16 / fp32:.2f}x | {listed} |", flush=True)


if __name__ == "__main__":
    main()
