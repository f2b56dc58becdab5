"""The GPU benchmark's own data: faces of the 48k set (none of faces-1k, which scores the results) in one
uncompressed zip (JPEGs do not compress) that fits the device transfer (<= 40 MB): resized to 64x64 and stored
as JPEG q90 (the default; 15,000 fit, made in 20 s), or the original 96x96 files (--size 0; 7,000 fit).

    python benchmarks/gpu/make_data.py /tmp/data48/faces .gpu-data/faces.zip
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

from PIL import Image

FACES_1K = Path(__file__).resolve().parents[3] / "shared" / "data" / "faces-1k"
LIMIT = 40_000_000  # bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("faces", type=Path, help="the unpacked 48k set (faces/<id>.jpg)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--num", type=int, default=15000)
    parser.add_argument("--size", type=int, default=64, help="resize to this (0: keep the original files)")
    args = parser.parse_args()
    held_out = {p.name for p in FACES_1K.glob("*.jpg")}
    names = sorted((p.name for p in args.faces.glob("*.jpg") if p.name not in held_out),
                   key=lambda n: int(n.split(".")[0]) if n.split(".")[0].isdigit() else n)[: args.num]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(args.out, "w", zipfile.ZIP_STORED) as archive:
        for name in names:
            data = (args.faces / name).read_bytes()
            if args.size:
                buf = io.BytesIO()
                image = Image.open(io.BytesIO(data)).convert("RGB")
                image.resize((args.size, args.size), Image.BICUBIC).save(buf, "JPEG", quality=90)
                data = buf.getvalue()
            archive.writestr(f"faces/{name}", data)
    size = args.out.stat().st_size
    print(f"{len(names)} faces (faces-1k held out: {len(held_out)}) -> {args.out}, {size:,} bytes")
    if size > LIMIT:
        raise SystemExit(f"{args.out} is over {LIMIT:,} bytes: use fewer --num")


if __name__ == "__main__":
    main()
