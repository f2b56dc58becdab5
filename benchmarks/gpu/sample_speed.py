"""Seconds to sample 1000 faces in one process (model loaded, one warm-up batch), fp32 against bf16 autocast.

    PYTHONPATH=src python benchmarks/gpu/sample_speed.py [--checkpoint RUN] [--num 1000] [--device cuda]

The whole `animegen generate` command (start-up, JPEG writing) is timed by benchmarks/generate_speed.py.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from animegen.runs.model import TrainedModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for bf16 in ("off", "on"):
        model = TrainedModel.load(args.checkpoint, args.device, bf16)
        list(model.images(range(100)))  # warm-up: kernels, cuDNN plans
        sync()
        start = time.perf_counter()
        n = sum(len(batch) for batch in model.images(range(args.num), batch_size=args.num))
        sync()
        print(json.dumps({"bf16": bf16, "num": n, "seconds": round(time.perf_counter() - start, 3),
                          "sampler": model.spec.label}), flush=True)


if __name__ == "__main__":
    main()
