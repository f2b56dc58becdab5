"""The homework on one GPU in one occasion: the `gpu` preset's 10-minute run, the boss (StyleGAN2 at GPU width) for
the same minutes beside it, and the checks of issue #28's items 1-3. benchmarks/gpu/homework.sh runs it on the lent
machine; docs/gpu-preset.md has the plan and the results.

    PYTHONPATH=src python benchmarks/gpu/homework.py [--minutes 10] [--gpu-set model.dim=96 ...] [--dry]

1. at once: `--preset gpu --max-minutes 10` (with --gpu-set: the sweep's winner, until runs/presets.py holds it)
   and `--preset boss` at GPU width (256 channels, NVlabs' batch 64) for the same minutes. They share the GPU, as
   the sweep's runs do (sweep.sh measures what sharing costs);
2. meanwhile, one after another (two minutes or so, beside the main runs): the `gpu` preset for 300 steps in bf16
   (seeds 0 and 1: how far two seeds drift) and in fp16 with the loss scale (seed 0); then the same bf16 run under
   `torchrun --nproc_per_node 1`: NCCL, world size 1, the all-reduce inside the CUDA graph; then
   benchmarks/gpu/check.py in fp16 (graph against eager, a graphed resume, a NaN under the graph: the loss scale
   inside the graph);
3. the device's matmul and conv peaks (benchmarks/utilisation.py), then 1000 faces (seeds 0-999) from the two main
   runs scored with AFD + SWD against faces-1k on the CPU cores.
summary.json: a row a run; details.json: the checks (fp16 against bf16 and the seed noise, the NCCL run against the
single-process one, the log lines that show the precision and compile decisions) and the utilisation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from jobs import occasion_parser, DRY_DIFFUSION, Run, Session, device_name, rate, run_together, score, summary_row, write_results

CHECK_STEPS = 300
BOSS_GPU = {"model.channels": 256, "model.max_channels": 256, "model.z_dim": 256, "model.w_dim": 256,
            "model.mapping_layers": 4, "optim.batch_size": 64}
DECISION_WORDS = ("training on", "--compile", "captured the training step", "could not capture",
                  "GFLOP a training image")


def check_runs(gpu_set: dict, dry: bool) -> list[Run]:
    """The 300-step runs of items 1 and 3 (run one after another, so each is timed beside the same neighbours)."""
    steps = [] if dry else ["--steps", str(CHECK_STEPS)]  # --dry gives every run its few steps
    # past the warm-up within the 300 steps: inside it the loss still falls steeply and seeds differ by 15%
    common = {**gpu_set, "log_every": 1 if dry else 50, **({} if dry else {"optim.warmup_steps": 50})}
    torchrun = ["-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", "29517"]
    return [Run("check-bf16-seed0", "gpu", None, {**common, "seed": 0}, ["--precision", "bf16", *steps]),
            Run("check-bf16-seed1", "gpu", None, {**common, "seed": 1}, ["--precision", "bf16", *steps]),
            Run("check-fp16-seed0", "gpu", None, {**common, "seed": 0}, ["--precision", "fp16", *steps]),
            Run("check-nccl-ws1", "gpu", None, {**common, "seed": 0}, ["--precision", "bf16", *steps], torchrun)]


def mean_loss(rows: list[dict], last: int) -> float | None:
    losses = [r["loss"] for r in rows if "loss" in r][-last:]
    return sum(losses) / len(losses) if losses else None


def decisions(session: Session, run: Run) -> list[str]:
    """The lines of a run's output that state its precision, compile and graph decisions."""
    path = session.work / f"{run.name}.log"
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return [line.strip() for line in lines if any(word in line for word in DECISION_WORDS)]


def check_facts(session: Session, checks: list[Run]) -> dict:
    """fp16 + loss scale against bf16 (and against the drift between two bf16 seeds), over the last third of the
    steps; the NCCL run against the single-process one, log row by log row."""
    rows = {r.name: r.log_rows(session) for r in checks}
    last = max(1, len(rows["check-bf16-seed0"]) // 3)
    loss = {name: mean_loss(r, last) for name, r in rows.items()}
    bf16, seed1, fp16 = loss["check-bf16-seed0"], loss["check-bf16-seed1"], loss["check-fp16-seed0"]
    gap = abs(fp16 / bf16 - 1) if fp16 and bf16 else None
    noise = abs(seed1 / bf16 - 1) if seed1 and bf16 else None
    single, nccl = rows["check-bf16-seed0"], rows["check-nccl-ws1"]
    pairs = list(zip([r["loss"] for r in single], [r["loss"] for r in nccl]))
    last_row = rows["check-fp16-seed0"][-1] if rows["check-fp16-seed0"] else {}
    return {
        "precision": {"mean_loss_last_third": loss, "fp16_vs_bf16": gap, "seed_to_seed": noise,
                      "fp16_within_noise": None if gap is None or noise is None else gap <= max(noise, 0.01),
                      "img_per_s": {r.name: rate(rows[r.name])[0] for r in checks[:3]},
                      "fp16_loss_scale": last_row.get("loss_scale"), "fp16_skipped_steps": last_row.get("skipped_steps"),
                      "note": "timed beside the main runs, one after another: compare them with each other only"},
        "nccl_world_size_1": {"exit_status": checks[3].returncode, "steps": len(nccl),
                              "max_rel_loss_diff_vs_single_process": max((abs(b / a - 1) for a, b in pairs),
                                                                         default=None),
                              "all_reduce_in_graph": any("all-reduced inside the step" in line
                                                         for line in decisions(session, checks[3])),
                              "graph_captured": any("captured the training step" in line
                                                    for line in decisions(session, checks[3]))},
        "decisions": {r.name: decisions(session, r) for r in checks},
    }


def graph_checks(session: Session) -> dict:
    """benchmarks/gpu/check.py with fp16: graph against eager, a graphed resume, a NaN under the graph, all with the
    loss scale inside the graph. Its JSON lines, and its exit status."""
    cmd = [sys.executable, str(Path(__file__).with_name("check.py")), "--data", str(session.data), "--precision",
           "fp16", "--device", session.device]
    if session.dry:  # a tiny model, a few steps
        cmd += ["--steps", "8", *[x for key in ("model.dim", "model.dim_mults", "model.attn_resolutions",
                                                 "optim.batch_size")
                                  for x in ("--set", f"{key}={json.dumps(DRY_DIFFUSION[key])}")]]
    session.say("started the graph checks in fp16: " + " ".join(cmd[1:]))
    result = subprocess.run(cmd, capture_output=True, text=True, env=session.env(2), timeout=600)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    session.say(f"graph checks ended with status {result.returncode}")
    return {"exit_status": result.returncode, "checks": lines,
            **({"stderr": result.stderr[-1500:]} if result.returncode else {})}


def utilisation(session: Session, run: Run) -> dict:
    """The main gpu run's TFLOP/s as a share of the peaks measured now (benchmarks/utilisation.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from utilisation import measure_peaks, run_rate, shares

    import torch

    device = torch.device(session.device)
    peaks = measure_peaks(device, seconds=0.2 if session.dry else 0.5, small=session.dry)
    try:
        return {"peaks": peaks, "gpu_run": shares(run_rate(run.dir(session)), peaks, device)}
    except SystemExit as err:  # a run that logged no rate
        return {"peaks": peaks, "error": str(err)}


def main() -> None:
    parser = occasion_parser(__doc__, "/tmp/animegen-gpu/homework", 10.0, "the gpu preset's and the boss's budget")
    parser.add_argument("--gpu-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of the gpu preset (the sweep's winner); values are JSON")
    args = parser.parse_args()
    gpu_set = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.gpu_set)}
    session = Session(args.data.resolve(), args.real.resolve(), args.work.resolve(), args.results.resolve(),
                      args.dry, 16 if args.dry else args.num)
    session.prepare_data()
    main_runs = [Run("gpu", "gpu", args.minutes, gpu_set), Run("boss", "boss", args.minutes, BOSS_GPU)]
    for run in main_runs:
        run.start(session, threads=1 if args.dry else 4)
    checks = check_runs(gpu_set, args.dry)
    for run in checks:  # beside the main runs, one at a time
        run_together(session, [run], threads=1 if args.dry else 2)
    graphed = graph_checks(session)
    for run in main_runs:
        run.wait(session, args.minutes * 60 * 1.15 + 240 - (time.monotonic() - session.started))
    details = {"minutes": args.minutes, "gpu_set": gpu_set, "boss": BOSS_GPU, "dry": args.dry,
               "checks": {**check_facts(session, checks), "graph_fp16": graphed}, "utilisation": utilisation(session, main_runs[0]),
               "decisions": {r.name: decisions(session, r) for r in main_runs}}
    score(session, main_runs)
    gpu = device_name(session)
    details["device"] = gpu
    details["failed"] = [r.name for r in [*main_runs, *checks] if r.returncode != 0 or "error" in r.scores]
    rows = [summary_row(session, r, gpu) for r in [*main_runs, *checks]]
    write_results(session, rows, details, "homework")


if __name__ == "__main__":
    main()
