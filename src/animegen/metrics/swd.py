"""SWD: multi-scale sliced Wasserstein distance between two folders of images.

Karras et al. 2018, "Progressive Growing of GANs", section 5 and their `metrics/sliced_wasserstein.py`:
a Laplacian pyramid per image (64 -> 32 -> 16), 128 random 7x7x3 patches per image and level, each set of
patches normalized per channel by its own mean/std, then 4 x 128 random directions; the distance between
the sorted projections is averaged and reported x1e3, per level (`swd_64`, ...) and averaged (`swd`).
Needs no weights. Both folders are resized to 64x64 first, so 96x96 reals compare to 64x64 samples.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from animegen.core.errors import UserError
from animegen.core.imagefiles import list_images, read_rgb
from animegen.metrics.registry import EvalContext, register

IMAGE_SIZE = 64
RESOLUTIONS = (64, 32, 16)          # pyramid levels, "down to 16x16"
NHOOD_SIZE = 7                      # 7x7 patches
NHOODS_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
log = logging.getLogger(__name__)
MAX_IMAGES = 8192                   # images per folder at most (memory)
MIN_IMAGES = 256  # below this SWD is mostly noise: a warning says so

# 5x5 binomial kernel of cv2.pyrDown/pyrUp, as in Karras's code.
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
GAUSSIAN_5X5 = torch.outer(_BINOMIAL, _BINOMIAL) / 256.0


def _blur(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Depthwise 5x5 Gaussian with mirror borders (scipy 'mirror' == torch 'reflect'); x: (N, C, H, W)."""
    channels = x.shape[1]
    kernel = (GAUSSIAN_5X5 * scale).to(x).expand(channels, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=channels)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """cv2.pyrDown: blur, keep every second pixel. (N, C, H, W) -> (N, C, H/2, W/2)."""
    return _blur(x)[:, :, ::2, ::2]


def pyr_up(x: torch.Tensor) -> torch.Tensor:
    """cv2.pyrUp: insert zeros, blur with 4x the kernel. (N, C, H, W) -> (N, C, 2H, 2W)."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _blur(up, scale=4.0)


def laplacian_pyramid(x: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """Band-pass levels, finest first; the last level is the low-pass residual (Karras's pyramid).

    x: (N, 3, H, W) float32 in [0, 255]; level i has size H / 2**i.
    """
    levels = [x]
    for _ in range(1, num_levels):
        low = pyr_down(levels[-1])
        levels[-1] = levels[-1] - pyr_up(low)
        levels.append(low)
    return levels


def patch_descriptors(level: torch.Tensor, per_image: int, generator: torch.Generator) -> torch.Tensor:
    """`per_image` random 7x7 neighbourhoods of every image, one descriptor a column.

    level: (N, 3, S, S) -> (3, 7, 7, N * per_image); centres are drawn from [3, S - 3) as in Karras's
    `get_descriptors_for_minibatch`. Columns (not rows) keep the per-channel statistics and the
    projections on contiguous memory.
    """
    n, _, h, w = level.shape
    half = NHOOD_SIZE // 2
    offsets = torch.arange(-half, half + 1)
    cy = torch.randint(half, h - half, (n, per_image), generator=generator)
    cx = torch.randint(half, w - half, (n, per_image), generator=generator)
    # Flat indices into each channel plane: index_select is ~6x faster than 4-D advanced indexing here.
    centre = ((torch.arange(n).view(n, 1) * h + cy) * w + cx).view(1, 1, n, per_image)
    index = centre + (offsets.view(NHOOD_SIZE, 1, 1, 1) * w + offsets.view(1, NHOOD_SIZE, 1, 1))
    planes = level.transpose(0, 1).reshape(3, n * h * w)
    return planes.index_select(1, index.reshape(-1)).view(3, NHOOD_SIZE, NHOOD_SIZE, n * per_image)


def normalize_descriptors(desc: torch.Tensor) -> np.ndarray:
    """Per-channel zero mean, unit std over all patches of one set. (3, 7, 7, M) -> (147, M) float32.

    Overwrites `desc` (a fresh gather from `patch_descriptors`) to save memory.
    """
    per_channel = desc.reshape(3, -1)
    std, mean = torch.std_mean(per_channel, dim=1, unbiased=False, keepdim=True)  # np.std: population
    return per_channel.sub_(mean).div_(std).reshape(3 * NHOOD_SIZE**2, -1).numpy()


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, generator: torch.Generator,
                       dir_repeats: int = DIR_REPEATS, dirs_per_repeat: int = DIRS_PER_REPEAT) -> float:
    """Mean 1-D Wasserstein-1 distance over random unit directions. a, b: (D, M) float32, columns."""
    assert a.ndim == 2 and a.shape == b.shape, (a.shape, b.shape)
    results = []
    for _ in range(dir_repeats):
        dirs = torch.randn(dirs_per_repeat, a.shape[0], generator=generator)
        dirs = (dirs / dirs.norm(dim=1, keepdim=True)).numpy()
        # Sorted projections pair up the quantiles: the 1-D optimal transport plan. numpy sorts
        # float32 rows with SIMD, ~15x faster than torch.sort on CPU; in place, rows contiguous.
        proj_a, proj_b = dirs @ a, dirs @ b                          # (dirs, M)
        proj_a.sort(axis=1)
        proj_b.sort(axis=1)
        np.subtract(proj_a, proj_b, out=proj_a)
        results.append(float(np.abs(proj_a, out=proj_a).mean(dtype=np.float64)))
    return float(np.mean(results))


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 255]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()


def swd_between(images_a: np.ndarray, images_b: np.ndarray, seed: int = 0) -> dict[str, float]:
    """SWD x1e3 between two equal-sized sets. images_*: (N, 64, 64, 3) uint8. Deterministic given `seed`."""
    if len(images_a) != len(images_b) or len(images_a) == 0:
        raise ValueError(f"SWD needs two non-empty sets of one size, got {len(images_a)} and {len(images_b)}")
    levels = len(RESOLUTIONS)
    pyramid_a = laplacian_pyramid(_to_tensor(images_a), levels)
    pyramid_b = laplacian_pyramid(_to_tensor(images_b), levels)
    # Separate streams for the two sets' patch positions, so a set's descriptors do not depend on the other.
    gen_a, gen_b = torch.Generator().manual_seed(2 * seed), torch.Generator().manual_seed(2 * seed + 1)
    directions = torch.Generator().manual_seed(seed + 1_000_003)
    result = {}
    for res, level_a, level_b in zip(RESOLUTIONS, pyramid_a, pyramid_b):
        # One level at a time: descriptors take 75 kB per image, level and set.
        desc_a = normalize_descriptors(patch_descriptors(level_a, NHOODS_PER_IMAGE, gen_a))
        desc_b = normalize_descriptors(patch_descriptors(level_b, NHOODS_PER_IMAGE, gen_b))
        result[f"swd_{res}"] = 1e3 * sliced_wasserstein(desc_a, desc_b, directions)
    return {"swd": float(np.mean(list(result.values()))), **result}


def load_images_64(paths: list[Path]) -> np.ndarray:
    """Images as (N, 64, 64, 3) uint8, resized with antialiasing (PIL bicubic) when not 64x64."""
    out = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for i, path in enumerate(paths):
        try:
            rgb = read_rgb(path)
        except (OSError, ValueError) as err:
            raise UserError(f"{path}: cannot read image ({err})") from err
        if rgb.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
            rgb = np.asarray(Image.fromarray(rgb).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC))
        out[i] = rgb
    return out


def _subset(paths: list[Path], n: int, seed: int) -> list[Path]:
    """A seeded choice of `n` of `paths` (all of them, in order, when n == len(paths))."""
    if n >= len(paths):
        return paths
    keep = np.sort(np.random.default_rng(seed).choice(len(paths), n, replace=False))
    return [paths[i] for i in keep]


@register("swd")
def swd(ctx: EvalContext) -> dict[str, float]:
    """SWD x1e3 (Karras et al. 2018) between ctx.images and ctx.real, per level and averaged."""
    if ctx.real is None:
        raise UserError("SWD compares with real images: give a folder of them (--real)")
    fake_paths = list_images(ctx.images)
    real_paths = list_images(ctx.real)
    if not fake_paths or not real_paths:
        empty = ctx.images if not fake_paths else ctx.real
        raise UserError(f"{empty}: no images found (.jpg, .jpeg, .png, .webp)")
    # Karras compares equal numbers of patches: n images of each folder, a seeded subset of the larger;
    # at most MAX_IMAGES, as SWD holds ~0.6 GB of memory per 1000 images (8192: ~5 GB).
    n = min(len(fake_paths), len(real_paths), MAX_IMAGES)
    if n < 2:
        raise UserError(f"SWD compares two sets of images: {ctx.images} and {ctx.real} need at least 2 each, got {n}")
    if n < MIN_IMAGES:  # noise-dominated: still computed, but not to be read as a result
        log.warning("SWD on %d images is mostly noise (it ranks only far-apart models below %d; use 1000 for a "
                    "report)", n, MIN_IMAGES)
    # No reference cache: decoding is a small part of SWD's time, the rest depends on the seed's directions and
    # patch positions, and caching sorted projections would take most of a GB per 1000 images.
    real = load_images_64(_subset(real_paths, n, ctx.seed))
    fake = load_images_64(_subset(fake_paths, n, ctx.seed + 1))
    return swd_between(real, fake, seed=ctx.seed)
