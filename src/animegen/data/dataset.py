"""The training set as one uint8 tensor (N, 3, H, W), decoded once and cached on disk.

The cache is keyed by the source's fingerprint (file names, sizes, mtimes) and the image size, so later
epochs and later runs decode nothing, and any change to the files rebuilds it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from animegen.core.atomic import atomic_path
from animegen.core.errors import UserError
from animegen.core.paths import user_cache_dir
from animegen.data.decode import decode_square
from animegen.data.sources import open_source

log = logging.getLogger(__name__)
CACHE_VERSION = 1


def cache_path(fingerprint: str, image_size: int, cache_dir: Path | None = None) -> Path:
    """Where the decoded tensor of a source lives."""
    root = Path(cache_dir) if cache_dir else user_cache_dir() / "datasets"
    return root / f"v{CACHE_VERSION}-{fingerprint}-{image_size}px.npy"


def load_images(
    path: str | os.PathLike, image_size: int, cache_dir: Path | None = None, progress: bool = True
) -> torch.Tensor:
    """All decodable images under `path` as uint8 (N, 3, image_size, image_size), from cache when possible.

    Files that fail to decode are skipped and counted in one warning; no usable image is a UserError.
    """
    source = open_source(path)
    if not source.names:
        raise UserError(f"{source.path}: no images found (looked for .jpg .jpeg .png .webp, recursively)")
    target = cache_path(source.fingerprint, image_size, cache_dir)
    if target.exists():
        try:
            return torch.from_numpy(np.load(target))
        except (OSError, ValueError):
            log.warning("decoded-image cache %s is unreadable; decoding again", target)
    images, skipped = _decode_all(source, image_size, progress)
    if skipped:
        shown = ", ".join(skipped[:SHOW_SKIPPED]) + (", ..." if len(skipped) > SHOW_SKIPPED else "")
        log.warning("%s: skipped %d of %d files that could not be decoded as images: %s", source.path,
                    len(skipped), len(source.names), shown)
    if images is None:
        raise UserError(f"{source.path}: none of the {len(source.names)} image files could be decoded")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, images)
    return torch.from_numpy(images)


def _decode_all(source, image_size: int, progress: bool) -> tuple[np.ndarray | None, list[str]]:
    """Decode every member into one preallocated array; returns (array or None, names of the skipped files)."""
    out = np.empty((len(source.names), 3, image_size, image_size), dtype=np.uint8)
    kept, skipped = 0, []
    bar = tqdm(source.iter_bytes(), total=len(source.names), desc="decoding images", unit="img",
               disable=not progress, leave=False)
    for name, raw in bar:
        array = decode_square(raw, image_size) if raw else None
        if array is None:
            skipped.append(str(name))
            continue
        out[kept] = array.transpose(2, 0, 1)
        kept += 1
    if kept == 0:
        return None, skipped
    return np.ascontiguousarray(out[:kept]), skipped


SHOW_SKIPPED = 5  # skipped files named in the warning


class BatchSampler:
    """Endless shuffled batches of indices, epoch by epoch, from a seeded generator (resumable).

    Under torch.distributed each rank takes its own interleaved shard of every epoch's permutation.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size = n, batch_size
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.position = 0, 0
        self._perm = self._new_perm()

    def _new_perm(self) -> torch.Tensor:
        perm = torch.randperm(self.n, generator=self.generator)
        return perm[self.rank :: self.world_size]

    def next(self) -> torch.Tensor:
        """(batch_size,) int64 indices; wraps into a new epoch when the shard runs out."""
        if self.position + self.batch_size > len(self._perm):
            self.epoch += 1
            self.position = 0
            self._perm = self._new_perm()
        idx = self._perm[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return idx

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "epoch": self.epoch, "position": self.position,
                "perm": self._perm.clone(), "n": self.n}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._perm = state["perm"].clone()
