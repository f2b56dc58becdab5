"""The tables of benchmarks/peer/equal_time.sh from the files it left in its run folder (markdown to stdout,
the same numbers to RUN/equal_time.json), and a picture: animegen's first 48 faces beside the peer's.

    python benchmarks/peer/equal_time_report.py runs/equal-time [docs/equal-time.jpg]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animegen.viz.grid import make_grid


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def last_log_row(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines() if '"loss"' in line]
    return rows[-1] if rows else {}


def within(row: dict, ref: dict, tol: float = 0.10) -> bool:
    """SWD no more than 10% above the reference and AFD no more than 10% below it."""
    return row["swd"] <= ref["swd"] * (1 + tol) and row["afd"] >= ref["afd"] * (1 - tol)


def side_by_side(folders: list[Path], path: Path, num: int = 48, gap: int = 12) -> None:
    """Grids (6 rows) of the first `num` images 1.jpg.. of each folder, left to right, as one JPEG."""
    grids = []
    for folder in folders:
        images = [np.asarray(Image.open(folder / f"{i}.jpg").convert("RGB")) for i in range(1, num + 1)]
        grid = make_grid(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2), nrow=num // 6)
        grids += [grid, torch.full((3, grid.shape[1], gap), 255, dtype=torch.uint8)]
    Image.fromarray(torch.cat(grids[:-1], dim=2).permute(1, 2, 0).numpy()).save(path, quality=90)


def main() -> None:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/equal-time")
    ours_log, peer_train = last_log_row(run / "animegen" / "log.jsonl"), load(run / "peer" / "train.json")
    peer_sample = load(run / "peer" / "sample.json")
    scores = {k: load(run / f"scores-{k}.json").get("metrics", {}) for k in
              ("animegen-first", "peer-images", "animegen-images")}
    rss = {k: load(run / f"rss-{k}.json").get("peak_rss_mib") for k in
           ("animegen-train", "peer-train", "animegen-sample", "peer-sample")}
    compare = load(run / "compare" / "report.json")
    n = peer_sample.get("num")
    out: dict = {"training": {
        "animegen": {"steps": ours_log.get("step"), "seconds": ours_log.get("elapsed_s"),
                     "img_s": ours_log["step"] * 16 / ours_log["elapsed_s"] if ours_log else None,
                     "peak_rss_mib": rss["animegen-train"]},
        "peer": {**peer_train, "peak_rss_mib": rss["peer-train"]}}}
    print("| training, simple config | animegen | peer | ratio |\n|---|---|---|---|")
    a, p = out["training"]["animegen"], out["training"]["peer"]
    for key, label in (("steps", "optimizer steps in the time"), ("img_s", "img/s"), ("peak_rss_mib", "peak RSS (MiB)")):
        if a.get(key) and p.get(key):
            print(f"| {label} | {a[key]:.1f} | {p[key]:.1f} | {a[key] / p[key]:.2f} |")

    print(f"\n| quality at equal time (N = {n}, vs faces-1k) | AFD (higher is better) | SWD (lower is better) |")
    print("|---|---|---|")
    for key, label in (("animegen-first", f"animegen, DDIM 25 (first {n})"), ("peer-images", "peer, DDPM 100"),
                       ("animegen-images", "animegen, DDIM 25, all 1000")):
        if scores[key]:
            print(f"| {label} | {scores[key]['afd']:.3f} | {scores[key]['swd']:.2f} |")
    out["quality"] = scores

    if compare and peer_sample:
        rows = compare["rows"]
        ref = next(r for r in rows if r["sampler"] == "ddpm")
        ok = [r for r in rows if within(r, ref)]
        best = min(ok, key=lambda r: r["seconds"])
        peer_1000 = peer_sample["seconds"] * 1000 / n
        ours_1000 = best["seconds"] * 1000 / best["num"]
        out["time_to_1000"] = {"peer_seconds": peer_1000, "peer_sampler": peer_sample["sampler"],
                               "animegen_seconds": ours_1000, "animegen_sampler": f"{best['sampler']}:{best['steps']}",
                               "ratio": peer_1000 / ours_1000, "compare_rows": rows}
        print(f"\n| time to 1000 faces | sampler | seconds (from N = {n}) | AFD | SWD |\n|---|---|---|---|---|")
        for r in rows:
            mark = " (fewest steps within 10% of DDPM-100)" if r is best else ""
            print(f"| animegen{mark} | {r['sampler']} {r['steps']} | {r['seconds'] * 1000 / r['num']:.0f} | "
                  f"{r['afd']:.3f} | {r['swd']:.2f} |")
        print(f"| peer (its default) | {peer_sample['sampler']} | {peer_1000:.0f} | "
              f"{scores['peer-images'].get('afd', float('nan')):.3f} | {scores['peer-images'].get('swd', float('nan')):.2f} |")
        print(f"\ntime to 1000 faces at equal or better quality: {peer_1000 / ours_1000:.1f}x shorter "
              f"({best['sampler']} {best['steps']} vs the peer's {peer_sample['sampler']})")
    print(f"peak RSS while sampling (MiB): animegen {rss['animegen-sample']}, peer {rss['peer-sample']}")
    (run / "equal_time.json").write_text(json.dumps(out, indent=2) + "\n")
    if len(sys.argv) > 2:
        side_by_side([run / "animegen-images", run / "peer-images"], Path(sys.argv[2]))


if __name__ == "__main__":
    main()
