"""FID feature extraction speed: animegen.metrics.fid against pytorch-fid, same images, same weights.

Needs pytorch-fid and torchvision next to animegen's own dependencies (not project dependencies):

    PYTHONPATH=src /opt/peer/bin/python benchmarks/peer/fid_speed.py --images 200 --reps 3

Both sides get the seeded random weights of tests/fixtures/fid (the real file is not downloaded),
run in this one process, alternate which goes first, and report img/s medians, the ratio and the
largest feature difference. pytorch-fid runs as calculate_fid_given_paths does (batch 50,
DataLoader with num_workers=1); ours with batch 50 and one decoding thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from pytorch_fid import fid_score
from pytorch_fid import inception as pfi

from animegen.core.imagefiles import list_images
from animegen.metrics import fid as ours
from animegen.metrics.inception import random_state_dict

REPO = Path(__file__).resolve().parents[2]
FACES = REPO.parent / "shared" / "data" / "faces-1k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--source", type=Path, default=FACES)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "peer" / "fid_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    layout = json.loads((REPO / "tests" / "fixtures" / "fid" / "layout.json").read_text())
    state = random_state_dict(layout, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for src in list_images(args.source)[:args.images]:
            shutil.copy(src, folder / src.name)
        files = list_images(folder)
        weights = Path(tmp) / "random-inception.pth"
        torch.save(state, weights)

        net, _ = ours.load_inception(weights)
        with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: state):
            theirs = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()

        def run_ours() -> np.ndarray:
            return ours.folder_features(folder, net, dims=2048, batch_size=50)

        def run_theirs() -> np.ndarray:
            with mock.patch.object(fid_score, "tqdm", lambda x: x):   # no progress bar in timings
                return fid_score.get_activations(files, theirs, batch_size=50, dims=2048,
                                                 device="cpu", num_workers=1)

        run_ours(), run_theirs()       # warm-up: allocator, oneDNN kernels, page cache
        rates: dict[str, list[float]] = {"animegen": [], "pytorch-fid": []}
        feats: dict[str, np.ndarray] = {}
        for rep in range(args.reps):
            order = [("animegen", run_ours), ("pytorch-fid", run_theirs)]
            for name, fn in order if rep % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                feats[name] = fn()
                rates[name].append(len(files) / (time.perf_counter() - start))
                print(f"rep {rep} {name:12s} {rates[name][-1]:6.2f} img/s", flush=True)

    med = {name: statistics.median(r) for name, r in rates.items()}
    diff = np.abs(feats["animegen"].astype(np.float64) - feats["pytorch-fid"]).max()
    print(f"\n{len(files)} images {Path(files[0]).suffix} from {args.source.name}, batch 50, fp32, CPU "
          f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}")
    for name in rates:
        print(f"{name:12s} median {med[name]:6.2f} img/s  (runs: {', '.join(f'{r:.2f}' for r in rates[name])})")
    pairs = [a / b for a, b in zip(rates["animegen"], rates["pytorch-fid"])]
    print(f"speed ratio animegen / pytorch-fid: {med['animegen'] / med['pytorch-fid']:.2f}x of medians "
          f"(per repetition: {', '.join(f'{r:.2f}' for r in pairs)})")
    print(f"max |feature difference|: {diff:.3g} (features up to {np.abs(feats['pytorch-fid']).max():.1f})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "images": len(files), "threads": args.threads, "torch": torch.__version__, "runs_img_s": rates,
        "median_img_s": med, "ratio_of_medians": med["animegen"] / med["pytorch-fid"], "pair_ratios": pairs,
        "max_abs_feature_diff": float(diff)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
