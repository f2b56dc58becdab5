"""The `animegen` command line: parse arguments, call a workflow, turn user errors into one line."""

from __future__ import annotations

import argparse
import os
import json
import logging
import sys
from pathlib import Path

from animegen import __version__
from animegen.core.errors import Interrupted, UserError
from animegen.core.outputs import describe
from animegen.core.names import (BF16_ALIASES, COMPILE_SETTINGS, DISTILL_METHODS, OBJECTIVE_NAMES,
                                 PRECISION_SETTINGS, SAMPLERS, SPACINGS, THRESHOLDS)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other user mistake."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def at_least(low: float, kind: type = int):
    """An argparse type: a number of `kind` >= low, refused in one line otherwise."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {'whole ' if kind is int else ''}number, got {text!r}")
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}, got {text}")
        return value

    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def in_range(low: float, high: float, kind: type = float):
    def parse(text: str):
        value = at_least(low, kind)(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}, got {text}")
        return value

    return parse


POSITIVE, COUNT = at_least(1), at_least(0)


def add_sampler_flags(p: argparse.ArgumentParser, sampler_default: str | None = None) -> None:
    """--sampler/--steps/--eta/--spacing/--threshold, with choices from the samplers' registry."""
    p.add_argument("--sampler", choices=list(SAMPLERS), default=sampler_default,
                   help="ddpm (all T steps), ddim, dpmpp = DPM-Solver++(2M), or unipc = UniPC-bh2 (default: the "
                        "model's own sampler; "
                        "a named sampler starts with eta 0 and uniform spacing at the model's step count)")
    p.add_argument("--steps", type=POSITIVE, help="sampling steps for ddim/dpmpp (default: the model's)")
    p.add_argument("--eta", type=in_range(0.0, 1.0),
                   help="noise of ddim / dpmpp: 0 deterministic (ODE), 1 DDPM-like (SDE)")
    p.add_argument("--spacing", choices=list(SPACINGS), help="which timesteps a few-step sampler visits")
    p.add_argument("--threshold", choices=list(THRESHOLDS),
                   help="keep each step's x0 prediction in range: static clamp, or dynamic (Imagen's rescale, less "
                        "saturated colour from eps-prediction models) (default: the model's)")


def add_precision_flags(p: argparse.ArgumentParser, what: str) -> None:
    """--precision, and --bf16, its older name (on = bf16, off = fp32)."""
    p.add_argument("--precision", choices=PRECISION_SETTINGS,
                   help=f"{what} under bf16 or fp16 autocast{' (fp16 with loss scaling)' if what == 'train' else ''}, "
                        f"or in fp32. auto (default): what the device computes natively: bf16 on sm80+ GPUs and on "
                        f"CPUs with AVX512-BF16/AMX, fp16 on sm70/sm75 GPUs (V100, T4), fp32 elsewhere; fp16 on a "
                        f"CPU runs in fp32")
    p.add_argument("--bf16", choices=list(BF16_ALIASES), help="the older name of --precision: on = bf16, off = fp32")


def precision_flag(args: argparse.Namespace) -> str:
    """--precision, or --bf16 mapped onto it; 'auto' when neither is given."""
    from_bf16 = BF16_ALIASES[args.bf16] if args.bf16 else None
    if args.precision and from_bf16 and args.precision != from_bf16:
        raise UserError(f"--bf16 {args.bf16} and --precision {args.precision} disagree: give --precision alone")
    return args.precision or from_bf16 or "auto"


def sampler_spec(args: argparse.Namespace, model):
    """The SamplerSpec the flags ask for, from the model's own (None for a StyleGAN2, which has no sampler)."""
    from animegen.samplers.spec import choose

    if model.kind != "diffusion":
        return None
    return choose(model.spec, args.sampler, args.steps, args.eta, args.spacing, args.threshold)



def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a diffusion model (or, with --preset boss, a StyleGAN2) on a folder or "
                                     "archive of face images")
    p.add_argument("--data", help="folder of images (searched recursively) or a .zip/.tar/.tar.gz of them")
    p.add_argument("--preset", help="simple (default) | medium | strong (the homework's ladder), cpu (best per "
                                    "CPU-hour), gpu (the cpu recipe scaled to one GPU), boss (StyleGAN2); on "
                                    "--resume, the run's own")
    p.add_argument("--out", type=Path, help="run directory (default: runs/NNNNN-PRESET)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--steps", type=POSITIVE, help="total optimizer steps")
    p.add_argument("--max-minutes", type=positive_float, help="stop and save after this much training time")
    p.add_argument("--batch-size", type=POSITIVE)
    p.add_argument("--lr", type=positive_float)
    p.add_argument("--timesteps", type=at_least(2), help="diffusion steps T")
    p.add_argument("--schedule", choices=["linear", "cosine", "sigmoid"])
    p.add_argument("--objective", choices=list(OBJECTIVE_NAMES))
    p.add_argument("--dim", type=POSITIVE, help="UNet base channels")
    p.add_argument("--dim-mults", type=lambda s: [int(v) for v in s.split(",")], help="e.g. 1,2,4,8")
    p.add_argument("--grad-accum", type=POSITIVE)
    p.add_argument("--seed", type=COUNT)
    p.add_argument("--sample-every", type=COUNT, help="write a sample grid every N steps (0: never)")
    p.add_argument("--save-every", type=POSITIVE, help="checkpoint every N steps")
    p.add_argument("--save-minutes", type=positive_float,
                   help="also checkpoint when this many minutes passed since the last save (default 10)")
    p.add_argument("--eval-every", type=COUNT, help="score SWD/AFD on a small sample every N steps (0: never)")
    add_precision_flags(p, "train")
    p.add_argument("--compile", choices=COMPILE_SETTINGS,
                   help="auto (default): one CUDA graph per step on a GPU (also under torchrun), inductor for long "
                        "runs on GPUs from sm70 and on CPUs with native bf16; on: inductor wherever it can run; off: "
                        "eager")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:1 ...")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config value, e.g. --set model.attn_resolutions=[16,8] (repeatable)")
    p.add_argument("--log", choices=["jsonl", "tensorboard"], default="jsonl",
                   help="log.jsonl is always written; tensorboard also writes run/tensorboard/ (pip install "
                        "'animegen[tensorboard]')")
    p.add_argument("--cache-dir", type=Path, help="where decoded images are cached (default: user cache)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_train)


def add_distill(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="distill a 1-4 step consistency student from a trained diffusion model",
                       description="The student starts from the teacher's weights and learns to jump to the end "
                                   "of the teacher's ODE solve (trajectory; given --data, a discriminator on those "
                                   "faces sharpens it too) or is consistency-tuned on real faces (ect, needs "
                                   "--data); it samples with --sampler consistency --steps 1|2|4")
    p.add_argument("--checkpoint", help="the teacher: run directory or checkpoint folder (default: the shipped "
                                        "model)")
    p.add_argument("--method", choices=DISTILL_METHODS, help="trajectory (default) or ect")
    p.add_argument("--data", help="real faces (folder or .zip/.tar/.tar.gz): the discriminator's (trajectory; "
                                  "recommended) or what ect tunes on (required)")
    p.add_argument("--out", type=Path, help="the student's run directory (default: runs/NNNNN-PRESET-student)")
    p.add_argument("--resume", action="store_true", help="continue the student in --out")
    p.add_argument("--steps", type=POSITIVE, help="total optimizer steps")
    p.add_argument("--max-minutes", type=positive_float, help="stop and save after this much training time")
    p.add_argument("--batch-size", type=POSITIVE)
    p.add_argument("--lr", type=positive_float, help="default 1e-3, decayed to the planned last step")
    p.add_argument("--seed", type=COUNT)
    p.add_argument("--sample-every", type=COUNT, help="write a sample grid every N steps (0: never)")
    p.add_argument("--save-every", type=POSITIVE, help="checkpoint every N steps")
    p.add_argument("--save-minutes", type=positive_float)
    add_precision_flags(p, "train")
    p.add_argument("--compile", choices=COMPILE_SETTINGS)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:1 ...")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config value, e.g. --set consistency.stages=4 (repeatable)")
    p.add_argument("--cache-dir", type=Path, help="where decoded images are cached (default: user cache)")
    p.set_defaults(func=cmd_distill)


def flag_overrides(args: argparse.Namespace) -> dict:
    """--set KEY=VALUE pairs, then the named flags this command has (FLAG_KEYS), as dotted config keys."""
    from animegen.runs.config import parse_override
    from animegen.runs.presets import FLAG_KEYS

    overrides = dict(parse_override(s) for s in args.set)
    for flag, key in FLAG_KEYS.items():
        if getattr(args, flag, None) is not None:
            overrides[key] = getattr(args, flag)
    return overrides


def cmd_distill(args: argparse.Namespace) -> None:
    from animegen.workflows.distill import distill

    run_dir = distill(args.data, args.checkpoint, flag_overrides(args), args.out, args.resume, args.cache_dir)
    print(f"student run directory: {run_dir} (generate --checkpoint {run_dir} --sampler consistency --steps 2)")


def cmd_train(args: argparse.Namespace) -> None:
    from animegen.runs.config import to_dict
    from animegen.runs.presets import preset_config

    overrides = flag_overrides(args)
    if args.log == "tensorboard":
        overrides["tensorboard"] = True
    if args.dry_run:
        print(json.dumps(to_dict(preset_config(args.preset or "simple", overrides)), indent=2))
        return
    if not args.data:
        raise UserError("train needs --data FOLDER_OR_ARCHIVE (e.g. --data faces/)")
    from animegen.workflows.train import train

    run_dir = train(args.data, args.preset, overrides, args.out, args.resume, args.cache_dir)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0
        print(f"run directory: {run_dir}")


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write N faces as 1.jpg..N.jpg from a trained model")
    p.add_argument("--checkpoint", help="run directory or checkpoint folder (default: the model shipped with "
                                        "animegen, trained on a 2-core CPU)")
    p.add_argument("--out", type=Path, default=Path("submission"), help="output folder (default: submission/)")
    p.add_argument("--num", type=POSITIVE, default=1000)
    add_sampler_flags(p)
    p.add_argument("--psi", type=float, default=1.0, help="StyleGAN2 truncation (1 = none, 0.7 = safer faces)")
    p.add_argument("--seed", type=COUNT, default=0, help="image k uses seed SEED + k - 1")
    p.add_argument("--batch-size", type=POSITIVE, help="images per forward pass (default: the fastest for the model)")
    p.add_argument("--tgz", type=Path, help="also pack the images as the homework's images.tgz (under 2 MB)")
    p.add_argument("--jpeg-quality", type=in_range(1, 100, int),
                   help="default: 95, or with --tgz the highest quality whose archive fits in 2,000,000 bytes")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1 ...")
    add_precision_flags(p, "sample")
    p.add_argument("--compile", choices=COMPILE_SETTINGS, default="auto",
                   help="torch.compile the UNet (auto: on a CPU with native bf16, for generations long enough to "
                        "repay the ~40 s first compile, e.g. 1000 faces at 100 steps; on: always; off: eager)")
    p.add_argument("--force", action="store_true", help="replace an earlier generation in --out (never other files)")
    p.set_defaults(func=cmd_generate)


def model_path(checkpoint: str | None, wants_student: bool) -> str | Path | None:
    """--checkpoint; without it the shipped model (None), or its few-step student when a consistency sampler is
    asked for."""
    if checkpoint is None and wants_student:
        from animegen.assets import shipped_student
        return shipped_student()
    return checkpoint


def cmd_generate(args: argparse.Namespace) -> None:
    from animegen.api import load
    from animegen.workflows.generate import generate

    model = load(model_path(args.checkpoint, args.sampler == "consistency"), args.device, precision_flag(args),
                 args.compile)
    done = generate(model, args.out, args.num, args.seed, sampler_spec(args, model), args.batch_size, args.psi,
                    args.tgz, args.force, args.jpeg_quality)
    packed = f" and {done.tgz} ({done.tgz_bytes:,} bytes)" if done.tgz else ""
    print(f"wrote {done.num} images to {done.out}{packed} at JPEG quality {done.jpeg_quality}")


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score generated faces: FID, AFD, SWD")
    p.add_argument("--images", type=Path, required=True, help="folder of generated images")
    p.add_argument("--real", type=Path, help="folder of real images (or FID statistics .npz)")
    p.add_argument("--metrics", default="afd,swd", help="comma-separated: fid, afd, swd (default: afd,swd)")
    p.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    p.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth (FID)")
    p.add_argument("--detector", choices=["animeface", "yolo"], default="animeface", help="AFD detector")
    p.add_argument("--detector-weights", help="yolov8x6_animeface.pt (with --detector yolo)")
    p.add_argument("--batch-size", type=POSITIVE, default=50)
    p.add_argument("--workers", type=COUNT, default=0, help="processes for AFD / threads for FID decoding")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=COUNT, default=0)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from animegen.core.device import pick_device
    from animegen.metrics.registry import EvalContext
    from animegen.workflows.evaluate import parse_metrics, run_evaluate

    ctx = EvalContext(images=args.images, real=args.real, device=pick_device(args.device),
                      batch_size=args.batch_size, num_workers=args.workers,
                      inception_weights=args.inception_weights, detector=args.detector,
                      detector_weights=args.detector_weights, seed=args.seed)
    run_evaluate(ctx, parse_metrics(args.metrics), args.json)


def add_fid_ref(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fid-ref", help="precompute the FID statistics of a real-image folder (cached)")
    p.add_argument("--real", type=Path, required=True)
    p.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--batch-size", type=POSITIVE, default=50)
    p.set_defaults(func=cmd_fid_ref)


def cmd_fid_ref(args: argparse.Namespace) -> None:
    from animegen.workflows.evaluate import fid_reference

    path = fid_reference(args.real, args.inception_weights, args.batch_size)
    print(f"FID statistics of {args.real}: {path}")


def add_progress(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("progress", help="report Q1: samples across the denoising steps (+ predicted x0)")
    p.add_argument("--checkpoint", help="run directory or checkpoint folder (default: the shipped model)")
    p.add_argument("--num", type=POSITIVE, default=5)
    p.add_argument("--frames", type=at_least(2), default=20)
    p.add_argument("--seed", type=COUNT, default=0)
    add_sampler_flags(p, sampler_default="ddpm")
    p.add_argument("--out", type=Path, default=Path("q1.png"))
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_progress)


def cmd_progress(args: argparse.Namespace) -> None:
    from animegen.api import load
    from animegen.workflows.progress import progress

    model = load(model_path(args.checkpoint, args.sampler == "consistency"), args.device)
    xt, x0 = progress(model, args.out, args.num, args.frames, args.seed, sampler_spec(args, model))
    print(f"wrote {xt} and {x0}")


def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="report Q2: the same seeds through several samplers, timed and scored")
    p.add_argument("--checkpoint", help="run directory or checkpoint folder (default: the shipped model)")
    p.add_argument("--student", help="the distilled student that consistency rows sample with (default: the "
                                     "shipped student when comparing the shipped model)")
    p.add_argument("--real", type=Path, help="folder of real images (SWD, FID)")
    p.add_argument("--samplers", default="ddpm,ddim:100,ddim:50,ddim:20,dpmpp:20,dpmpp:10",
                   help="comma-separated sampler:steps[:option=value...] (ddpm runs all T steps); options: "
                        "eta=0..1 (ddim, dpmpp), spacing=uniform|trailing|quadratic|logsnr, threshold=static|dynamic, "
                        "e.g. ddim:50:eta=1; what an item leaves out is as for generate --sampler")
    p.add_argument("--num", type=POSITIVE, default=1000, help="images per sampler (the same seeds for each)")
    p.add_argument("--out", type=Path, default=Path("report"))
    p.add_argument("--metrics", default="afd,swd", help="comma-separated: fid, afd, swd")
    p.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth (FID)")
    p.add_argument("--seed", type=COUNT, default=0)
    p.add_argument("--batch-size", type=POSITIVE, help="images per forward pass (default: the fastest for the model)")
    p.add_argument("--workers", type=COUNT, default=0, help="processes for AFD")
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows (images, wall time) an earlier compare into --out finished; run the rest")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> None:
    from animegen.api import load
    from animegen.workflows.compare import compare
    from animegen.workflows.evaluate import parse_metrics

    metrics = tuple(parse_metrics(args.metrics))
    if args.real is None and any(m in ("fid", "swd") for m in metrics):
        raise UserError("compare scores SWD/FID against real images: add --real FOLDER (or --metrics afd)")
    model = load(args.checkpoint, args.device)
    # no --checkpoint: the shipped model, whose consistency rows are its shipped student's
    student = args.student or (model_path(None, "consistency" in args.samplers) if args.checkpoint is None else None)
    compare(model, args.real, args.samplers, args.out, args.num, args.seed, args.batch_size, metrics,
            {"num_workers": args.workers, "inception_weights": args.inception_weights}, args.resume,
            load(student, args.device) if student is not None else None)
    print((args.out / "report.md").read_text(), end="")
    print(f"wrote {args.out / 'report.md'}, report.json, metrics-vs-nfe.png, samplers.png")


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="a run's EMA weights as a small inference-only model folder (fp16)")
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint folder")
    p.add_argument("--out", type=Path, required=True, help="new folder for config.json + ema.safetensors")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16, half the size)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> None:
    from animegen.workflows.export import export_model

    out = export_model(args.checkpoint, args.out, half=not args.fp32)
    size = (out / "ema.safetensors").stat().st_size
    print(f"wrote {out} ({size / 2**20:.1f} MB); use it with --checkpoint {out}")


def add_interpolate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("interpolate", help="StyleGAN2: a grid walking between latent points (a row per pair)")
    p.add_argument("--checkpoint", required=True, help="a --preset boss run directory or checkpoint folder")
    p.add_argument("--out", type=Path, default=Path("lerp.png"))
    p.add_argument("--rows", type=POSITIVE, default=4)
    p.add_argument("--steps", type=at_least(2), default=8)
    p.add_argument("--seed", type=COUNT, default=0)
    p.add_argument("--psi", type=float, default=1.0)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_interpolate)


def cmd_interpolate(args: argparse.Namespace) -> None:
    from animegen.api import load
    from animegen.workflows.interpolate import interpolate

    model = load(args.checkpoint, args.device)
    print(f"wrote {interpolate(model, args.out, args.rows, args.steps, args.seed, args.psi)}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="animegen", description="Diffusion models for anime faces.")
    parser.add_argument("--version", action="version", version=f"animegen {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_train(sub)
    add_distill(sub)
    add_generate(sub)
    add_evaluate(sub)
    add_fid_ref(sub)
    add_progress(sub)
    add_compare(sub)
    add_export(sub)
    add_interpolate(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="animegen: %(message)s")
    try:
        args.func(args)
    except UserError as err:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank stops; one of them says why
            print(f"animegen: error: {err}", file=sys.stderr)
        return 2
    except Interrupted as stop:  # saved; the exit status says it did not finish (130 SIGINT, 143 SIGTERM)
        if os.environ.get("RANK", "0") == "0":
            print(f"animegen: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except OSError as err:  # an environment problem (disk full, permissions) met where no helper named it
        print(f"animegen: error: {describe(err, err.filename or '?')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("animegen: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
