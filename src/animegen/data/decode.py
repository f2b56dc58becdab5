"""Decode one image file to a square uint8 RGB array of a given size (centre crop, antialiased resize)."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from animegen.core.imagefiles import to_rgb

# A 8000x8000 image is a photo, not a bomb; beyond ~180 Mpx we refuse (Pillow raises, the file is skipped).
Image.MAX_IMAGE_PIXELS = 90_000_000


def decode_square(raw: bytes, size: int) -> np.ndarray | None:
    """Raw file bytes -> (size, size, 3) uint8, or None if the bytes are not a decodable image.

    Non-square images are centre-cropped to a square first; animated images use their first frame.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EXIF/ICC/bomb warnings: the file still decodes or is skipped
            with Image.open(io.BytesIO(raw)) as image:
                # JPEG draft mode decodes big files at reduced scale: 8000x8000 costs no more than 1000x1000
                if image.format == "JPEG":
                    image.draft("RGB", (size * 2, size * 2))
                image.seek(0)
                image.load()
                rgb = to_rgb(image)
                w, h = rgb.size
                side = min(w, h)
                left, top = (w - side) // 2, (h - side) // 2
                square = rgb.crop((left, top, left + side, top + side))
                if side != size:
                    square = square.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
                array = np.asarray(square, dtype=np.uint8)
    except Exception:  # noqa: BLE001 - any decoder failure (truncated, not an image, bomb) means: skip this file
        return None
    if array.shape != (size, size, 3):
        return None
    return array
