"""`animegen generate`: N faces as 1.jpg..N.jpg (and optionally the homework's images.tgz)."""

from __future__ import annotations

import logging
import re
import tarfile
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from animegen.assets import shipped_model
from animegen.core.atomic import atomic_path
from animegen.core.errors import UserError
from animegen.models.unet import UNetConfig
from animegen.samplers.run import sample_images
from animegen.training.factory import checkpoint_kind, load_denoiser, load_generator
from animegen.training.gan_loop import gan_images

log = logging.getLogger(__name__)
HOMEWORK_TGZ_LIMIT = 2 * 1024 * 1024
# activations of the first UNet level per sampling batch (batch x dim x (H/patch)^2) that run fastest on a CPU:
# larger batches spill the cache (BENCHMARKS.md: 64 px, dim 16: 80 img-evals/s at batch 64, 46 at 256)
BATCH_ACTIVATIONS = 64 * 16 * 64 * 64
LARGE_BATCH = 250  # on a GPU, and for StyleGAN2 (whose grouped convolutions want big batches on a CPU too)


def default_batch_size(model_cfg: UNetConfig) -> int:
    """Sampling batch for a UNet config: a power of two in [16, 256] that keeps the first level in cache."""
    pixels = (model_cfg.image_size // model_cfg.patch_size) ** 2
    fit = max(1, BATCH_ACTIVATIONS // (model_cfg.dim * pixels))
    return min(256, max(16, 1 << (fit.bit_length() - 1)))


def prepare_out(out: Path, force: bool) -> None:
    """Refuse a non-empty folder unless `force`; with `force`, remove only earlier numbered images."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another --out")
    existing = [p for p in out.iterdir()] if out.exists() else []
    if existing and not force:
        raise UserError(f"{out}: folder is not empty ({len(existing)} entries); use --force to overwrite its images")
    for p in existing:
        if re.fullmatch(r"\d+\.jpg", p.name):
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def generate(checkpoint: str | None, out: Path, num: int = 1000, sampler: str | None = None,
             steps: int | None = None, eta: float | None = None, seed: int = 0, batch_size: int | None = None,
             spacing: str = "uniform", tgz: Path | None = None, force: bool = False, jpeg_quality: int = 95,
             device: str = "cpu", psi: float = 1.0, threshold: str | None = None) -> Path:
    """Write images 1..num from the EMA weights; image k uses seed `seed + k - 1` alone.

    checkpoint None = the model shipped with animegen; sampler None = the sampler, steps and eta the model was
    trained to preview with (its config's `sample` section); threshold None = the model's (`sample.threshold`);
    batch_size None = the fastest for the model (`default_batch_size` on a CPU). A StyleGAN2 checkpoint ignores
    the sampler options and uses `psi` (truncation)."""
    if num < 1:
        raise UserError(f"--num must be at least 1, got {num}")
    if eta is not None and not 0.0 <= eta <= 1.0:
        raise UserError(f"--eta must be from 0 (deterministic) to 1 (DDPM-like noise), got {eta}")
    source = checkpoint if checkpoint is not None else shipped_model()
    seeds = list(range(seed, seed + num))
    if checkpoint_kind(source) == "stylegan2":
        G, _cfg, ckpt = load_generator(source, device)
        label, batch_size = f"stylegan2, psi {psi}", batch_size or LARGE_BATCH
        batches = (gan_images(G, seeds[i : i + batch_size], psi, device) for i in range(0, num, batch_size))
    else:
        denoiser, cfg, ckpt = load_denoiser(source, device=device)
        if sampler is None:
            sampler, steps = cfg.sample.sampler, steps or cfg.sample.steps
            eta = cfg.sample.eta if eta is None else eta
        eta, threshold = eta or 0.0, threshold or cfg.sample.threshold
        on_cpu = not str(device).startswith("cuda")
        label, batch_size = sampler, batch_size or (default_batch_size(cfg.model) if on_cpu else LARGE_BATCH)
        shape = (cfg.model.channels, cfg.model.image_size, cfg.model.image_size)
        batches = sample_images(denoiser, seeds, batch_size=batch_size, sampler=sampler, steps=steps, eta=eta,
                                spacing=spacing, threshold=threshold, image_shape=shape, device=device)
    prepare_out(out, force)  # only after the model loaded: a bad checkpoint never touches --out
    log.info("sampling %d images from %s with %s", num, ckpt, label)
    index = 1
    with tqdm(total=num, desc=f"generate ({label})", unit="img", dynamic_ncols=True) as bar:
        for batch in batches:
            bar.update(len(batch))
            for image in batch.cpu():
                save_jpeg(image, out / f"{index}.jpg", jpeg_quality)
                index += 1
    if tgz is not None:
        pack_tgz(out, num, tgz)
    return out


def save_jpeg(image: torch.Tensor, path: Path, quality: int) -> None:
    """uint8 (3, H, W) -> RGB JPEG, written atomically (a killed run leaves no torn file)."""
    with atomic_path(path) as tmp:
        Image.fromarray(image.permute(1, 2, 0).numpy(), "RGB").save(tmp, format="JPEG", quality=quality)


def pack_tgz(folder: Path, num: int, tgz: Path) -> None:
    """The homework's images.tgz: 1.jpg..num.jpg at the archive root (no folder), deterministic metadata."""
    with atomic_path(tgz) as tmp:
        with tarfile.open(tmp, "w:gz") as archive:
            for k in range(1, num + 1):
                info = archive.gettarinfo(str(folder / f"{k}.jpg"), arcname=f"{k}.jpg")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(folder / f"{k}.jpg", "rb") as handle:
                    archive.addfile(info, handle)
    size = tgz.stat().st_size
    if size > HOMEWORK_TGZ_LIMIT:
        log.warning("%s is %.2f MB, over the homework's 2 MB upload limit; try --jpeg-quality 75", tgz, size / 2**20)
