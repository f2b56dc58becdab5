"""Wall time of `animegen generate` for N images (default: the shipped model, its default sampler).

    python benchmarks/generate_speed.py [--checkpoint RUN] [--num 1000] [--batch-sizes 125,250,500] [--reps 2]

Each repetition runs the real command in a fresh process (model load, sampling, JPEG writing included) and
reports the median per batch size.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--batch-sizes", default="250")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--extra", default="", help="more generate arguments, e.g. '--steps 15'")
    args = parser.parse_args()
    print("| batch | median s | img/s | runs |\n|---|---|---|---|")
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        times = []
        for _ in range(args.reps):
            with tempfile.TemporaryDirectory() as out:
                cmd = [sys.executable, "-m", "animegen", "generate", "--num", str(args.num), "--out", out,
                       "--force", "--batch-size", str(batch), *args.extra.split()]
                if args.checkpoint:
                    cmd += ["--checkpoint", args.checkpoint]
                start = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True)
                times.append(time.perf_counter() - start)
        med = statistics.median(times)
        print(f"| {batch} | {med:.1f} | {args.num / med:.1f} | {', '.join(f'{t:.1f}' for t in times)} |", flush=True)


if __name__ == "__main__":
    main()
