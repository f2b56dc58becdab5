"""AFD: the offline AnimeFace detector finds real faces (faces-1k resized to 64x64, first 300 images to
stay fast), not noise, and far fewer upside-down faces; the YOLO path explains what it is missing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import PIL
import pytest
from PIL import Image

from animegen.core.errors import UserError
from animegen.core.imagefiles import list_images
from animegen.metrics.afd import (YOLO_WEIGHTS, animeface_canvas, count_faces, detect_animeface,
                                  detection_rate)
from animegen.metrics.registry import METRICS, EvalContext

animeface = pytest.importorskip("animeface")

SUBSET = 300   # of faces-1k: the full 1000 give the same picture (docs/metrics-notes.md) in 3x the time


@pytest.fixture(scope="module")
def faces(faces_dir) -> list[np.ndarray]:
    """The first SUBSET faces of faces-1k, resized to 64x64 like generated samples: (64, 64, 3) uint8."""
    return [np.asarray(Image.open(p).convert("RGB").resize((64, 64), Image.BICUBIC))
            for p in list_images(faces_dir)[:SUBSET]]


def _save(images: list[np.ndarray], folder: Path) -> Path:
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i}.png")
    return folder


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # animeface calls Image.getdata (Pillow >= 12)
def test_works_whatever_the_pillow_version(faces):
    """animeface.detect reads Pillow's C struct and finds nothing with Pillow >= 12; our handle does not."""
    canvas = animeface_canvas(faces[0])
    ours = detect_animeface(canvas)
    assert ours and ours[0]["likelihood"] > 0.5
    try:
        theirs = animeface.detect(Image.fromarray(canvas))
    except AttributeError:   # Pillow >= 14 drops Image.getdata, which animeface.detect calls
        theirs = []
    if theirs:   # Pillow < 12 (or a fixed animeface): both must agree exactly
        assert [f.face.pos.x for f in theirs] == [f["face_box"][0] for f in ours]
        assert [f.likelihood for f in theirs] == pytest.approx([f["likelihood"] for f in ours])
    else:
        assert int(PIL.__version__.split(".")[0]) >= 12


@pytest.mark.slow
def test_real_faces_detected_through_registry(tmp_path, faces):
    folder = _save(faces, tmp_path / "faces64")
    result = METRICS["afd"](EvalContext(images=folder))
    assert result["afd_n"] == SUBSET
    assert result["afd"] >= 0.85, result


@pytest.mark.slow
def test_noise_is_not_a_face():
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(100)]
    rate = detection_rate([len(detect_animeface(animeface_canvas(x))) for x in noise])
    assert rate <= 0.05


def test_upside_down_faces_clearly_lower(faces):
    upright = detection_rate([len(detect_animeface(animeface_canvas(x))) for x in faces[:100]])
    flipped = detection_rate([len(detect_animeface(animeface_canvas(x[::-1]))) for x in faces[:100]])
    assert flipped <= 0.2 and upright - flipped >= 0.5, (upright, flipped)


def test_worker_processes_count_the_same(tmp_path, faces):
    paths = list_images(_save(faces[:12] + [x[::-1] for x in faces[:4]], tmp_path / "mix"))
    assert count_faces(paths, num_workers=2) == count_faces(paths)


def test_any_size_is_judged_at_64():
    small = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(small).resize((96, 96), Image.BICUBIC))
    assert animeface_canvas(big).shape == animeface_canvas(small).shape
    assert np.array_equal(animeface_canvas(small, upscale=64, pad=0), small)


def test_yolo_says_what_is_missing(faces_dir, tmp_path):
    with pytest.raises(UserError) as missing_weights:
        METRICS["afd"](EvalContext(images=faces_dir, detector="yolo"))
    message = str(missing_weights.value)
    assert "\n" not in message
    assert YOLO_WEIGHTS in message and "Fuyucch1/yolov8_animeface" in message
    if importlib.util.find_spec("ultralytics") is None:
        assert "pip install 'animegen[yolo]'" in message
        weights = tmp_path / YOLO_WEIGHTS
        weights.write_bytes(b"")
        with pytest.raises(UserError, match=r"pip install 'animegen\[yolo\]'") as missing_package:
            count_faces([weights], detector="yolo", weights=str(weights))
        assert YOLO_WEIGHTS not in str(missing_package.value).split("needs")[1]


def test_unknown_detector_and_missing_package(tmp_path, monkeypatch):
    _save([np.zeros((64, 64, 3), np.uint8)], tmp_path / "one")
    with pytest.raises(UserError, match="unknown AFD detector"):
        METRICS["afd"](EvalContext(images=tmp_path / "one", detector="retina"))
    monkeypatch.setitem(sys.modules, "animeface", None)   # as if it were not installed
    with pytest.raises(UserError, match="pip install animeface"):
        METRICS["afd"](EvalContext(images=tmp_path / "one"))
