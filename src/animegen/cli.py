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
from animegen.core.limits import COUNT, MAX_GUIDANCE, POSITIVE, at_least, in_range, positive_float
from animegen.core.outputs import describe
from animegen.core.names import (BF16_ALIASES, COMPILE_SETTINGS, DISTILL_METHODS, OBJECTIVE_NAMES,
                                 PRECISION_SETTINGS, SPACINGS, THRESHOLDS)
from animegen.samplers.table import COMPARE_SAMPLERS, PROGRESS_SAMPLER, SAMPLERS


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other user mistake."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def sampler_names_if(keep) -> str:
    """The samplers whose table entry passes `keep`, for help texts: 'ddim, dpmpp and unipc'."""
    names = [name for name, info in SAMPLERS.items() if keep(info)]
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]


def sampler_names(option: str) -> str:
    """The samplers that read `option`."""
    return sampler_names_if(lambda info: option in info.options)


def number_list(text: str) -> list[float]:
    """'0.05,0.10' -> [0.05, 0.1]; ranges are checked where the numbers are used."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_sampler_flags(p: argparse.ArgumentParser, sampler_default: str | None = None) -> None:
    """--sampler/--steps/--eta/--spacing/--threshold, their choices and help from the samplers' table."""
    listed = "; ".join(f"{name}: {info.summary}" for name, info in SAMPLERS.items())
    p.add_argument("--sampler", choices=list(SAMPLERS), default=sampler_default,
                   help=f"{listed} (default: the model's own sampler; a named sampler starts with eta 0 and uniform "
                        f"spacing at the model's step count; a sampler that needs a student uses the one that ships "
                        f"with the model)")
    p.add_argument("--steps", type=POSITIVE, help=f"sampling steps of {sampler_names('steps')} (default: the model's)")
    p.add_argument("--eta", type=in_range(0.0, 1.0),
                   help=f"noise of {sampler_names('eta')}: 0 deterministic (ODE), 1 DDPM-like (SDE)")
    p.add_argument("--spacing", choices=list(SPACINGS),
                   help=f"which timesteps {sampler_names('spacing')} visit")
    p.add_argument("--threshold", choices=list(THRESHOLDS),
                   help="keep each step's x0 prediction in range: static clamp, or dynamic (Imagen's rescale, less "
                        "saturated colour from eps-prediction models) (default: the model's)")
    add_guide_flags(p)


def add_guide_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--guide", help="autoguidance: a weaker version of the model guides it away from its errors: an "
                                   "earlier checkpoint or post-hoc EMA snapshot of its run (a path, or a name in "
                                   "its run such as step-0000500-std-0.050), or a smaller model trained on the same "
                                   "faces (default: the guide that ships with the model, if one does)")
    p.add_argument("--guidance", type=in_range(1.0, MAX_GUIDANCE),
                   help="autoguidance weight: 1 samples the model alone (default: 2 with --guide; the model's own "
                        "where a guide ships with it)")


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


def guided(args: argparse.Namespace, model):
    """The model with the guide and weight the flags ask for (runs/model.py with_guide)."""
    if args.guide is not None or args.guidance is not None:
        model.with_guide(args.guide, args.guidance)
    return model


def sampling(args: argparse.Namespace, model):
    """(the model that runs the sampler the flags ask for, its resolved spec): runs/model.py's sampler_for."""
    return guided(args, model).sampler_for(args.sampler, args.steps, args.eta, args.spacing, args.threshold)


def add_allow_out_in_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-out-in-data", action="store_true",
                   help="allow an --out inside the --data folder (refused by default: the run's grids would lie "
                        "among the faces; runs on that folder leave animegen's own folders out anyway)")


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a diffusion model (or, with --preset boss, a StyleGAN2) on a folder or "
                                     "archive of face images")
    p.add_argument("--data", help="folder of images (searched recursively) or a .zip/.tar/.tar.gz of them")
    p.add_argument("--preset", help="simple (default) | medium | strong (the homework's ladder), cpu (best per "
                                    "CPU-hour), gpu (the cpu recipe scaled to one GPU), boss (StyleGAN2); on "
                                    "--resume, the run's own")
    p.add_argument("--out", type=Path, help="run directory (default: runs/NNNNN-PRESET)")
    add_allow_out_in_data(p)
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
    add_allow_out_in_data(p)
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

    run_dir = distill(args.data, args.checkpoint, flag_overrides(args), args.out, args.resume, args.cache_dir,
                      args.allow_out_in_data)
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

    run_dir = train(args.data, args.preset, overrides, args.out, args.resume, args.cache_dir,
                    allow_out_in_data=args.allow_out_in_data)
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


def cmd_generate(args: argparse.Namespace) -> None:
    from animegen.api import load
    from animegen.workflows.generate import generate

    model, spec = sampling(args, load(args.checkpoint, args.device, precision_flag(args), args.compile))
    done = generate(model, args.out, args.num, args.seed, spec, args.batch_size, args.psi, args.tgz, args.force,
                    args.jpeg_quality)
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
    add_sampler_flags(p, sampler_default=PROGRESS_SAMPLER)
    p.add_argument("--out", type=Path, default=Path("q1.png"))
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_progress)


def cmd_progress(args: argparse.Namespace) -> None:
    from animegen.api import load
    from animegen.workflows.progress import progress

    model, spec = sampling(args, load(args.checkpoint, args.device))
    xt, x0 = progress(model, args.out, args.num, args.frames, args.seed, spec)
    print(f"wrote {xt} and {x0}")


def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="report Q2: the same seeds through several samplers, timed and scored")
    p.add_argument("--checkpoint", help="run directory or checkpoint folder (default: the shipped model); several, "
                                        "comma-separated, go through the same samplers into OUT/<folder name>/ "
                                        "with one table of all (e.g. the folders of `animegen ema`)")
    students = sampler_names_if(lambda info: info.needs_student)
    p.add_argument("--student", help=f"the distilled student that {students} rows sample with (default: the one "
                                     f"that ships with the model, as the shipped model's does)")
    p.add_argument("--real", type=Path, help="folder of real images (SWD, FID)")
    p.add_argument("--samplers", default=COMPARE_SAMPLERS,
                   help=f"comma-separated sampler:steps[:option=value...] ({sampler_names_if(lambda i: i.all_steps)} "
                        f"runs all T steps); options: eta=0..1 ({sampler_names('eta')}), spacing={'|'.join(SPACINGS)} "
                        f"({sampler_names('spacing')}), threshold={'|'.join(THRESHOLDS)}, e.g. ddim:50:eta=1; what an "
                        f"item leaves out is as for generate --sampler")
    add_guide_flags(p)
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
    # rows of a sampler that needs a student sample with --student, else with the one that ships with the model
    student = load(args.student, args.device) if args.student else None
    options = (args.real, args.samplers, args.out, args.num, args.seed, args.batch_size, metrics,
               {"num_workers": args.workers, "inception_weights": args.inception_weights}, args.resume)
    several = checkpoint_list(args.checkpoint)
    if len(several) > 1:
        from animegen.workflows.compare import compare_models

        compare_models({name: guided(args, load(path, args.device)).with_student(student)
                        for name, path in several.items()}, *options)
        figures = f"models.png, and {', '.join(several)}/ (a report each)"
    else:
        compare(guided(args, load(next(iter(several.values()), args.checkpoint), args.device)).with_student(student),
                *options)
        figures = "metrics-vs-nfe.png, samplers.png"
    print((args.out / "report.md").read_text(), end="")
    print(f"wrote {args.out / 'report.md'}, report.json, {figures}")


def checkpoint_list(text: str | None) -> dict[str, str]:
    """'a/std-0.050,a/std-0.100' -> {folder name: path} (a path that exists as given is one checkpoint)."""
    if text is None or "," not in text or Path(text).exists():
        return {Path(text).name: text} if text else {}
    paths = [p.strip() for p in text.split(",") if p.strip()]
    names = [Path(p).name or p for p in paths]
    if len(set(names)) < len(names):  # two runs' std-0.100: numbered, so each keeps its own folder
        names = [f"{k}-{n}" for k, n in enumerate(names, start=1)]
    return dict(zip(names, paths))


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="a run's EMA weights as a small inference-only model folder (fp16)")
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint folder")
    p.add_argument("--out", type=Path, required=True, help="new folder for model.json + ema.safetensors")
    p.add_argument("--student", help="also ship this run's few-step student (of `animegen distill --checkpoint` "
                                     "the same model) in OUT/student, where a consistency sampler finds it")
    p.add_argument("--guide", help="also ship the guide autoguidance samples with (as generate --guide takes it) in "
                                   "OUT/guide, so the model samples guided by default")
    p.add_argument("--guidance", type=in_range(1.0, MAX_GUIDANCE), help="the weight it ships with (default 2)")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16, half the size)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> None:
    from animegen.workflows.export import export_model

    out = export_model(args.checkpoint, args.out, half=not args.fp32, student=args.student, guide=args.guide,
                       guidance=args.guidance)
    size = (out / "ema.safetensors").stat().st_size
    print(f"wrote {out} ({size / 2**20:.1f} MB); use it with --checkpoint {out}")


def add_ema(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ema", help="post-hoc EMA: rebuild a run's EMA of other widths from its snapshots (EDM2)",
                       description="Combines the EMA snapshots a run stored (ema.snapshot_every; on for the cpu "
                                   "preset) into its EMA of each asked relative width at its last snapshot, one "
                                   "model folder per width (OUT/std-0.100/, as export writes)")
    p.add_argument("--checkpoint", required=True, help="the run directory")
    p.add_argument("--std", required=True, type=number_list,
                   help="comma-separated relative widths, e.g. 0.05,0.10,0.15 (the run's own is ema.std)")
    p.add_argument("--out", type=Path, required=True, help="folder for the std-S/ model folders")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16, half the size)")
    p.set_defaults(func=cmd_ema)


def cmd_ema(args: argparse.Namespace) -> None:
    from animegen.workflows.ema import reconstruct_ema

    done = reconstruct_ema(args.checkpoint, args.std, args.out, half=not args.fp32)
    print(f"the EMA at step {done[0].step} (the run's last snapshot), rebuilt from its snapshots:")
    print("| std | profile fit error | sum of abs(coefficients) | folder |\n|---|---|---|---|")
    for r in done:
        print(f"| {r.std:.3f} | {r.fit_error:.2%} | {r.coefficient_sum:.1f} | {r.path} |")
    if max(r.fit_error for r in done) > 0.05:
        print("a large fit error: the stored profiles cannot make that width closely; more snapshots (a smaller "
              "ema.snapshot_every) or snapshot_stds nearer to it would (docs/post-hoc-ema.md)")
    print(f"compare them: animegen compare --checkpoint {','.join(str(r.path) for r in done)} --samplers dpmpp:20 "
          f"--real FACES")


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


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a local web page: draw faces, walk between seeds, watch a face being made, "
                                     "follow runs while they train, score, write the hand-in",
                       description="Needs the serve extra: pip install 'animegen[serve]'. Reads only the "
                                   "checkpoint it serves, the runs under --runs and --real; writes only --out.")
    p.add_argument("--checkpoint", help="run directory or checkpoint folder to draw with (default: the shipped "
                                        "model, and its 2-step student, which the page starts with)")
    p.add_argument("--runs", type=Path, default=Path("."), help="the folder whose runs the page shows and may draw "
                                                                "with (default: the current folder)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                       "only; any other is announced with a warning)")
    p.add_argument("--port", type=in_range(0, 65535, int), default=8765, help="default 8765; 0: any free port")
    p.add_argument("--out", type=Path, default=Path("handin"),
                   help="the hand-in folder Download writes: OUT/images/1.jpg.. and OUT/images.tgz (default: handin)")
    p.add_argument("--real", type=Path, help="real faces for Score's SWD (without it, Score gives AFD only)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1 ...")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> None:
    from animegen.serve import serve

    serve(args.checkpoint, args.runs, args.host, args.port, args.out, args.real, args.device)


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
    add_ema(sub)
    add_interpolate(sub)
    add_serve(sub)
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
