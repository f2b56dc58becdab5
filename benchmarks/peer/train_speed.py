"""Training and sampling speed of animegen's presets against lucidrains' denoising-diffusion-pytorch, on CPU.

    PYTHONPATH=src /opt/peer/bin/python benchmarks/peer/train_speed.py            # both sides, one process
    PYTHONPATH=src python benchmarks/peer/train_speed.py --no-peer                 # animegen only

For the `simple` and `strong` presets at batch 16 it reports parameters, FLOPs per step (FlopCounterMode:
forward + backward for a training step, forward for one sampling evaluation), training img/s, and denoiser
evaluations per second at batch 16, 64 and 256, as medians over repetitions that alternate which side goes first.

animegen's step is `Trainer.train_step()` itself (uint8 cache -> augment -> loss -> backward -> clip -> Adam -> EMA);
its sampling evaluation is `denoiser(x, t, threshold="static")` on the EMA copy, as `sample_ddim` calls it. The peer
(the homework sample's parent) runs the inner loop of its own Trainer on a fixed batch of 16 faces in [0, 1]:
`diffusion(img)` -> backward -> clip_grad_norm_(1.0) -> Adam -> ema_pytorch update; its sampling evaluation is
`model_predictions(x, t, clip_x_start=True, rederive_pred_noise=True)` on its EMA model, as `ddim_sample` calls it.
Both get Adam(lr 1e-3, betas (0.9, 0.99)), fp32, the same torch and thread count. A fp32 1024x1024 matmul,
timed in the same run, gives the yardstick for "% of matmul rate".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from animegen.data.dataset import load_images
from animegen.training.diffusion_trainer import DiffusionTrainer
from animegen.runs.presets import preset_config

REPO = Path(__file__).resolve().parents[2]
FACES = REPO.parent / "shared" / "data" / "faces-1k"
PRESETS = ("simple", "strong")
SAMPLE_BATCHES = (16, 64, 256)
BATCH = 16
LR = 1e-3

# The peer's model per preset; objective and schedule set to animegen's (eps, linear / cosine) rather than the
# installed defaults (pred_v, sigmoid): they change no FLOPs but keep the two recipes the same.
PEER_ARGS = {
    "simple": ({"dim": 16, "dim_mults": (1, 2, 4)},
               {"timesteps": 100, "beta_schedule": "linear", "objective": "pred_noise"}),
    "strong": ({"dim": 32, "dim_mults": (1, 2, 4, 8)},
               {"timesteps": 1000, "beta_schedule": "cosine", "objective": "pred_noise"}),
}


class Side:
    """One implementation of one preset: a training step, a sampling evaluation and their costs."""

    def __init__(self, name: str, params: int, timesteps: int, train_step: Callable[[], float],
                 sample_eval: Callable[[torch.Tensor, torch.Tensor], object]):
        self.name, self.params, self.timesteps = name, params, timesteps
        self.train_step, self.sample_eval = train_step, sample_eval


def animegen_side(preset: str, images: torch.Tensor, run_dir: Path) -> Side:
    """The Trainer exactly as `animegen train --preset <preset>` builds it (batch 16, Adam 1e-3)."""
    cfg = preset_config(preset, {"optim.batch_size": BATCH, "optim.lr": LR})
    trainer = DiffusionTrainer(cfg, run_dir, images)
    ema = trainer.denoiser.__class__(trainer.ema.module, trainer.denoiser.alpha_bar, trainer.denoiser.objective)
    ema.eval()

    def sample_eval(x: torch.Tensor, t: torch.Tensor):
        return ema(x, t, threshold="static")

    params = sum(p.numel() for p in trainer.denoiser.net.parameters())
    return Side("animegen", params, trainer.denoiser.timesteps, trainer.train_step, sample_eval)


def peer_side(preset: str, batch: torch.Tensor) -> Side:
    """lucidrains' Unet + GaussianDiffusion on batch's device, stepped as its Trainer.train does (without
    accelerate)."""
    from denoising_diffusion_pytorch import GaussianDiffusion, Unet
    from ema_pytorch import EMA

    torch.manual_seed(0)
    unet_args, diffusion_args = PEER_ARGS[preset]
    diffusion = GaussianDiffusion(Unet(**unet_args), image_size=batch.shape[-1], **diffusion_args).to(batch.device)
    optimizer = torch.optim.Adam(diffusion.parameters(), lr=LR, betas=(0.9, 0.99))
    ema = EMA(diffusion, beta=0.995, update_every=10).to(batch.device)
    ema.ema_model.eval()

    def train_step() -> float:
        loss = diffusion(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(diffusion.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        ema.update()
        return loss.item()

    def sample_eval(x: torch.Tensor, t: torch.Tensor):
        return ema.ema_model.model_predictions(x, t, clip_x_start=True, rederive_pred_noise=True)

    params = sum(p.numel() for p in diffusion.model.parameters())
    return Side("peer", params, diffusion.num_timesteps, train_step, sample_eval)


def sample_inputs(side: Side, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(batch)
    return torch.randn(batch, 3, 64, 64, generator=g), torch.randint(0, side.timesteps, (batch,), generator=g)


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def per_second(fn: Callable[[], object], n: int) -> float:
    """Calls of `fn` per second over `n` calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


class CpuMeter:
    """CPU time that other processes took while we timed, from /proc/stat (Linux; elsewhere it reads 0).

    On a 2-core machine one busy neighbour (a test run, a pip install) slows 2-thread torch by 3-10x, since
    OpenMP waits at every barrier for the thread that lost its core; such timings are retried, not averaged in.
    """

    def __init__(self, max_foreign: float = 0.05):
        self.max_foreign, self.cores = max_foreign, os.cpu_count() or 1
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _now(self) -> tuple[float, float, float]:
        try:
            fields = open("/proc/stat").readline().split()[1:]
        except OSError:
            return time.perf_counter(), 0.0, 0.0
        busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4)) / self.tick  # all but idle, iowait
        t = os.times()
        return time.perf_counter(), busy, t.user + t.system

    def foreign(self, fn: Callable[[], object]) -> tuple[object, float]:
        """(fn(), share of all cores used by other processes while it ran)."""
        w0, b0, s0 = self._now()
        out = fn()
        w1, b1, s1 = self._now()
        return out, max(0.0, (b1 - b0) - (s1 - s0)) / max((w1 - w0) * self.cores, 1e-9)

    def wait_quiet(self, timeout: float = 300.0) -> float:
        """Wait until others use < max_foreign of the cores over half a second; returns the seconds waited."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.foreign(lambda: time.sleep(0.5))[1] < self.max_foreign:
                break
        return time.perf_counter() - start

    def timed(self, fn: Callable[[], object], n: int, tries: int = 4) -> tuple[float, float, int]:
        """(calls per second, foreign share, tries used): retried while others took > max_foreign."""
        for attempt in range(1, tries + 1):
            self.wait_quiet()
            rate, foreign = self.foreign(lambda: per_second(fn, n))
            if foreign < self.max_foreign:
                break
        return rate, foreign, attempt


def matmul_gflops(meter: CpuMeter, n: int = 1024, iters: int = 20) -> float:
    """fp32 (n x n) @ (n x n) rate: the yardstick the achieved GFLOPS are compared with."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    return meter.timed(lambda: torch.mm(a, b), iters)[0] * 2 * n**3 / 1e9


def bench_preset(preset: str, sides: list[Side], args, meter: CpuMeter, matmul: list[float]) -> dict:
    """Warm up, count FLOPs, then `args.reps` alternating repetitions of training and sampling timings."""
    inputs = {s.name: {b: sample_inputs(s, b) for b in SAMPLE_BATCHES} for s in sides}
    flops: dict[str, dict] = {}
    for side in sides:
        for _ in range(args.warmup):
            side.train_step()
        flops[side.name] = {"train_step": count_flops(side.train_step)}
        with torch.inference_mode():
            for b in SAMPLE_BATCHES:
                x, t = inputs[side.name][b]
                side.sample_eval(x, t)
                flops[side.name][f"sample_eval_b{b}"] = count_flops(lambda: side.sample_eval(x, t))
    n_train, n_sample = args.train_steps[preset], args.sample_evals[preset]
    keys = ("train_img_s", *(f"evals_s_b{b}" for b in SAMPLE_BATCHES))
    runs = {s.name: {k: [] for k in keys} for s in sides}
    foreign = {s.name: {k: [] for k in keys} for s in sides}   # others' share of the CPU while timing
    retries = 0

    def record(side: Side, key: str, fn: Callable[[], object], n: int, scale: float = 1.0) -> None:
        nonlocal retries
        rate, share, tries = meter.timed(fn, n)
        runs[side.name][key].append(rate * scale)
        foreign[side.name][key].append(round(share, 4))
        retries += tries - 1

    for rep in range(args.reps):
        order = sides if rep % 2 == 0 else sides[::-1]
        for side in order:
            record(side, "train_img_s", side.train_step, n_train, BATCH)
        with torch.inference_mode():
            for side in order:
                for b in SAMPLE_BATCHES:
                    x, t = inputs[side.name][b]
                    record(side, f"evals_s_b{b}", lambda: side.sample_eval(x, t), n_sample[b])
        matmul.append(matmul_gflops(meter))
        print(f"  rep {rep}: " + "  ".join(
            f"{s.name} {runs[s.name]['train_img_s'][-1]:.2f} img/s, " + "/".join(
                f"{runs[s.name][f'evals_s_b{b}'][-1]:.3f}" for b in SAMPLE_BATCHES) + " evals/s" for s in order)
            + f"  matmul {matmul[-1]:.0f} GFLOPS  (retries so far {retries})", flush=True)
    out = {}
    for side in sides:
        med = {k: statistics.median(v) for k, v in runs[side.name].items()}
        f = flops[side.name]
        out[side.name] = {
            "params": side.params,
            "gflops": {k: v / 1e9 for k, v in f.items()},
            "median": med,
            "runs": runs[side.name],
            "foreign_cpu_share": foreign[side.name],
            "achieved_gflops": {
                "train": f["train_step"] / 1e9 * med["train_img_s"] / BATCH,
                **{f"sample_b{b}": f[f"sample_eval_b{b}"] / 1e9 * med[f"evals_s_b{b}"] for b in SAMPLE_BATCHES},
            },
        }
    if len(sides) == 2:   # ratios of each repetition's adjacent pair: robust to slow drifts of the machine
        a, p = runs[sides[0].name], runs[sides[1].name]
        out["pair_ratio_median"] = {k: statistics.median(x / y for x, y in zip(a[k], p[k])) for k in keys}
    out["retries"] = retries
    return out


def profile_train(preset: str, side: Side, steps: int = 3) -> None:
    """Top aten ops by self CPU time over a few training steps."""
    from torch.profiler import ProfilerActivity, profile

    side.train_step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            side.train_step()
    print(f"\nprofile: {side.name} {preset} train step, {steps} steps")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=40))


def table(results: dict, matmul: float, with_peer: bool) -> str:
    """The results as a markdown table: one column per preset and side, plus animegen/peer ratios."""
    head, cols = ["metric"], []
    for preset in results:
        head += [f"{preset} animegen"] + ([f"{preset} peer", f"{preset} ratio"] if with_peer else [])
        cols.append(results[preset])

    def rows(label: str, get: Callable[[dict], float], fmt: str) -> list[str]:
        cells = [label]
        for r in cols:
            a = get(r["animegen"])
            cells.append(format(a, fmt))
            if with_peer:
                p = get(r["peer"])
                cells += [format(p, fmt), f"{a / p:.2f}"]
        return cells

    lines = [
        rows("params (M)", lambda s: s["params"] / 1e6, ".3f"),
        rows("train GFLOPs/step (fwd+bwd, b16)", lambda s: s["gflops"]["train_step"], ".2f"),
        rows("sample GFLOPs/eval (fwd, b16)", lambda s: s["gflops"]["sample_eval_b16"], ".2f"),
        rows("train img/s (b16)", lambda s: s["median"]["train_img_s"], ".2f"),
        rows("train step (s)", lambda s: BATCH / s["median"]["train_img_s"], ".3f"),
        *(rows(f"sample evals/s, b{b}", lambda s, b=b: s["median"][f"evals_s_b{b}"], ".3f") for b in SAMPLE_BATCHES),
        *(rows(f"sample img-evals/s, b{b}", lambda s, b=b: b * s["median"][f"evals_s_b{b}"], ".1f")
          for b in SAMPLE_BATCHES),
        rows("train achieved GFLOPS", lambda s: s["achieved_gflops"]["train"], ".1f"),
        rows("train % of matmul", lambda s: 100 * s["achieved_gflops"]["train"] / matmul, ".1f"),
        *(rows(f"sample b{b} % of matmul", lambda s, b=b: 100 * s["achieved_gflops"][f"sample_b{b}"] / matmul,
               ".1f") for b in SAMPLE_BATCHES),
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in lines])


def parse_counts(text: str) -> dict[str, int]:
    """'4,2' -> {'simple': 4, 'strong': 2}."""
    values = [int(v) for v in text.split(",")]
    return dict(zip(PRESETS, values if len(values) == len(PRESETS) else values * len(PRESETS)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-peer", action="store_true", help="animegen only (no denoising-diffusion-pytorch)")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps per side before timing")
    parser.add_argument("--train-steps", type=parse_counts, default="6,3", help="timed steps per rep: simple,strong")
    parser.add_argument("--sample-evals", default="6,4",
                        help="timed b16 evals per rep (b64: a quarter, b256: a sixteenth, at least 1)")
    parser.add_argument("--data", type=Path, default=FACES)
    parser.add_argument("--max-foreign", type=float, default=0.05,
                        help="retry a timing when other processes took more than this share of the CPU")
    parser.add_argument("--profile", action="store_true", help="also profile 3 training steps of each side")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "peer" / "train_speed.json")
    args = parser.parse_args()
    evals16 = parse_counts(args.sample_evals)
    args.sample_evals = {p: {b: max(1, n * 16 // b) for b in SAMPLE_BATCHES} for p, n in evals16.items()}
    presets = [p for p in args.presets.split(",") if p]
    with_peer = not args.no_peer

    images = load_images(args.data, 64, progress=False)
    peer_batch = images[:BATCH].float() / 255.0     # the peer's fixed batch of real faces in [0, 1]
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
           "cpu": _cpu_name(), "images": f"{len(images)} from {args.data}"}
    if with_peer:
        from importlib.metadata import version
        env["denoising_diffusion_pytorch"] = version("denoising-diffusion-pytorch")
    print(json.dumps(env), flush=True)

    meter = CpuMeter(args.max_foreign)
    matmul = [matmul_gflops(meter)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in presets:
            print(f"{preset}:", flush=True)
            sides = [animegen_side(preset, images, Path(tmp) / preset)]
            if with_peer:
                sides.append(peer_side(preset, peer_batch))
            results[preset] = bench_preset(preset, sides, args, meter, matmul)
            if args.profile:
                for side in sides:
                    profile_train(preset, side)
    matmul_med = statistics.median(matmul)

    print(f"\nbatch {BATCH}, fp32, CPU {env['cpu']}, {env['threads']} threads, torch {env['torch']}; medians of "
          f"{args.reps} reps (train {args.train_steps} steps, sample evals {args.sample_evals}); "
          f"fp32 1024^2 matmul {matmul_med:.1f} GFLOPS (median of {len(matmul)})\n")
    print(table(results, matmul_med, with_peer))
    for preset, r in results.items():
        if "pair_ratio_median" in r:
            print(f"{preset}: median of per-repetition ratios animegen/peer: " + ", ".join(
                f"{k} {v:.2f}" for k, v in r["pair_ratio_median"].items()) + f"; timings retried: {r['retries']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"env": env, "batch": BATCH, "reps": args.reps, "train_steps": args.train_steps,
              "sample_evals": {p: {str(b): n for b, n in v.items()} for p, v in args.sample_evals.items()},
              "matmul_gflops": {"median": matmul_med, "runs": matmul}, "peer_args": _jsonable(PEER_ARGS),
              "results": results}
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=list))


if __name__ == "__main__":
    main()
