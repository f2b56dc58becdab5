"""Time AFD (offline animeface detector) and SWD on 1000 real faces.

    PYTHONPATH=src python benchmarks/metrics_speed.py [--faces ../shared/data/faces-1k] [--workers 0]

AFD scores the folder as it is (96x96 files, judged at 64x64). SWD compares a folder of the same faces
saved at 64x64 with the 96x96 originals, then times its two parts: decoding and the distance itself.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animegen.core.imagefiles import list_images
from animegen.metrics import afd as _afd  # noqa: F401  (importing registers "afd" and "swd")
from animegen.metrics.registry import METRICS, EvalContext
from animegen.metrics.swd import load_images_64, swd_between

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces-1k"


def timed(label: str, n: int, fn):
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<44} {seconds:7.2f} s  {n / seconds:8.1f} img/s  {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=FACES, help="folder of real faces")
    parser.add_argument("--workers", type=int, default=0, help="AFD worker processes (0: in-process)")
    args = parser.parse_args()
    paths = list_images(args.faces)
    n = len(paths)
    print(f"{n} images from {args.faces}; torch threads {torch.get_num_threads()}")

    timed(f"AFD animeface, workers={args.workers}", n,
          lambda: METRICS["afd"](EvalContext(images=args.faces, num_workers=args.workers)))

    with tempfile.TemporaryDirectory() as tmp:
        fake = Path(tmp) / "fake64"
        fake.mkdir()
        images = load_images_64(paths)
        for i, image in enumerate(images):
            Image.fromarray(image).save(fake / f"{i}.png")
        ctx = EvalContext(images=fake, real=args.faces)
        timed("SWD folders (64x64 PNG vs 96x96 JPEG)", n, lambda: _rounded(METRICS["swd"](ctx)))
        timed("  of which: decode + resize 1000 files", n, lambda: load_images_64(paths).shape)
        shuffled = images[np.random.default_rng(0).permutation(n)]
        timed("  of which: SWD on decoded arrays", n, lambda: _rounded(swd_between(images, shuffled)))


def _rounded(result: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 2) for key, value in result.items()}


if __name__ == "__main__":
    main()
