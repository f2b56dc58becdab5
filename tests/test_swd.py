"""SWD (Karras et al. 2018): pyramid identical to their numpy/scipy one, and the distance ranks real-vs-real
splits far below real-vs-blurred and real-vs-noise on real faces (faces-1k, 96x96, resized to 64x64)."""

from __future__ import annotations


import numpy as np
import pytest
import scipy.ndimage
import torch
from PIL import Image, ImageFilter

from animegen.core.errors import UserError
from animegen.core.imagefiles import list_images
from animegen.metrics.registry import METRICS, EvalContext
from animegen.metrics.swd import GAUSSIAN_5X5, laplacian_pyramid, load_images_64, pyr_up, swd_between



@pytest.fixture(scope="module")
def faces(faces_dir) -> np.ndarray:
    """The first 400 faces of faces-1k as (400, 64, 64, 3) uint8."""
    return load_images_64(list_images(faces_dir)[:400])


def _karras_pyramid(x: np.ndarray, levels: int) -> list[np.ndarray]:
    """Karras's `generate_laplacian_pyramid` (scipy, mirror borders), restated as the reference."""
    kernel = GAUSSIAN_5X5.numpy()[None, None]

    def down(m):
        return scipy.ndimage.convolve(m, kernel, mode="mirror")[:, :, ::2, ::2]

    def up(m):
        zeros = np.zeros(m.shape[:2] + (2 * m.shape[2], 2 * m.shape[3]), m.dtype)
        zeros[:, :, ::2, ::2] = m
        return scipy.ndimage.convolve(zeros, kernel * 4.0, mode="mirror")

    pyramid = [x.astype(np.float32)]
    for _ in range(1, levels):
        pyramid.append(down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - up(pyramid[-1])
    return pyramid


def test_pyramid_matches_karras_reference():
    x = np.random.default_rng(0).integers(0, 256, (3, 3, 64, 64)).astype(np.float32)
    ours = laplacian_pyramid(torch.from_numpy(x), 3)
    theirs = _karras_pyramid(x, 3)
    assert [level.shape[-1] for level in ours] == [64, 32, 16]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b, atol=1e-3)
    # The low-pass residual plus the band-pass levels rebuild the image exactly.
    rebuilt = ours[-1]
    for level in ours[-2::-1]:
        rebuilt = pyr_up(rebuilt) + level
    np.testing.assert_allclose(rebuilt.numpy(), x, atol=1e-3)


def test_identical_sets_give_zero_and_seed_is_deterministic():
    images = np.random.default_rng(1).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    first = swd_between(images, images[::-1], seed=3)
    assert first == swd_between(images, images[::-1], seed=3)
    assert set(first) == {"swd", "swd_64", "swd_32", "swd_16"}
    assert first["swd"] == pytest.approx(np.mean([first["swd_64"], first["swd_32"], first["swd_16"]]))
    with pytest.raises(ValueError):
        swd_between(images, images[:4])


@pytest.mark.slow
def test_real_split_far_below_blurred_and_noise(faces):
    a, b = faces[:200], faces[200:400]
    blurred = np.stack([np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(1.0))) for x in b])
    noise = np.random.default_rng(0).integers(0, 256, b.shape, dtype=np.uint8)
    real = swd_between(a, b)["swd"]
    blur = swd_between(a, blurred)["swd"]
    rand = swd_between(a, noise)["swd"]
    assert real < 0.6 * blur < 0.6 * rand, (real, blur, rand)
    # Blur removes the finest band: it shows at 64 px far more than at 16 px.
    per_level = swd_between(a, blurred)
    assert per_level["swd_64"] > 2 * per_level["swd_16"]


def test_registry_metric_on_folders(tmp_path, faces, faces_dir):
    fake = tmp_path / "fake"
    fake.mkdir()
    for i, image in enumerate(faces[:40]):
        Image.fromarray(image[::-1]).save(fake / f"{i}.png")   # 64x64 upside-down faces
    real = tmp_path / "real"
    real.mkdir()
    for path in list_images(faces_dir)[400:460]:                    # 60 files at 96x96: a subset of 40 is used
        (real / path.name).symlink_to(path)
    ctx = EvalContext(images=fake, real=real, seed=5)
    first = METRICS["swd"](ctx)
    assert METRICS["swd"](ctx) == first                          # deterministic given the seed
    upright = tmp_path / "upright"
    upright.mkdir()
    for i, image in enumerate(faces[40:80]):
        Image.fromarray(image).save(upright / f"{i}.png")
    assert METRICS["swd"](EvalContext(images=upright, real=real, seed=5))["swd"] \
        < first["swd"]


def test_user_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="real images"):
        METRICS["swd"](EvalContext(images=tmp_path))
    with pytest.raises(UserError, match="no images"):
        METRICS["swd"](EvalContext(images=tmp_path / "empty", real=tmp_path / "empty"))
