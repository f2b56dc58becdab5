"""Training img/s of this checkout against an older commit, in one run, on this machine.

    python benchmarks/versions_speed.py [--old 66be909] [--presets cpu,strong] [--steps 20] [--reps 3]

Each repetition runs every version in a fresh process (alternating which goes first) that builds the preset's
trainer as `animegen train --max-minutes 60` would (so `--compile auto` decides as for an hour's run; the first
steps compile where it does), takes `--warmup` steps, then times `--steps` steps of `train_step()` on faces-1k.
Prints the CPU (model name, bf16 in hardware or not), medians per version and the new/old ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FACES = REPO.parent / "shared" / "data" / "faces-1k"


def worker(preset: str, steps: int, warmup: int) -> None:
    """Runs inside the version's own PYTHONPATH; prints {"img_s": ...}."""
    import torch

    from animegen.data.dataset import load_images
    try:  # since the house refactor (#14)
        from animegen.runs.presets import preset_config
        from animegen.training.diffusion_trainer import DiffusionTrainer as Trainer
    except ImportError:
        from animegen.training.loop import Trainer
        from animegen.training.presets import preset_config
    overrides = {"sample.every": 0, "max_minutes": 60.0}
    cfg = preset_config(preset, overrides)
    images = load_images(FACES, cfg.model.image_size, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), images, device="cpu")
        start = time.perf_counter()
        for _ in range(warmup):
            float(trainer.train_step())
        warm = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            loss = trainer.train_step()
        float(loss)
        seconds = time.perf_counter() - start
    print(json.dumps({"img_s": steps * cfg.optim.batch_size / seconds, "warmup_s": warm,
                      "threads": torch.get_num_threads()}))


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = "unknown CPU"
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}, {os.cpu_count()} cores, bf16 in hardware: {', '.join(native) if native else 'no'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="66be909", help="the commit to compare with")
    parser.add_argument("--presets", default="cpu,strong")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--worker", nargs=3, metavar=("PRESET", "STEPS", "WARMUP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))
        return
    print(cpu_name())
    with tempfile.TemporaryDirectory() as tmp:
        old_src = Path(tmp) / "old"
        old_src.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.old, "src"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
        versions = {args.old: old_src / "src", "this checkout": REPO / "src"}
        print(f"| preset | {args.old} img/s | this checkout img/s | ratio | runs |\n|---|---|---|---|---|")
        for preset in args.presets.split(","):
            runs: dict[str, list[float]] = {name: [] for name in versions}
            for rep in range(args.reps):
                order = list(versions) if rep % 2 == 0 else list(reversed(versions))
                for name in order:
                    env = {**os.environ, "PYTHONPATH": str(versions[name]),
                           "ANIMEGEN_CACHE": str(Path(tmp) / f"cache-{name.replace(' ', '-')}")}
                    proc = subprocess.run([sys.executable, __file__, "--worker", preset, str(args.steps),
                                           str(args.warmup)], capture_output=True, text=True, env=env, check=True)
                    runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1])["img_s"])
            old, new = (statistics.median(runs[name]) for name in versions)
            listed = "; ".join(", ".join(f"{v:.1f}" for v in runs[name]) for name in versions)
            print(f"| {preset} | {old:.1f} | {new:.1f} | {new / old:.2f}x | {listed} |", flush=True)


if __name__ == "__main__":
    main()
