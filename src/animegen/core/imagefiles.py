"""Image files: finding and opening them (the one place that knows which suffixes count as images), and writing
samples as JPEG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animegen.core.atomic import atomic_path
from animegen.core.errors import UserError
from animegen.core.written import Skipped, kind_of

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """All image files under `folder`, recursively, sorted by natural order (2.jpg before 10.jpg), less those in
    the folders animegen wrote below it (run directories, generation folders, ...: core/written.py), which one
    log line counts. `folder` itself is always read, even if animegen wrote it (`evaluate --images submission`).

    Symlinked folders are not followed, so a symlink loop cannot hang the scan.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder of images (check the path)")
    found, skipped = [], Skipped()
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        here = Path(dirpath)
        kind = kind_of(here.name, {*dirs, *files}) if here != root else None
        if kind:
            dirs.clear()  # nothing below it is read
            skipped.add(kind, str(here.relative_to(root)), _count_images(here))
            continue
        found.extend(here / name for name in files if is_image_name(name))
    skipped.note(root)
    return sorted(found, key=natural_key)


def is_image_name(name: str) -> bool:
    """Whether a file (or archive member) name is one of the image files looked for; hidden files never are."""
    base = name.rsplit("/", 1)[-1]
    return base.lower().endswith(IMAGE_SUFFIXES) and not base.startswith(".")


def _count_images(folder: Path) -> int:
    return sum(is_image_name(name) for _, _, files in os.walk(folder, followlinks=False) for name in files)


def natural_key(path: Path) -> tuple:
    """Sort key that orders numbered files numerically: 2.jpg < 10.jpg."""
    stem = path.stem
    rel = str(path.parent)
    return (rel, 0, int(stem), "") if stem.isdigit() else (rel, 1, 0, stem)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode (L, LA, RGBA, P, CMYK, I;16, ...) as 8-bit RGB; transparency is composited on white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit/float greyscale: scale to 8 bits instead of clipping everything to white
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """One image file as a (H, W, 3) uint8 array; raises OSError/ValueError if it cannot be decoded."""
    with Image.open(path) as image:
        image.load()
        return np.asarray(to_rgb(image), dtype=np.uint8)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] -> uint8 (B, C, H, W), rounding as torchvision's save_image does."""
    return ((x.clamp(-1, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)


def save_jpeg(image: torch.Tensor, path: Path, quality: int) -> None:
    """uint8 (3, H, W) -> RGB JPEG, written atomically (a killed run leaves no torn file)."""
    with atomic_path(path) as tmp:
        Image.fromarray(image.permute(1, 2, 0).numpy(), "RGB").save(tmp, format="JPEG", quality=quality)
