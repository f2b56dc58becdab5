"""AFD: anime-face detection rate, the share of images in which a detector finds at least one face.

Counted as the homework's seed `calculate_afd`: run the detector on every image file, count the images
with at least one detection, divide by the number of images. Two detectors:

- `animeface` (default, offline): nagadomi's AnimeFace 2009 via PyPI `animeface`; its model ships in the
  wheel. Each image is seen at 64x64 (as YOLO's imgsz=64 sees it), upscaled and given a white border,
  because the detector's smallest window (~43 px) barely fits a bare 64x64 face.
- `yolo`: the homework's YOLOv8 anime-face model (ultralytics, `pip install 'animegen[yolo]'`) with the
  seed's settings conf=0.8, iou=0.8, imgsz=64.
"""

from __future__ import annotations

import ctypes
import importlib.util
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from animegen.core.errors import UserError
from animegen.core.imagefiles import list_images, read_rgb
from animegen.metrics.registry import EvalContext, register

Detector = Callable[[Path], int]    # image file -> number of faces found

SEED_SIZE = 64                      # the seed's imgsz=64: every detector judges a 64x64 image
ANIMEFACE_UPSCALE = 96              # 64 -> 96 px before detection (docs/metrics-notes.md)
ANIMEFACE_PAD = 24                  # white border, px per side
ANIMEFACE_INSTALL = "pip install animeface"

YOLO_SETTINGS = {"conf": 0.8, "iou": 0.8, "imgsz": 64}
YOLO_WEIGHTS = "yolov8x6_animeface.pt"
YOLO_INSTALL = "pip install 'animegen[yolo]'"


# --- animeface -----------------------------------------------------------------------------------------
# The wheel's C extension `_nvxs.detect(obj)` does not check its argument: it reads `obj` as Pillow's
# `ImagingObject` {PyObject_HEAD; Imaging image} and walks `image` with the struct layout of Pillow 4.2.1,
# whose headers it was compiled against. `animeface.detect` passes a live `PIL.Image.getdata()` core.
# Pillow 12 replaced the struct's leading `char mode[7]` by a 4-byte mode enum, shifting every field: the
# extension then reads the height as the width and 0 as the height, scans an empty image and finds no face,
# silently. We hand it the layout it expects instead, built by ctypes over our own numpy pixels, so the
# detector works with any Pillow version. A ctypes instance keeps the pointer to its own buffer (`b_ptr`)
# right after PyObject_HEAD, exactly where `ImagingObject.image` sits, so the structure is its own handle.


class _Pillow421Imaging(ctypes.Structure):
    """The head of Pillow 4.2.1's `struct ImagingMemoryInstance` (libImaging/Imaging.h), what _nvxs reads."""

    _fields_ = [
        ("mode", ctypes.c_char * 7),   # "RGB" selects the RGB branch; rows are 4 bytes a pixel (RGBX)
        ("type", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("bands", ctypes.c_int),
        ("xsize", ctypes.c_int),
        ("ysize", ctypes.c_int),
        ("palette", ctypes.c_void_p),
        ("image8", ctypes.c_void_p),   # row pointers, as UINT8**
        ("image32", ctypes.c_void_p),  # row pointers, as INT32**
        ("image", ctypes.c_void_p),    # row pointers, as char**: the ones the RGB branch reads
    ]


def _nvxs_detect() -> Callable[[object], list[dict]]:
    """The compiled `animeface._nvxs.detect`, or a UserError saying how to install it."""
    try:
        from animeface import _nvxs
    except ImportError as err:
        raise UserError(f"AFD's offline detector needs the animeface package: {ANIMEFACE_INSTALL}") from err
    if not str(getattr(_nvxs, "__file__", "")).endswith((".so", ".pyd")):
        raise UserError("animeface is installed without its compiled detector (no wheel for this platform?): "
                        f"reinstall from a wheel, {ANIMEFACE_INSTALL}")
    return _nvxs.detect


def detect_animeface(rgb: np.ndarray) -> list[dict]:
    """AnimeFace 2009 on one image. rgb: (H, W, 3) uint8 -> one dict per face: 'likelihood', 'face_box', ..."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
    height, width, _ = rgb.shape
    rgbx = np.zeros((height, width, 4), np.uint8)
    rgbx[..., :3] = rgb
    row = rgbx.strides[0]
    rows = (ctypes.c_void_p * height)(*range(rgbx.ctypes.data, rgbx.ctypes.data + height * row, row))
    image = _Pillow421Imaging(b"RGB", 0, 8, 3, width, height, None,
                              ctypes.addressof(rows), ctypes.addressof(rows), ctypes.addressof(rows))
    if ctypes.c_void_p.from_address(id(image) + object.__basicsize__).value != ctypes.addressof(image):
        raise RuntimeError("this Python's ctypes objects do not start with their buffer pointer; "
                           "use animeface.detect with pillow<12 instead")
    return _nvxs_detect()(image)   # rgbx and rows stay alive until it returns


def animeface_canvas(rgb: np.ndarray, upscale: int = ANIMEFACE_UPSCALE, pad: int = ANIMEFACE_PAD,
                     resample: int = Image.BICUBIC) -> np.ndarray:
    """What the detector is shown. rgb: (H, W, 3) uint8 -> (upscale + 2 pad, upscale + 2 pad, 3) uint8.

    The image is first brought to 64x64 (antialiased), so a 96x96 real face and a 64x64 sample are judged
    from the same amount of detail, then upscaled and framed in white.
    """
    image = Image.fromarray(rgb)
    if image.size != (SEED_SIZE, SEED_SIZE):
        image = image.resize((SEED_SIZE, SEED_SIZE), Image.BICUBIC)
    if upscale != SEED_SIZE:
        image = image.resize((upscale, upscale), resample)
    canvas = np.full((upscale + 2 * pad, upscale + 2 * pad, 3), 255, np.uint8)
    canvas[pad:pad + upscale, pad:pad + upscale] = np.asarray(image)
    return canvas


def count_faces_animeface(path: Path) -> int:
    """Number of AnimeFace detections in one image file (preprocessed by `animeface_canvas`)."""
    return len(detect_animeface(animeface_canvas(_read(path))))


# --- yolo ----------------------------------------------------------------------------------------------


def yolo_detector(weights: str | None, device: torch.device) -> Detector:
    """The homework's YOLOv8 anime-face model with the seed's settings; ultralytics is imported only here."""
    missing = []
    if not weights or not Path(weights).is_file():
        where = f" ({weights} not found)" if weights else ""
        missing.append(f"its weights {YOLO_WEIGHTS}{where}: get the file from the homework or the "
                       "Fuyucch1/yolov8_animeface release and pass its path as --detector-weights")
    if importlib.util.find_spec("ultralytics") is None:
        missing.append(f"the ultralytics package: {YOLO_INSTALL}")
    if missing:
        raise UserError("AFD with --detector yolo needs " + "; and ".join(missing)
                        + " (or use the offline default, --detector animeface)")
    from ultralytics import YOLO

    model = YOLO(weights)
    # ultralytics names GPUs by index ("0"), not "cuda" or "cuda:0".
    where = str(device.index or 0) if device.type == "cuda" else device.type

    def count(path: Path) -> int:
        # One file a call, as the seed's loop over the folder; nothing is saved (metrics never write).
        results = model.predict(str(path), device=where, verbose=False, **YOLO_SETTINGS)
        return len(results[0].boxes)

    return count


# --- the metric ----------------------------------------------------------------------------------------


def _read(path: Path) -> np.ndarray:
    try:
        return read_rgb(path)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read image ({err})") from err


def count_faces(paths: list[Path], detector: str = "animeface", weights: str | None = None,
                device: torch.device | None = None, num_workers: int = 0) -> list[int]:
    """Faces found per image file, by `detector` ("animeface" or "yolo"), in the order of `paths`."""
    if detector == "animeface":
        _nvxs_detect()   # fail before any work (and before spawning workers) when it is missing
        if num_workers > 0:
            # The C detector holds the GIL, so parallelism needs processes; chunks amortise the pickling.
            with ProcessPoolExecutor(max_workers=num_workers) as pool:
                return list(pool.map(count_faces_animeface, paths, chunksize=32))
        return [count_faces_animeface(path) for path in paths]
    if detector == "yolo":
        count = yolo_detector(weights, device or torch.device("cpu"))
        return [count(path) for path in paths]
    raise UserError(f"unknown AFD detector {detector!r}: use 'animeface' (offline) or 'yolo'")


def detection_rate(faces: list[int]) -> float:
    """The seed's score: images with at least one face / images."""
    return sum(n > 0 for n in faces) / len(faces)


@register("afd")
def afd(ctx: EvalContext) -> dict[str, float]:
    """Anime-face detection rate of ctx.images: {"afd": rate in [0, 1], "afd_n": images scored}."""
    paths = list_images(ctx.images)
    if not paths:
        raise UserError(f"{ctx.images}: no images found (.jpg, .jpeg, .png, .webp)")
    faces = count_faces(paths, ctx.detector, ctx.detector_weights, ctx.device, ctx.num_workers)
    return {"afd": detection_rate(faces), "afd_n": float(len(paths))}
