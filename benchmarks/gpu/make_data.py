"""The GPU scripts' own training data: faces of the 48k set (none of faces-1k, which scores the results) at 64x64,
in one uncompressed zip (the images are compressed already) that fills a byte budget, so as many faces as fit
travel to the lent machine. WebP q90 (the default: ~1.9 KB a face at 64 px, ~23,000 faces in 43 MB) keeps ~30%
more faces than JPEG q90 (~2.5 KB) in the same bytes; animegen decodes both.

    python benchmarks/gpu/make_data.py /tmp/data48/faces .gpu-data/faces.zip --max-bytes 43000000
    python benchmarks/gpu/make_data.py /tmp/data48/faces .gpu-data/faces.zip --num 15000 --format jpeg  # as before

benchmarks/gpu/prepare.sh sizes --max-bytes to what the device transfer leaves beside the checkout.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

from PIL import Image

FACES_1K = Path(__file__).resolve().parents[3] / "shared" / "data" / "faces-1k"
ENTRY_OVERHEAD = 110  # bytes a zip entry costs beyond its data (local header, central directory, name twice)


def encoded(path: Path, size: int, fmt: str, quality: int) -> bytes:
    """One face resized to size x size (bicubic, as before) and encoded; size 0 keeps the original file."""
    data = path.read_bytes()
    if not size:
        return data
    buf = io.BytesIO()
    image = Image.open(io.BytesIO(data)).convert("RGB").resize((size, size), Image.BICUBIC)
    image.save(buf, fmt.upper(), quality=quality, **({"method": 6} if fmt == "webp" else {}))
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("faces", type=Path, help="the unpacked 48k set (faces/<id>.jpg)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-bytes", type=int, default=40_000_000, help="stop before the zip passes this size")
    parser.add_argument("--num", type=int, default=None, help="at most this many faces")
    parser.add_argument("--size", type=int, default=64, help="resize to this (0: keep the original files)")
    parser.add_argument("--format", choices=("webp", "jpeg"), default="webp")
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--held-out", type=Path, default=FACES_1K, help="faces never to include (the yardstick)")
    args = parser.parse_args()
    held_out = {p.stem for p in args.held_out.glob("*.jpg")}
    if not held_out:
        raise SystemExit(f"{args.held_out}: no faces to hold out; the yardstick must never be trained on")
    names = sorted((p for p in args.faces.glob("*.jpg") if p.stem not in held_out),
                   key=lambda p: int(p.stem) if p.stem.isdigit() else p.stem)[: args.num]
    suffix = ".webp" if args.size and args.format == "webp" else ".jpg"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    total, count = 22, 0  # the zip's end record
    with zipfile.ZipFile(args.out, "w", zipfile.ZIP_STORED) as archive:
        for path in names:
            data = encoded(path, args.size, args.format, args.quality)
            name = f"faces/{path.stem}{suffix}"
            if total + len(data) + ENTRY_OVERHEAD + 2 * len(name) > args.max_bytes:
                break
            archive.writestr(name, data)
            total += len(data) + ENTRY_OVERHEAD + 2 * len(name)
            count += 1
    size = args.out.stat().st_size
    print(f"{count} faces of {len(names)} (held out: {len(held_out)} of {args.held_out}) -> {args.out}, "
          f"{size:,} bytes")
    if size > args.max_bytes:
        raise SystemExit(f"{args.out} is over {args.max_bytes:,} bytes: lower --max-bytes")


if __name__ == "__main__":
    main()
