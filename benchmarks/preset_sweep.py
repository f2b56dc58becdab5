"""Equal-CPU-time comparison of training configurations: which config gives the best faces per CPU-hour?

Each candidate is a preset plus `--set` overrides and the training throughput (img/s) it reaches on the target CPU
(measure it with `benchmarks/peer/train_speed.py` or a short `animegen train` there). The sweep gives every candidate the
number of optimizer steps it would complete in `--cpu-minutes` on that CPU, so a faster accelerator can run the
sweep for a slow machine: the comparison is at equal *CPU wall time*, not at equal steps. Each trained model then
generates the same seeds with each sampler listed and is scored by `animegen evaluate` (offline AFD, SWD) against
the same real images.

    python benchmarks/preset_sweep.py --data faces.zip --real real/ --candidates cands.json --cpu-minutes 60 \
        --jobs 8 --out sweep/

cands.json: {"name": {"preset": "simple", "set": {"model.dim": 32}, "cpu_img_s": 25.7}, ...}
Writes sweep/results.json and sweep/results.md; each candidate's run, samples and logs under sweep/<name>/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from animegen.core.imagefiles import list_images, read_rgb
from animegen.viz.grid import save_grid


def animegen(args: list[str], log: Path) -> None:
    """Run one `python -m animegen` command, appending its output to `log`; raise if it fails."""
    with log.open("a") as f:
        f.write(f"$ animegen {' '.join(args)}\n")
        f.flush()
        subprocess.run([sys.executable, "-m", "animegen", *args], stdout=f, stderr=subprocess.STDOUT, check=True)


def run_candidate(name: str, cand: dict, args) -> dict:
    """Train one candidate for its CPU-time step budget, generate with every sampler, score each sample set."""
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    batch = cand["set"].get("optim.batch_size", 16)
    steps = max(1, round(args.cpu_minutes * 60 * cand["cpu_img_s"] / batch))
    row = {"name": name, "preset": cand["preset"], "set": cand["set"], "cpu_img_s": cand["cpu_img_s"],
           "steps": steps, "images_seen": steps * batch}
    sets = [x for key, value in cand["set"].items() for x in ("--set", f"{key}={json.dumps(value)}")]
    start = time.perf_counter()
    try:
        animegen(["train", "--data", str(args.data), "--preset", cand["preset"], "--out", str(out / "run"),
                  "--steps", str(steps), "--set", "sample.every=0", "--set", f"save_every={steps}", *sets], log)
        row["train_s"] = round(time.perf_counter() - start, 1)
        for spec in args.samplers.split(","):
            sampler, _, nsteps = spec.partition(":")
            gen = out / f"gen-{sampler}{nsteps}"
            animegen(["generate", "--checkpoint", str(out / "run"), "--num", str(args.num), "--out", str(gen),
                      "--sampler", sampler, *(["--steps", nsteps] if nsteps else []), "--force"], log)
            animegen(["evaluate", "--images", str(gen), "--real", str(args.real), "--json", str(gen / "scores.json"),
                      "--workers", "2"], log)
            row[spec] = json.loads((gen / "scores.json").read_text())["metrics"]
            save_grid(torch.stack([torch.from_numpy(read_rgb(p)).permute(2, 0, 1) for p in list_images(gen)[:64]]),
                      out / f"grid-{sampler}{nsteps}.png")
    except subprocess.CalledProcessError as err:
        row["error"] = f"{err} (see {log})"
    (out / "row.json").write_text(json.dumps(row, indent=1))  # partial results survive a killed sweep
    return row


def table(rows: list[dict], samplers: list[str]) -> str:
    head = "| candidate | overrides | CPU img/s | steps | " + " | ".join(
        f"{s} AFD | {s} SWD" for s in samplers) + " |"
    lines = [head, "|" + "---|" * (4 + 2 * len(samplers))]
    for r in rows:
        cells = []
        for s in samplers:
            score = r.get(s, {})
            cells += [f"{score['afd']:.3f}" if "afd" in score else "-", f"{score['swd']:.1f}" if "swd" in score else "-"]
        sets = ", ".join(f"{k}={v}" for k, v in r["set"].items()) or "(preset)"
        lines.append(f"| {r['name']} | {r['preset']}: {sets} | {r['cpu_img_s']} | {r['steps']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--real", type=Path, required=True, help="real images to score against")
    parser.add_argument("--candidates", type=Path, required=True)
    parser.add_argument("--cpu-minutes", type=float, default=60.0)
    parser.add_argument("--samplers", default="dpmpp:20,ddpm")
    parser.add_argument("--num", type=int, default=512, help="images per candidate and sampler")
    parser.add_argument("--jobs", type=int, default=4, help="candidates trained at once")
    parser.add_argument("--out", type=Path, default=Path("sweep"))
    args = parser.parse_args()
    cands = json.loads(args.candidates.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda item: run_candidate(*item, args), cands.items()))
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    md = table(rows, args.samplers.split(","))
    (args.out / "results.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
