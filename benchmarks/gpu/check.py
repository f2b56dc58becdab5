"""What the CPU test suite cannot check, on a GPU: the CUDA-graph step trains like the eager one, resumes bit for
bit, and a NaN inside the graph stops the run at the next check with the last checkpoint intact.

    PYTHONPATH=src python benchmarks/gpu/check.py --data .gpu-data/faces.zip

Prints one JSON line per check ({"check": ..., "ok": true/false, ...}); exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from animegen.core.errors import UserError
from animegen.data.dataset import load_images
from animegen.runs.checkpoint import resolve_checkpoint
from animegen.runs.presets import preset_config
from animegen.training.diffusion_trainer import DiffusionTrainer


def trainer(images: torch.Tensor, run_dir: Path, compile_: str, **extra) -> DiffusionTrainer:
    cfg = preset_config("simple", {"compile": compile_, "sample.every": 0, "save_every": 1000, **extra})
    return DiffusionTrainer(cfg, run_dir, images, device="cuda")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    images = load_images(args.data, 64, progress=False)[:2048]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. graph and eager learn the same: 200 steps, mean loss of the last 50 within 2%
        means = {}
        for setting in ("off", "auto"):
            t = trainer(images, tmp / f"agree-{setting}", setting)
            losses = [float(t.train_step()) for _ in range(200)]
            means[setting] = sum(losses[-50:]) / 50
        results.append({"check": "graph vs eager, mean loss of steps 151-200", **means,
                        "ok": abs(means["auto"] / means["off"] - 1) < 0.02})

        # 2. a graphed run resumes bit for bit: 6 + 6 steps against 12 straight
        straight = trainer(images, tmp / "straight", "auto")
        reference = [float(straight.train_step()) for _ in range(12)]
        first = trainer(images, tmp / "split", "auto")
        [first.train_step() for _ in range(6)]
        ckpt = first.save()
        resumed = trainer(images, tmp / "split", "auto")
        resumed.resume(ckpt)
        again = [float(resumed.train_step()) for _ in range(6)]
        pairs = list(zip(resumed.denoiser.net.parameters(), straight.denoiser.net.parameters()))
        # bit for bit where the GPU's kernels are deterministic; cuDNN's backward may add in any order
        close = all(abs(a - b) <= 1e-3 * abs(b) for a, b in zip(again, reference[6:]))
        results.append({"check": "graphed resume", "ok": close, "losses": again, "reference": reference[6:],
                        "losses_equal": again == reference[6:],
                        "weights_equal": all(torch.equal(p, q) for p, q in pairs),
                        "max_weight_diff": max(float((p - q).detach().abs().max()) for p, q in pairs)})

        # 3. a NaN inside the graph (step 7's batch, which goes in through the graph's input buffer): found at
        # the next save step, the checkpoint before it intact
        class Poisoned(DiffusionTrainer):
            def next_batch(self) -> torch.Tensor:
                x = super().next_batch()
                return x * float("nan") if self.step == 6 else x

        cfg = preset_config("simple", {"compile": "auto", "sample.every": 0, "steps": 20, "save_every": 4,
                                       "log_every": 5})
        t = Poisoned(cfg, tmp / "nan", images, device="cuda")
        try:
            t.run()
            stopped = None
        except UserError as err:
            stopped = str(err)
        ckpt = resolve_checkpoint(tmp / "nan")
        results.append({"check": "NaN under the graph", "stopped": stopped, "at_step": t.step, "checkpoint": ckpt.name,
                        "ok": stopped is not None and ckpt.name == "step-0000004"})
    for row in results:
        print(json.dumps(row), flush=True)
    sys.exit(0 if all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
