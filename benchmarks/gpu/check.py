"""What the CPU test suite cannot check, on a GPU: the CUDA-graph step trains like the eager one, resumes bit for
bit, and a NaN inside the graph stops the run at the next check with the last checkpoint intact.

    PYTHONPATH=src python benchmarks/gpu/check.py --data .gpu-data/faces.zip [--precision fp16]

--precision fp16 checks the same with the loss scale inside the graph (training/grad_step.py).

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


SETTINGS = {"precision": "auto", "device": "cuda", "set": {}}  # from the command line


def trainer(images: torch.Tensor, run_dir: Path, compile_: str, **extra) -> DiffusionTrainer:
    # a short run: `auto` neither compiles inductor for it on a GPU nor on a CPU with native bf16
    cfg = preset_config("simple", {"compile": compile_, "sample.every": 0, "save_every": 1000, "steps": 1000,
                                   "precision": SETTINGS["precision"], **SETTINGS["set"], **extra})
    return DiffusionTrainer(cfg, run_dir, images, device=SETTINGS["device"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the checks (no graph there)")
    parser.add_argument("--steps", type=int, default=200, help="steps of the graph-vs-eager check")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides of every check's runs (JSON values), e.g. a tiny model for a dry run")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    SETTINGS.update(precision=args.precision, device=args.device, set=overrides)
    images = load_images(args.data, 64, progress=False)[:2048]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. graph and eager learn the same: 200 steps, mean loss of the last quarter within 2%
        means = {}
        for setting in ("off", "auto"):
            t = trainer(images, tmp / f"agree-{setting}", setting)
            losses = [float(t.train_step()) for _ in range(args.steps)]
            means[setting] = sum(losses[-args.steps // 4:]) / (args.steps // 4)
        results.append({"check": f"graph vs eager, mean loss of the last {args.steps // 4} of {args.steps} steps",
                        "precision": t.precision.name, **means, **t.grad_step.log_extras(),
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
                                       "precision": SETTINGS["precision"], **SETTINGS["set"],
                                       "log_every": 5})
        t = Poisoned(cfg, tmp / "nan", images, device=SETTINGS["device"])
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
