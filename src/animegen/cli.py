"""The `animegen` command line: parse arguments, call a workflow, turn user errors into one line."""

from __future__ import annotations

import argparse
import os
import json
import logging
import sys
from pathlib import Path

from animegen import __version__
from animegen.core.errors import UserError

# flag -> dotted config key, for the settings people change most; anything else goes through --set
TRAIN_FLAGS = {
    "steps": "steps", "batch_size": "optim.batch_size", "lr": "optim.lr", "timesteps": "diffusion.timesteps",
    "schedule": "diffusion.schedule", "objective": "diffusion.objective", "dim": "model.dim",
    "dim_mults": "model.dim_mults", "seed": "seed", "sample_every": "sample.every", "save_every": "save_every",
    "eval_every": "eval_every", "max_minutes": "max_minutes", "bf16": "bf16", "grad_accum": "optim.grad_accum",
    "device": "device",
}


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a diffusion model on a folder or archive of face images")
    p.add_argument("--data", help="folder of images (searched recursively) or a .zip/.tar/.tar.gz of them")
    p.add_argument("--preset", default="simple",
                   help="simple | medium | strong (the homework's ladder), cpu (best per CPU-hour), boss (StyleGAN2)")
    p.add_argument("--out", type=Path, help="run directory (default: runs/NNNNN-PRESET)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--steps", type=int, help="total optimizer steps")
    p.add_argument("--max-minutes", type=float, help="stop and save after this much training time")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--timesteps", type=int, help="diffusion steps T")
    p.add_argument("--schedule", choices=["linear", "cosine", "sigmoid"])
    p.add_argument("--objective", choices=["pred_noise", "pred_x0", "pred_v"])
    p.add_argument("--dim", type=int, help="UNet base channels")
    p.add_argument("--dim-mults", type=lambda s: [int(v) for v in s.split(",")], help="e.g. 1,2,4,8")
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--sample-every", type=int, help="write a sample grid every N steps (0: never)")
    p.add_argument("--save-every", type=int, help="checkpoint every N steps")
    p.add_argument("--eval-every", type=int, help="score SWD/AFD on a small sample every N steps (0: never)")
    p.add_argument("--bf16", choices=["auto", "on", "off"], help="bf16 autocast (auto: only where it is fast)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:1 ...")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config value, e.g. --set model.attn_resolutions=[16,8] (repeatable)")
    p.add_argument("--cache-dir", type=Path, help="where decoded images are cached (default: user cache)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> None:
    from animegen.training.config import parse_override, to_dict
    from animegen.training.presets import preset_config

    overrides = dict(parse_override(s) for s in args.set)
    for flag, key in TRAIN_FLAGS.items():
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    cfg = preset_config(args.preset, overrides)
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2))
        return
    if not args.data:
        raise UserError("train needs --data FOLDER_OR_ARCHIVE (e.g. --data faces/)")
    if args.resume and args.out is None:
        raise UserError("--resume needs --out RUN_DIR, the run to continue")
    from animegen.workflows.train import train

    run_dir = train(cfg, args.data, args.out, args.resume, args.cache_dir)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0
        print(f"run directory: {run_dir}")


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write N faces as 1.jpg..N.jpg from a trained model")
    p.add_argument("--checkpoint", help="run directory or checkpoint folder (default: the model shipped with "
                                        "animegen, trained on a 2-core CPU)")
    p.add_argument("--out", type=Path, default=Path("submission"), help="output folder (default: submission/)")
    p.add_argument("--num", type=int, default=1000)
    p.add_argument("--sampler", choices=["ddpm", "ddim", "dpmpp"], default=None,
                   help="ddpm (all T steps), ddim, or dpmpp = DPM-Solver++(2M) (default: the model's preview "
                        "sampler, e.g. dpmpp for the cpu preset)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps for ddim/dpmpp (default: the model's)")
    p.add_argument("--eta", type=float, default=None,
                   help="noise of ddim / dpmpp: 0 deterministic (ODE, the default), 1 DDPM-like (SDE)")
    p.add_argument("--threshold", choices=["static", "dynamic", "none"], default=None,
                   help="keep each step's x0 prediction in range: static clamp, or dynamic (Imagen's rescale, less "
                        "saturated colour from eps-prediction models) (default: the model's)")
    p.add_argument("--psi", type=float, default=1.0, help="StyleGAN2 truncation (1 = none, 0.7 = safer faces)")
    p.add_argument("--spacing", choices=["uniform", "trailing", "quadratic", "logsnr"], default="uniform")
    p.add_argument("--seed", type=int, default=0, help="image k uses seed SEED + k - 1")
    p.add_argument("--batch-size", type=int, help="images per forward pass (default: the fastest for the model)")
    p.add_argument("--tgz", type=Path, help="also pack the images as the homework's images.tgz")
    p.add_argument("--jpeg-quality", type=int, default=95)
    p.add_argument("--device", default="cpu")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> None:
    from animegen.workflows.generate import generate

    out = generate(args.checkpoint, args.out, args.num, args.sampler, args.steps, args.eta, args.seed,
                   args.batch_size, args.spacing, args.tgz, args.force, args.jpeg_quality, args.device, args.psi,
                   args.threshold)
    print(f"wrote {args.num} images to {out}" + (f" and {args.tgz}" if args.tgz else ""))


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score generated faces: FID, AFD, SWD")
    p.add_argument("--images", type=Path, required=True, help="folder of generated images")
    p.add_argument("--real", type=Path, help="folder of real images (or FID statistics .npz)")
    p.add_argument("--metrics", default="afd,swd", help="comma-separated: fid, afd, swd (default: afd,swd)")
    p.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    p.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth (FID)")
    p.add_argument("--detector", choices=["animeface", "yolo"], default="animeface", help="AFD detector")
    p.add_argument("--detector-weights", help="yolov8x6_animeface.pt (with --detector yolo)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--workers", type=int, default=0, help="processes for AFD / threads for FID decoding")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> None:
    import torch

    from animegen.metrics.registry import EvalContext
    from animegen.workflows.evaluate import parse_metrics, run_evaluate

    ctx = EvalContext(images=args.images, real=args.real, device=torch.device(args.device),
                      batch_size=args.batch_size, num_workers=args.workers,
                      inception_weights=args.inception_weights, detector=args.detector,
                      detector_weights=args.detector_weights, seed=args.seed)
    run_evaluate(ctx, parse_metrics(args.metrics), args.json)


def add_fid_ref(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fid-ref", help="precompute the FID statistics of a real-image folder (cached)")
    p.add_argument("--real", type=Path, required=True)
    p.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--batch-size", type=int, default=50)
    p.set_defaults(func=cmd_fid_ref)


def cmd_fid_ref(args: argparse.Namespace) -> None:
    from animegen.workflows.evaluate import fid_reference

    path = fid_reference(args.real, args.inception_weights, args.batch_size)
    print(f"FID statistics of {args.real}: {path}")


def add_progress(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("progress", help="report Q1: samples across the denoising steps (+ predicted x0)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--num", type=int, default=5)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", choices=["ddpm", "ddim", "dpmpp"], default="ddpm")
    p.add_argument("--steps", type=int, help="for ddim/dpmpp")
    p.add_argument("--out", type=Path, default=Path("q1.png"))
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_progress)


def cmd_progress(args: argparse.Namespace) -> None:
    from animegen.workflows.progress import progress

    xt, x0 = progress(args.checkpoint, args.out, args.num, args.frames, args.seed, args.sampler, args.steps,
                      args.device)
    print(f"wrote {xt} and {x0}")


def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="report Q2: the same seeds through several samplers, timed and scored")
    p.add_argument("--checkpoint", help="run directory or checkpoint folder (default: the shipped model)")
    p.add_argument("--real", type=Path, help="folder of real images (SWD, FID)")
    p.add_argument("--samplers", default="ddpm,ddim:100,ddim:50,ddim:20,dpmpp:20,dpmpp:10",
                   help="comma-separated sampler:steps[:option=value...] (ddpm runs all T steps); options: "
                        "eta=0..1 (ddim, dpmpp), spacing=uniform|trailing|quadratic|logsnr, threshold=static|dynamic, "
                        "e.g. ddim:50:eta=1")
    p.add_argument("--num", type=int, default=1000, help="images per sampler (the same seeds for each)")
    p.add_argument("--out", type=Path, default=Path("report"))
    p.add_argument("--metrics", default="afd,swd", help="comma-separated: fid, afd, swd")
    p.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth (FID)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, help="images per forward pass (default: the fastest for the model)")
    p.add_argument("--workers", type=int, default=0, help="processes for AFD")
    p.add_argument("--device", default="cpu")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows (images, wall time) an earlier compare into --out finished; run the rest")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> None:
    from animegen.assets import shipped_model
    from animegen.workflows.compare import compare
    from animegen.workflows.evaluate import parse_metrics

    metrics = tuple(parse_metrics(args.metrics))
    if args.real is None and any(m in ("fid", "swd") for m in metrics):
        raise UserError("compare scores SWD/FID against real images: add --real FOLDER (or --metrics afd)")
    checkpoint = args.checkpoint or str(shipped_model())
    compare(checkpoint, args.real, args.samplers, args.out, args.num, args.seed, args.batch_size, metrics,
            args.device, {"num_workers": args.workers, "inception_weights": args.inception_weights}, args.resume)
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
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--psi", type=float, default=1.0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_interpolate)


def cmd_interpolate(args: argparse.Namespace) -> None:
    from animegen.workflows.interpolate import interpolate

    print(f"wrote {interpolate(args.checkpoint, args.out, args.rows, args.steps, args.seed, args.psi, args.device)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="animegen", description="Diffusion models for anime faces.")
    parser.add_argument("--version", action="version", version=f"animegen {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train(sub)
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
    except KeyboardInterrupt:
        print("animegen: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
