"""Which guide and weight make autoguidance draw the best faces: every (guide, weight, sampler) through the same
seeds, scored with AFD and SWD, timed (docs/guidance.md). Rank on held-out seeds (--seed 1000), then score the
winner once on seeds 0-999 (--seed 0 --num 1000), so the reported figures were not chosen on them.

    python benchmarks/guidance_sweep.py --checkpoint runs/cpu --real ../shared/data/faces-1k \\
        --guides step-0000500-std-0.050,step-0001000-std-0.050 --weights 1.5,2,3 --samplers dpmpp:20 \\
        --seed 1000 --num 512 --out guidance-sweep

`--guides none` (or weight 1) is the unguided baseline; `own` is the guide that ships with the model, at each
weight. A sampler is written as `compare` takes it (`dpmpp:20:eta=1:spacing=logsnr`). Rows are appended to
OUT/sweep.json as they finish, so a killed sweep keeps them and `--resume` runs only the missing ones.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import time
from pathlib import Path

import animegen
from animegen.core.device import cpu_has_native_bf16
from animegen.samplers.spec import parse_spec
from animegen.samplers.table import SAMPLERS


def cpu_name() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                 platform.processor())
    return f"{model} ({'native bf16' if cpu_has_native_bf16() else 'no native bf16'})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="the model (default: the shipped one)")
    p.add_argument("--guides", required=True, help="comma-separated, as generate --guide takes them; none = unguided")
    p.add_argument("--weights", default="2", help="comma-separated guidance weights")
    p.add_argument("--samplers", default="dpmpp:20", help="comma-separated, as compare takes them "
                                                          "(sampler:steps[:eta=E][:spacing=S])")
    p.add_argument("--real", required=True)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--num", type=int, default=512)
    p.add_argument("--out", type=Path, default=Path("guidance-sweep"))
    p.add_argument("--resume", action="store_true")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.out / "sweep.json"
    rows = json.loads(record.read_text())["rows"] if args.resume and record.is_file() else []
    done = {(r["guide"], r["guidance"], r["sampler"]) for r in rows}
    machine = cpu_name()
    for sampler in args.samplers.split(","):
        for guide in args.guides.split(","):
            for weight in ([1.0] if guide == "none" else [float(w) for w in args.weights.split(",")]):
                key = (guide, weight, sampler)
                if key in done:
                    continue
                model = animegen.load(args.checkpoint, compile="off")
                if guide != "none":
                    model.with_guide(None if guide == "own" else guide, weight)
                elif model.guide is not None:  # the baseline is the model alone, also where a guide ships with it
                    model.with_guide(None, 1.0)
                asked = parse_spec(sampler, model.spec)
                options = {"sampler": asked.name, **{key: getattr(asked, key) for key in
                                                     (*SAMPLERS[asked.name].options, "threshold")}}
                runner, spec = model.sampler_for(**options)
                folder = args.out / "images"
                shutil.rmtree(folder, ignore_errors=True)
                start = time.perf_counter()
                model.save(folder, num=args.num, seed=args.seed, **options)
                seconds = time.perf_counter() - start
                scores = animegen.evaluate(folder, real=args.real)
                row = {"guide": guide, "guidance": weight, "sampler": sampler, "nfe": runner.evaluations(spec),
                       "seed": args.seed, "num": args.num, "seconds": round(seconds, 1),
                       "afd": round(scores["afd"], 4), "swd": round(scores["swd"], 2), "machine": machine}
                rows.append(row)
                record.write_text(json.dumps({"checkpoint": str(model.checkpoint), "rows": rows}, indent=1))
                print(json.dumps(row), flush=True)
    lines = ["| guide | weight | sampler | NFE | AFD | SWD | s |", "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["swd"]):
        lines.append(f"| {r['guide']} | {r['guidance']:g} | {r['sampler']} | {r['nfe']:g} | {r['afd']:.3f} | "
                     f"{r['swd']:.1f} | {r['seconds']:.0f} |")
    (args.out / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
