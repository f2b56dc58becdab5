"""Fréchet Inception Distance (Heusel et al. 2017), computed exactly as pytorch-fid computes it.

Pool3 features of the FID Inception-v3 (TF 2015-12-05 weights, ported by pytorch-fid), a Gaussian
fit per folder (float64 mean and covariance), and the Fréchet distance between the two Gaussians:
    FID = |mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)).
Statistics of the real folder are cached, keyed by its file list and the weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import scipy
import torch
from scipy import linalg

from animegen.core.errors import UserError
from animegen.core.imagefiles import list_images, read_rgb
from animegen.core.paths import user_cache_dir
from animegen.metrics.inception import FEATURE_DIMS, InceptionV3
from animegen.metrics.registry import EvalContext, register

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
# Module constants, read at call time, so tests can point the download at a closed local port.
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
WEIGHTS_SHA256_PREFIX = "6726825d"    # pytorch-fid names its file after the sha256 prefix
WEIGHTS_ENV = "ANIMEGEN_INCEPTION_WEIGHTS"
STATS_VERSION = 1                     # bump when the way statistics are computed changes


# ---------------------------------------------------------------- weights

def resolve_weights(path: str | os.PathLike | None = None) -> Path:
    """The Inception weights file: `path` (--inception-weights), $ANIMEGEN_INCEPTION_WEIGHTS,
    the user cache, else downloaded into the user cache."""
    for given, source in ((path, "--inception-weights"), (os.environ.get(WEIGHTS_ENV), WEIGHTS_ENV)):
        if given:
            found = Path(given).expanduser()
            if not found.is_file():
                raise UserError(f"{source} {found}: no such file (expected {WEIGHTS_FILE})")
            return found
    cached = user_cache_dir() / WEIGHTS_FILE
    return cached if cached.is_file() else download_weights(cached)


def download_weights(dest: Path) -> Path:
    """Fetch pytorch-fid's weights into `dest`, checking the sha256 prefix in their name."""
    url = WEIGHTS_URL
    hint = (f"FID needs the Inception weights {WEIGHTS_FILE}: download {url} "
            f"and pass --inception-weights PATH (or set {WEIGHTS_ENV})")
    partial = dest.with_name(dest.name + ".part")
    print(f"downloading {url} -> {dest}", file=sys.stderr)
    sha = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                sha.update(chunk)
                out.write(chunk)
    except OSError as err:            # URLError, timeouts and disk errors are all OSErrors
        partial.unlink(missing_ok=True)
        raise UserError(f"{hint} [download failed: {getattr(err, 'reason', err)}]") from None
    if not sha.hexdigest().startswith(WEIGHTS_SHA256_PREFIX):
        partial.unlink(missing_ok=True)
        raise UserError(f"{hint} [downloaded file has the wrong sha256 {sha.hexdigest()[:8]}]")
    os.replace(partial, dest)         # atomic: a cut download never looks like a good file
    return dest


_HASHES: dict[tuple, str] = {}


def weights_identity(path: Path) -> str:
    """sha256 of the weights file (memoized per path, size and mtime); keys the statistics cache."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                sha.update(chunk)
        _HASHES[key] = sha.hexdigest()
    return _HASHES[key]


_LOADED: dict[tuple, InceptionV3] = {}


def load_inception(weights: str | os.PathLike | None = None,
                   device: torch.device | str = "cpu") -> tuple[InceptionV3, str]:
    """The FID network in eval mode on `device`, and the identity of its weights (kept loaded)."""
    path = resolve_weights(weights)
    identity = weights_identity(path)
    if path.name == WEIGHTS_FILE and not identity.startswith(WEIGHTS_SHA256_PREFIX):
        raise UserError(f"{path}: damaged (sha256 {identity[:8]}, expected {WEIGHTS_SHA256_PREFIX}); "
                        f"delete it and download {WEIGHTS_URL} again")
    key = (identity, str(device))
    if key not in _LOADED:
        net = InceptionV3()
        try:
            # weights_only: a .pth is a pickle, and loading must not run code from it.
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        except Exception as err:      # truncated file, wrong pickle, wrong keys: all the user's to fix
            first = str(err).strip().splitlines()[0]
            raise UserError(f"{path}: not the FID Inception weights {WEIGHTS_FILE} ({first})") from None
        _LOADED.clear()               # one network at a time: 92 MB each
        _LOADED[key] = net.eval().requires_grad_(False).to(device, memory_format=torch.channels_last)
    return _LOADED[key], identity


# ---------------------------------------------------------------- features and statistics

def _read(path: Path) -> np.ndarray:
    try:
        return read_rgb(path)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read image ({err})") from None


def _load_batch(files: list[Path], size: tuple[int, ...], first: Path) -> torch.Tensor:
    """(B, H, W, 3) uint8; every image must have the size of the folder's first image."""
    arrays = []
    for path in files:
        array = _read(path)
        if array.shape != size:
            raise UserError(f"{path}: {array.shape[1]}x{array.shape[0]}, but {first.name} is "
                            f"{size[1]}x{size[0]}; FID needs all images of a folder at one size")
        arrays.append(array)
    return torch.from_numpy(np.stack(arrays))


def _batches(files: list[Path], batch_size: int, workers: int) -> Iterator[torch.Tensor]:
    """Decode batches in background threads while the network runs on the previous one."""
    size = _read(files[0]).shape
    chunks = [files[i:i + batch_size] for i in range(0, len(files), batch_size)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        pending = [pool.submit(_load_batch, chunk, size, files[0]) for chunk in chunks[:2]]
        for i in range(len(chunks)):
            batch = pending[i].result()
            if i + 2 < len(chunks):
                pending.append(pool.submit(_load_batch, chunks[i + 2], size, files[0]))
            pending[i] = None         # drop the decoded batch once it is handed out
            yield batch


@contextlib.contextmanager
def _exact_fp32() -> Iterator[None]:
    # FID is defined in fp32; on Ampere+ GPUs cuDNN would otherwise run the convolutions in TF32.
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def folder_features(folder: str | os.PathLike, net: InceptionV3, *, dims: int = 2048,
                    batch_size: int = 50, device: torch.device | str = "cpu",
                    workers: int = 1) -> np.ndarray:
    """Inception features of every image in `folder`: (N, dims) float32, in list_images order."""
    if dims not in FEATURE_DIMS:
        raise ValueError(f"dims must be one of {FEATURE_DIMS}, got {dims}")
    files = list_images(folder)
    if len(files) < 2:
        raise UserError(f"{folder}: FID needs at least 2 images, found {len(files)}")
    batch_size = min(batch_size, len(files))      # as pytorch-fid's get_activations
    features = np.empty((len(files), dims), dtype=np.float32)
    start = 0
    with torch.inference_mode(), _exact_fp32():
        for batch in _batches(files, batch_size, workers):
            # pytorch-fid's ToTensor: uint8 -> float32 / 255, channels first.
            x = batch.to(device).permute(0, 3, 1, 2).float().div(255)
            features[start:start + len(x)] = net(x, dims=dims).cpu().numpy()
            start += len(x)
    return features


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """features: (N, D) -> mu (D,), sigma (D, D), both float64 as in pytorch-fid."""
    act = np.asarray(features, dtype=np.float64)  # pytorch-fid gathers activations in float64
    return np.mean(act, axis=0), np.cov(act, rowvar=False)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    # The same Schur square root as sqrtm(..., disp=False)[0]; scipy >= 1.16 deprecates `disp`.
    if tuple(int(v) for v in scipy.__version__.split(".")[:2]) >= (1, 16):
        return linalg.sqrtm(matrix)
    return linalg.sqrtm(matrix, disp=False)[0]


def calculate_frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                               sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """|mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2)), pytorch-fid's stable version
    (D. Sutherland): mu (D,), sigma (D, D)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # A singular product is expected with fewer images than dimensions; handled below.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = _sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            warnings.warn(f"fid calculation produces singular product; adding {eps} to diagonal "
                          "of cov estimates", RuntimeWarning, stacklevel=2)
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    # Numerical error might give a slight imaginary component.
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    tr_covmean = np.trace(covmean)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


# ---------------------------------------------------------------- reference statistics and the metric

@dataclass(frozen=True)
class FIDStats:
    """A folder's Gaussian: mu (D,), sigma (D, D) float64, from `num_images` images."""

    mu: np.ndarray
    sigma: np.ndarray
    num_images: int
    path: Path | None = None          # the cache file, for reference statistics


def folder_fingerprint(folder: str | os.PathLike) -> list[tuple[str, int, int]]:
    """(relative name, size, mtime_ns) of every image: changes whenever the folder's images do."""
    root = Path(folder)
    return [(path.relative_to(root).as_posix(), (st := path.stat()).st_size, st.st_mtime_ns)
            for path in sorted(list_images(root))]


def stats_cache_path(folder: str | os.PathLike, weights_id: str, dims: int,
                     cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the statistics of `folder` live: <cache>/fid-stats/<folder name>-<key>.npz."""
    payload = json.dumps({"files": folder_fingerprint(folder), "weights": weights_id,
                          "dims": dims, "version": STATS_VERSION})
    key = hashlib.sha256(payload.encode()).hexdigest()[:20]
    root = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    return root / "fid-stats" / f"{Path(folder).resolve().name}-{key}.npz"


def compute_reference_stats(folder: str | os.PathLike, weights: str | os.PathLike | None = None, *,
                            dims: int = 2048, device: torch.device | str = "cpu", batch_size: int = 50,
                            workers: int = 1, cache_dir: str | os.PathLike | None = None) -> FIDStats:
    """Statistics of a real-image folder, from the cache when its images and the weights are unchanged."""
    net, weights_id = load_inception(weights, device)
    path = stats_cache_path(folder, weights_id, dims, cache_dir)
    if path.is_file():
        with np.load(path) as cached:
            return FIDStats(cached["mu"], cached["sigma"], int(cached["num_images"]), path)
    features = folder_features(folder, net, dims=dims, batch_size=batch_size, device=device,
                               workers=workers)
    mu, sigma = feature_statistics(features)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part.npz")
    np.savez(partial, mu=mu, sigma=sigma, num_images=len(features), folder=str(Path(folder).resolve()))
    os.replace(partial, path)         # atomic: a run killed mid-write leaves no half file behind
    return FIDStats(mu, sigma, len(features), path)


def load_stats(path: str | os.PathLike) -> FIDStats:
    """Statistics saved by `compute_reference_stats` (or pytorch-fid's --save-stats: mu, sigma)."""
    try:
        with np.load(path) as f:
            return FIDStats(f["mu"], f["sigma"], int(f["num_images"]) if "num_images" in f else 0,
                            Path(path))
    except (OSError, KeyError, ValueError) as err:
        raise UserError(f"{path}: not FID statistics with mu and sigma ({err})") from None


def compute_fid(images: str | os.PathLike, real: str | os.PathLike,
                weights: str | os.PathLike | None = None, *, dims: int = 2048,
                device: torch.device | str = "cpu", batch_size: int = 50, workers: int = 1,
                cache_dir: str | os.PathLike | None = None) -> float:
    """FID between the images folder and `real` (a folder, cached, or a statistics .npz)."""
    options = dict(dims=dims, device=device, batch_size=batch_size, workers=workers)
    if str(real).endswith(".npz"):
        ref = load_stats(real)
        if ref.mu.shape != (dims,):
            raise UserError(f"{real}: statistics of {ref.mu.shape[0]}-d features, expected {dims}-d")
    else:
        ref = compute_reference_stats(real, weights, cache_dir=cache_dir, **options)
    net, _ = load_inception(weights, device)
    mu, sigma = feature_statistics(folder_features(images, net, **options))
    return calculate_frechet_distance(mu, sigma, ref.mu, ref.sigma)


@register("fid")
def fid(ctx: EvalContext) -> dict[str, float]:
    """FID (pool3, 2048-d) of ctx.images against ctx.real, the pytorch-fid number."""
    if ctx.real is None:
        raise UserError("FID needs real images to compare with: give the real-image folder "
                        "(or its statistics .npz)")
    value = compute_fid(ctx.images, ctx.real, ctx.inception_weights, device=ctx.device,
                        batch_size=ctx.batch_size, workers=max(1, ctx.num_workers),
                        cache_dir=ctx.cache_dir)
    return {"fid": value}
