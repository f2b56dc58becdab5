"""How much of the device a training run uses: its achieved TFLOP/s (log.jsonl's `tflops`, from the FLOPs a
training image counted at the start of the run) as a share of the device's peak, measured here in the same run:
a dense matmul and a 3x3 convolution shaped like the UNet's, in fp32 and bf16 (and fp16 on a GPU).

    PYTHONPATH=src python benchmarks/utilisation.py RUN_DIR [RUN_DIR ...] [--device auto] [--json out.json]

Run it on the machine that trained the runs (right after them), so the peaks are that machine's. A run's share is
against the peak of the precision it trained in (its config's `precision`, resolved for this device). The rows
of log.jsonl after the first (which holds compiling or capturing) give the run's median rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from animegen.core.device import pick_device
from animegen.core.names import BF16_ALIASES
from animegen.core.precision import device_precision

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _rate(fn, flops: float, sync, seconds: float) -> float:
    """TFLOP/s of fn() (flops each call): one warm-up call, then calls for about `seconds`."""
    fn()
    sync()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or calls < 2:
        fn()
        calls += 1
        sync()
    return calls * flops / (time.perf_counter() - start) / 1e12


def measure_peaks(device: torch.device, seconds: float = 1.0, small: bool = False) -> dict[str, float]:
    """{"matmul bf16": TFLOP/s, "conv fp32": ...} on `device`: an n x n x n matmul and a batch of 3x3 convolutions
    at the UNet's widths (64 px on 2x2 patches: 32x32 maps, 128 channels). small: tiny sizes (a smoke test)."""
    on_gpu = device.type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    n = 256 if small else (8192 if on_gpu else 1024)
    batch, ch, size = (2, 16, 8) if small else ((256 if on_gpu else 16), 128, 32)
    peaks = {}
    for name, dtype in DTYPES.items():
        if name == "fp16" and not on_gpu:
            continue  # CPUs compute fp16 no faster (core/precision.py)
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        peaks[f"matmul {name}"] = _rate(lambda: a @ b, 2 * n**3, sync, seconds)
        x = torch.randn(batch, ch, size, size, device=device, dtype=dtype).contiguous(
            memory_format=torch.channels_last)
        w = torch.randn(ch, ch, 3, 3, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        peaks[f"conv {name}"] = _rate(lambda: F.conv2d(x, w, padding=1), 2 * batch * ch * ch * 9 * size * size,
                                      sync, seconds)
    return peaks


def run_rate(run_dir: Path) -> dict:
    """The run's median img/s and TFLOP/s over its log rows after the first, and the precision it trained in
    on this machine's device."""
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "tflops" in r][1:] or [r for r in rows if "tflops" in r]
    if not rows:
        raise SystemExit(f"{run_dir}/log.jsonl has no tflops rows (a run from before the FLOP count, or one not started by `animegen train`)")
    config = json.loads((run_dir / "config.json").read_text())
    # a StyleGAN2 config has no precision (it trains in fp32); configs from before --precision have `bf16`
    setting = config.get("precision") or BF16_ALIASES.get(config.get("bf16"), "fp32")
    return {"run": str(run_dir), "preset": config.get("preset"), "setting": setting,
            "img_per_s": statistics.median(r["img_per_s"] for r in rows),
            "tflops": statistics.median(r["tflops"] for r in rows)}


def shares(run: dict, peaks: dict[str, float], device: torch.device) -> dict:
    """The run's rate as a percentage of the matmul and conv peaks of the precision it trained in."""
    name = device_precision(run["setting"], device).name
    return {**run, "precision": name,
            "pct_of_matmul": round(100 * run["tflops"] / peaks[f"matmul {name}"], 1),
            "pct_of_conv": round(100 * run["tflops"] / peaks[f"conv {name}"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=1.0, help="time each peak measurement this long")
    parser.add_argument("--small", action="store_true", help="tiny peak shapes (a smoke test, not a measurement)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = pick_device(args.device)
    peaks = measure_peaks(device, args.seconds, args.small)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}: peaks measured now (TFLOP/s)")
    print("| kernel | " + " | ".join(peaks) + " |\n|---|" + "---|" * len(peaks))
    print("| TFLOP/s | " + " | ".join(f"{v:.3g}" for v in peaks.values()) + " |")
    rows = [shares(run_rate(run), peaks, device) for run in args.runs]
    if rows:
        print("\n| run | preset | precision | img/s | TFLOP/s | % of matmul peak | % of conv peak |\n"
              "|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['run']} | {r['preset']} | {r['precision']} | {r['img_per_s']:,.0f} | {r['tflops']:.3g} | "
                  f"{r['pct_of_matmul']} | {r['pct_of_conv']} |")
    if args.json:
        args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "peaks": peaks, "runs": rows},
                                        indent=1))


if __name__ == "__main__":
    main()
