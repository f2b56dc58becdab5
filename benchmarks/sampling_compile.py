"""Does torch.compile pay for sampling on this machine? One network evaluation of a model's UNet, eager against
inductor-compiled (default, and with weight freezing), at a sampling batch; fp32 (bf16 where the CPU has it with
--precision bf16).

    python benchmarks/sampling_compile.py [--checkpoint RUN] [--batch 128] [--reps 5] [--precision auto|bf16|fp32]

Prints the CPU, each variant's first call (compiling included) and median call, and the break-even: how many
network evaluations of this batch a run needs before the compile time is repaid.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from animegen.runs.model import TrainedModel
from versions_speed import cpu_name  # benchmarks/: the CPU line every figure names


def timed(fn, x: torch.Tensor, t: torch.Tensor, reps: int) -> tuple[float, float, torch.Tensor]:
    """(first call s, median call s, output) under inference mode."""
    with torch.inference_mode():
        start = time.perf_counter()
        out = fn(x, t)
        first = time.perf_counter() - start
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn(x, t)
            times.append(time.perf_counter() - start)
    return first, statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--precision", default="fp32", choices=("auto", "bf16", "fp32"))
    args = parser.parse_args()
    model = TrainedModel.load(args.checkpoint, "cpu", precision=args.precision)
    net = model.net.net.eval()
    x = torch.randn(args.batch, *model.net.image_shape, generator=torch.Generator().manual_seed(0))
    t = torch.full((args.batch,), 500.0)
    print(f"{cpu_name()}; {torch.get_num_threads()} threads; batch {args.batch}; {model.precision.name}")
    print("| variant | first call s | median call ms | ms per image | speed-up | break-even NFE |")
    print("| --- | --- | --- | --- | --- | --- |")
    import torch._inductor.config as inductor_config

    eager_first, eager, ref = None, None, None
    for name in ("eager", "compile", "compile+freezing"):
        torch._dynamo.reset()
        inductor_config.freezing = name == "compile+freezing"  # weights as constants: prepacked convs
        fn = net if name == "eager" else torch.compile(net)
        with model.precision.autocast("cpu"):
            first, median, out = timed(fn, x, t, args.reps)
        if name == "eager":
            eager, ref = median, out
            gain, even = "1.00x", "—"
        else:
            drift = (out.float() - ref.float()).abs().max().item()
            assert drift < 1e-2, f"{name} disagrees with eager by {drift}"
            gain = f"{eager / median:.2f}x"
            even = f"{(first - median) / max(eager - median, 1e-9):.0f}" if median < eager else "never"
        print(f"| {name} | {first:.1f} | {median * 1000:.0f} | {median / args.batch * 1000:.2f} | {gain} | {even} |",
              flush=True)
    inductor_config.freezing = False


if __name__ == "__main__":
    main()
