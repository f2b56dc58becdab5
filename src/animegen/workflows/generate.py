"""`animegen generate`: N faces as 1.jpg..N.jpg (and optionally the homework's images.tgz).

The images are written into a temporary folder beside --out and swapped in when all are done, so a failed or
killed run never loses the previous images; --force replaces only a folder an earlier `generate` wrote (it
carries a small manifest), never files animegen did not write. One generate per --out at a time: a lock beside
--out is taken before anything else, and the staging folders of killed generates into it are cleared under it.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from animegen.core.atomic import atomic_path, fsync_dir
from animegen.core.errors import UserError
from animegen.core.lock import folder_lock
from animegen.core.outputs import output_dir, output_file, writing
from animegen.core.written import GENERATION_MANIFEST, pid_alive, staging_folder, staging_folders
from animegen.runs.model import TrainedModel
from animegen.samplers.spec import SamplerSpec

log = logging.getLogger(__name__)
HOMEWORK_TGZ_LIMIT = 2_000_000  # bytes: the homework's upload limit ("under 2 MB"), read the strict way
DEFAULT_QUALITY = 95


@dataclass(frozen=True)
class Generated:
    """What `generate` wrote: the folder, the archive (if any) and its size, and the JPEG quality used."""

    out: Path
    num: int
    jpeg_quality: int
    tgz: Path | None = None
    tgz_bytes: int | None = None


def check_out(out: Path, force: bool) -> None:
    """Refuse a non-empty --out unless --force, and with --force anything but an earlier generation."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another --out")
    existing = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not existing:
        return
    if not force:
        raise UserError(f"{out}: folder is not empty ({len(existing)} entries); use --force to replace an earlier "
                        f"generation, or choose another --out")
    try:
        ours = set(json.loads((out / GENERATION_MANIFEST).read_text())["files"]) | {GENERATION_MANIFEST}
    except (OSError, ValueError, KeyError, TypeError):
        ours = set()
    foreign = [name for name in existing if name not in ours]
    if foreign:
        raise UserError(f"{out}: holds {len(foreign)} file(s) animegen did not write (e.g. {foreign[0]}); "
                        f"--force only replaces an earlier generation — choose another --out")


def encode_jpeg(image: torch.Tensor, quality: int) -> bytes:
    """uint8 (3, H, W) -> the bytes of an RGB JPEG."""
    buf = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy(), "RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def tgz_bytes(files: list[bytes]) -> bytes:
    """The homework's images.tgz in memory: 1.jpg..N.jpg at the archive root, deterministic metadata."""
    buf = io.BytesIO()
    # mtime 0 in the gzip header too (tarfile's "w:gz" writes the clock there): the same images give the same
    # archive, byte for byte, whenever and wherever it is made
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w") as archive:
        for k, data in enumerate(files, start=1):
            info = tarfile.TarInfo(f"{k}.jpg")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fit_quality(images: list[torch.Tensor], limit: int = HOMEWORK_TGZ_LIMIT) -> tuple[int, list[bytes], bytes]:
    """The highest JPEG quality (1..95) whose images.tgz fits in `limit` bytes: (quality, files, archive)."""
    best = None
    lo, hi = 1, DEFAULT_QUALITY
    while lo <= hi:  # archive size grows with quality: binary search for the last quality that fits
        q = (lo + hi) // 2
        files = [encode_jpeg(im, q) for im in images]
        archive = tgz_bytes(files)
        if len(archive) <= limit:
            best, lo = (q, files, archive), q + 1
        else:
            hi = q - 1
    if best is None:
        raise UserError(f"{len(images)} images do not fit in {limit} bytes even at JPEG quality 1; hand in fewer")
    return best


def generate(model: TrainedModel, out: Path, num: int = 1000, seed: int = 0, spec: SamplerSpec | None = None,
             batch_size: int | None = None, psi: float = 1.0, tgz: Path | None = None, force: bool = False,
             jpeg_quality: int | None = None) -> Generated:
    """Write images 1..num; image k uses seed `seed + k - 1` alone. spec None = the model's own sampler.

    jpeg_quality None: 95, or with `tgz` the highest quality whose archive fits the homework's 2 MB."""
    out = Path(out)
    output_dir(out.parent if str(out.parent) else Path("."))
    # locked before the checks: a second generate into `out` meanwhile is refused, not swapped in over this one
    with folder_lock(out):
        clear_dead_staging(out)
        check_out(out, force)
        if tgz is not None:
            output_file(tgz)
        label = "stylegan2" if model.kind == "stylegan2" else (spec or model.spec).resolve(model.net.timesteps).label
        tmp = staging_folder(out, "tmp")
        with writing(tmp):  # made before sampling: an unwritable place is refused before minutes of work
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        try:
            guided = f", guided by {model.guide_name} at weight {model.guidance:g}" \
                if model.kind == "diffusion" and model.denoiser is not model.net else ""
            log.info("sampling %d images from %s with %s%s", num, model.checkpoint, label, guided)
            images: list[torch.Tensor] = []
            with tqdm(total=num, desc=f"generate ({label})", unit="img", dynamic_ncols=True) as bar:
                for batch in model.images(range(seed, seed + num), spec, batch_size, psi):
                    images.extend(batch.cpu())
                    bar.update(len(batch))
            quality, files, archive = _encode(images, tgz, jpeg_quality)
            _write_folder(out, tmp, files, {"num": num, "seed": seed, "sampler": label, "jpeg_quality": quality,
                                            "checkpoint": str(model.checkpoint)})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone after the swap; after a failure, the half-written images
        if archive is None:
            return Generated(out, num, quality)
        with writing(tgz), atomic_path(tgz) as tmp_tgz:
            tmp_tgz.write_bytes(archive)
    if len(archive) > HOMEWORK_TGZ_LIMIT:
        log.warning("%s is %d bytes, over the homework's %d; leave out --jpeg-quality to fit it", tgz,
                    len(archive), HOMEWORK_TGZ_LIMIT)
    return Generated(out, num, quality, tgz, len(archive))


def clear_dead_staging(out: Path) -> None:
    """Remove the staging folders that killed generates into `out` left beside it, in one line; called holding
    `out`'s lock. A folder whose process still runs is never touched. A kill between the swap's two renames left
    no `out` and the previous images in `.NAME.old-PID`: those are put back, not removed."""
    removed = []
    for folder, kind, pid in staging_folders(out):
        if pid != os.getpid() and pid_alive(pid):  # our own PID is a dead namesake's: ours are not made yet
            continue
        if kind == "old" and not out.exists():
            with writing(out):
                os.replace(folder, out)
            log.warning("%s: put back the previous images from %s (a generate was killed mid-swap)", out, folder.name)
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            removed.append(f"{folder.name} (PID {pid} is gone)")
    if removed:
        log.warning("%s: removed %d staging folder%s of killed generates: %s", out.parent, len(removed),
                    "s" if len(removed) > 1 else "", ", ".join(removed))


def _encode(images: list[torch.Tensor], tgz: Path | None, jpeg_quality: int | None
            ) -> tuple[int, list[bytes], bytes | None]:
    """(quality, JPEG files, images.tgz or None): the archive holds exactly the bytes written to the folder."""
    if tgz is not None and jpeg_quality is None:
        quality, files, archive = fit_quality(images)
        log.info("JPEG quality %d: the highest whose %s fits in %d bytes", quality, tgz.name, HOMEWORK_TGZ_LIMIT)
        return quality, files, archive
    quality = DEFAULT_QUALITY if jpeg_quality is None else jpeg_quality
    files = [encode_jpeg(im, quality) for im in images]
    return quality, files, tgz_bytes(files) if tgz is not None else None


def _write_folder(out: Path, tmp: Path, files: list[bytes], meta: dict) -> None:
    """Write 1.jpg..N.jpg and the manifest into `tmp` (a new folder beside `out`), then swap it in."""
    old = staging_folder(out, "old")
    names = [f"{k}.jpg" for k in range(1, len(files) + 1)]
    with writing(tmp):
        for name, data in zip(names, files):
            with open(tmp / name, "wb") as handle:
                handle.write(data)
        (tmp / GENERATION_MANIFEST).write_text(json.dumps({**meta, "files": names}, indent=1) + "\n")
        for name in (*names, GENERATION_MANIFEST):
            with open(tmp / name, "rb") as handle:
                os.fsync(handle.fileno())
    with writing(out):
        if out.exists():  # the earlier generation moves aside first, and goes only once the new one is in
            os.replace(out, old)
        os.replace(tmp, out)
        fsync_dir(out.parent)
        shutil.rmtree(old, ignore_errors=True)
