"""Write tests/fixtures/fid/ from pytorch-fid itself, so tests/test_fid.py can check our FID against it.

Run with a Python that has pytorch-fid, torchvision and scipy (not project dependencies):

    PYTHONPATH=src /opt/peer/bin/python scripts/make_fid_fixture.py

Writes (about 175 KB, no weights):
  layout.json   key -> shape of the state dict pytorch-fid's fid_inception_v3() loads (the official
                pt_inception-2015-12-05-6726825d.pth layout)
  images/*.png  four small seeded noise images (not committed: tests/test_fid.py regenerates them from the seed)
  expected.npz  pytorch-fid's features (dims 64/192/768/2048) of those images under `random_state_dict(layout, SEED)`,
                and feature sets with pytorch-fid's FID between them (regular, rank-deficient, singular)
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image
from pytorch_fid import fid_score
from pytorch_fid import inception as pfi

from animegen.metrics.inception import random_state_dict

SEED = 0
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "fid"


def fid_layout() -> dict[str, list[int]]:
    """Key -> shape of fid_inception_v3()'s model, built exactly as pytorch-fid builds it, minus the download."""
    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return {k: list(v.shape) for k, v in net.state_dict().items()}


def pytorch_fid_model(layout: dict[str, list[int]], dims: int) -> pfi.InceptionV3:
    """pytorch-fid's own InceptionV3 for `dims`; its weight download is answered with the seeded weights.

    fid_inception_v3() loads them with strict=True, which also proves `layout` is the right one.
    """
    weights = random_state_dict(layout, SEED)
    with mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: weights):
        return pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).eval()


def write_images(folder: Path) -> list[Path]:
    """Four 64x48 noise images (a non-square size, so the 299x299 resize is exercised)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    paths = []
    for i in range(4):
        pixels = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
        # Smooth a little so the images are not pure noise: features then vary more between images.
        pixels = ((pixels.astype(np.uint16) + np.roll(pixels, 1, axis=1)) // 2).astype(np.uint8)
        path = folder / f"{i}.png"
        Image.fromarray(pixels, "RGB").save(path, optimize=True)
        paths.append(path)
    return paths


def pytorch_fid_distance(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """pytorch-fid's statistics (float64 activations, np.mean / np.cov) and its Frechet distance."""
    stats = []
    for feats in (feats1, feats2):
        act = np.empty(feats.shape)             # get_activations' float64 buffer
        act[:] = feats
        stats += [np.mean(act, axis=0), np.cov(act, rowvar=False)]
    return float(fid_score.calculate_frechet_distance(*stats))


def feature_sets(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Synthetic float32 "features": regular (100 x 64), rank-deficient (20 x 32), dead columns (30 x 32)."""
    mix = rng.normal(size=(64, 64))
    sets = {
        "feats_a": rng.normal(size=(100, 64)),
        "feats_b": 0.3 + rng.normal(size=(100, 64)) @ (0.2 * mix + np.eye(64)),
        "feats_c": rng.normal(size=(20, 32)),
        "feats_d": 0.1 + 1.5 * rng.normal(size=(20, 32)),
        "feats_e": np.maximum(rng.normal(size=(30, 32)), 0),
        "feats_f": np.maximum(rng.normal(size=(30, 32)) + 0.2, 0),
    }
    # Zero columns like dead ReLU units: the covariance product is exactly singular.
    sets["feats_e"][:, :4] = 0
    sets["feats_f"][:, :4] = 0
    return {k: v.astype(np.float32) for k, v in sets.items()}


def main() -> None:
    torch.manual_seed(SEED)
    layout = fid_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "layout.json").write_text(json.dumps(layout, indent=0) + "\n")

    files = write_images(OUT / "images")
    features = {}
    for dims in (64, 192, 768, 2048):
        model = pytorch_fid_model(layout, dims)
        act = fid_score.get_activations(files, model, batch_size=50, dims=dims, num_workers=0)
        assert np.isfinite(act).all() and act.std(axis=0).mean() > 1e-3, "degenerate features"
        features[f"features_{dims}"] = act.astype(np.float32)   # float32 values in a float64 buffer

    sets = feature_sets(np.random.default_rng(5678))
    fids = {f"fid_{a}{b}": pytorch_fid_distance(sets[f"feats_{a}"], sets[f"feats_{b}"])
            for a, b in ("ab", "cd", "ef")}
    np.savez_compressed(OUT / "expected.npz", seed=SEED, **features, **sets, **{k: np.float64(v) for k, v in fids.items()})
    pool3 = features["features_2048"]
    print(f"{len(layout)} keys; pool3 mean {pool3.mean():.4f} max {pool3.max():.4f}, std over images "
          f"{pool3.std(axis=0).mean():.4f}; " + ", ".join(f"{k}={v:.6f}" for k, v in fids.items()))


if __name__ == "__main__":
    main()
