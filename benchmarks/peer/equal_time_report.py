"""The tables of benchmarks/peer/equal_time.sh from the files it left in its run folder (markdown to stdout,
the same numbers to RUN/equal_time.json), and a picture: animegen's first 48 faces beside the peer's.

    python benchmarks/peer/equal_time_report.py runs/equal-time [docs/equal-time.jpg [docs/equal-time-loss.png]]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animegen.viz.curves import read_log
from animegen.viz.grid import make_grid


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


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


def loss_at_equal_steps(run: Path, figure: Path | None) -> dict:
    """Both tools' training loss (eps MSE, the same T = 100 linear schedule) over the steps both reached:
    means over thirds of that range after the first 50 steps (animegen logs 50-step means, the peer one step
    every 50: thirds even it out), and optionally a plot."""
    ours, peer = read_log(run / "animegen" / "log.jsonl"), read_log(run / "peer" / "log.jsonl")
    last = min(ours[-1]["step"], peer[-1]["step"])
    out = {}
    third = (last - 50) // 3
    for lo, hi in ((50, 50 + third), (50 + third, 50 + 2 * third), (50 + 2 * third, last)):
        key = f"steps {lo}-{hi}"
        out[key] = {name: float(np.mean([r["loss"] for r in rows if lo < r["step"] <= hi]))
                    for name, rows in (("animegen", ours), ("peer", peer))}
    if figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        for name, rows in (("animegen", ours), ("denoising-diffusion-pytorch", peer)):
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=name, alpha=0.8)
        ax.set(xlabel="optimizer step (batch 16)", ylabel="eps MSE", yscale="log",
               title="simple config, 30 minutes of this CPU each")
        ax.legend()
        fig.tight_layout()
        fig.savefig(figure)
        plt.close(fig)
    return out


def main() -> None:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/equal-time")
    ours_log = (read_log(run / "animegen" / "log.jsonl") or [{}])[-1]
    batch = load(run / "animegen" / "config.json")["optim"]["batch_size"]
    peer_train = load(run / "peer" / "train.json")
    peer_sample = load(run / "peer" / "sample.json")
    scores = {k: load(run / f"scores-{k}.json").get("metrics", {}) for k in
              ("animegen-first", "peer-images", "animegen-images")}
    rss = {k: load(run / f"rss-{k}.json").get("peak_rss_mib") for k in
           ("animegen-train", "peer-train", "animegen-sample", "peer-sample")}
    compare = load(run / "compare" / "report.json")
    n = peer_sample.get("num")
    latest = (run / "animegen" / "latest").read_text().strip()  # checkpoints/step-NNNNNNN: the final step
    out: dict = {"training": {
        "animegen": {"steps": int(latest.rsplit("-", 1)[1]), "seconds": ours_log.get("elapsed_s"),
                     "img_s": ours_log["step"] * batch / ours_log["elapsed_s"] if ours_log else None,
                     "peak_rss_mib": rss["animegen-train"]},
        "peer": {**peer_train, "peak_rss_mib": rss["peer-train"]}}}
    print("| training, simple config | animegen | peer | ratio |\n|---|---|---|---|")
    a, p = out["training"]["animegen"], out["training"]["peer"]
    for key, label in (("steps", "optimizer steps in the time"), ("img_s", "img/s"), ("peak_rss_mib", "peak RSS (MiB)")):
        if a.get(key) and p.get(key):
            print(f"| {label} | {a[key]:.1f} | {p[key]:.1f} | {a[key] / p[key]:.2f} |")

    out["loss"] = loss_at_equal_steps(run, Path(sys.argv[3]) if len(sys.argv) > 3 else None)
    print("\n| mean training loss | animegen | peer |\n|---|---|---|")
    for key, v in out["loss"].items():
        print(f"| {key} | {v['animegen']:.4f} | {v['peer']:.4f} |")

    print(f"\n| quality at equal time (N = {n}, vs faces-1k) | AFD (higher is better) | SWD (lower is better) |")
    print("|---|---|---|")
    for key, label in (("animegen-first", f"animegen, DDIM 25 (first {n})"), ("peer-images", "peer, DDPM 100"),
                       ("animegen-images", "animegen, DDIM 25, all 1000")):
        if scores[key]:
            print(f"| {label} | {scores[key]['afd']:.3f} | {scores[key]['swd']:.2f} |")
    out["quality"] = scores

    if compare and peer_sample:
        # equal quality: animegen's fewest-step sampler whose faces score at least as well as the peer's default
        # (within 10%); the stricter reading, within 10% of animegen's own DDPM over all T steps, beside it
        rows, peer_scores = compare["rows"], scores["peer-images"]
        own_ddpm = next(r for r in rows if r["sampler"] == "ddpm")
        peer_1000 = peer_sample["seconds"] * 1000 / n
        out["time_to_1000"] = {"peer_seconds": peer_1000, "peer_sampler": peer_sample["sampler"], "rows": rows}
        print(f"\n| time to 1000 faces | seconds (from N = {n}) | AFD | SWD | as good as the peer | within 10% of own DDPM |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            r["seconds_1000"] = r["seconds"] * 1000 / r["num"]
            r["as_good_as_peer"], r["within_own_ddpm"] = within(r, peer_scores), within(r, own_ddpm)
            print(f"| animegen {r['sampler']} {r['steps']} | {r['seconds_1000']:.0f} | {r['afd']:.3f} | "
                  f"{r['swd']:.2f} | {'yes' if r['as_good_as_peer'] else 'no'} | "
                  f"{'yes' if r['within_own_ddpm'] else 'no'} |")
        print(f"| peer {peer_sample['sampler']} (its default) | {peer_1000:.0f} | {peer_scores['afd']:.3f} | "
              f"{peer_scores['swd']:.2f} | | |")
        for key, label in (("as_good_as_peer", "at the peer's quality"), ("within_own_ddpm", "within 10% of own DDPM")):
            ok = [r for r in rows if r[key]]
            if ok:
                best = min(ok, key=lambda r: r["seconds_1000"])
                out["time_to_1000"][key] = {"sampler": f"{best['sampler']}:{best['steps']}",
                                            "seconds": best["seconds_1000"], "ratio": peer_1000 / best["seconds_1000"]}
                print(f"time to 1000 faces {label}: {peer_1000 / best['seconds_1000']:.1f}x shorter "
                      f"({best['sampler']} {best['steps']}, {best['seconds_1000']:.0f} s vs {peer_1000:.0f} s)")
    print(f"peak RSS while sampling (MiB): animegen {rss['animegen-sample']}, peer {rss['peer-sample']}")
    (run / "equal_time.json").write_text(json.dumps(out, indent=2) + "\n")
    if len(sys.argv) > 2:
        side_by_side([run / "animegen-images", run / "peer-images"], Path(sys.argv[2]))


if __name__ == "__main__":
    main()
