"""`animegen train`: make (or reopen) a run directory, load the cached data set, train (diffusion or StyleGAN2).

On --resume the run's own config.json is the recipe: only the settings in RESUME_OVERRIDES (how long, how often
to save / log / sample / score, where) may be changed on the command line; any other override is refused in one
line, since it would silently not be the run that was saved.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from animegen.core.atomic import write_json
from animegen.core.errors import UserError
from animegen.core.imagefiles import save_jpeg
from animegen.core.lock import LOCK_NAME, FileLock, run_lock
from animegen.core.outputs import output_dir, writing
from animegen.data.dataset import load_images
from animegen.runs.checkpoint import resolve_checkpoint
from animegen.runs.config import TrainConfig, from_dict, to_dict, with_overrides
from animegen.runs.gan_config import GANTrainConfig
from animegen.runs.presets import preset_config
from animegen.training.diffusion_trainer import DiffusionTrainer
from animegen.training.distill_trainer import DistillTrainer
from animegen.training.distributed import init_distributed, main_first, shutdown
from animegen.training.gan_trainer import GANTrainer
from animegen.training.trainer import Trainer
from animegen.training.tensorboard import require_tensorboard

log = logging.getLogger(__name__)
RESUME_OVERRIDES = ("steps", "max_minutes", "save_every", "save_minutes", "tensorboard", "keep_checkpoints", "log_every", "eval_every", "eval_num",
                    "sample.every", "device", "compile", "dist_sync")
EVAL_BATCH = 64


def next_run_dir(root: Path, preset: str) -> Path:
    """runs/00000-simple, runs/00001-medium, ...: the next free number under `root`."""
    numbers = [int(m.group(1)) for p in root.glob("*") if (m := re.match(r"(\d{5})-", p.name))]
    return root / f"{max(numbers, default=-1) + 1:05d}-{preset}"


def read_run_config(run_dir: Path) -> TrainConfig | GANTrainConfig:
    """The run's config.json (the one reader for runs, fresh or resumed)."""
    file = run_dir / "config.json"
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{file}: unreadable ({err}); restore it from a checkpoint's config.json") from None
    if not isinstance(data, dict):
        raise UserError(f"{file}: not a config (expected a JSON object)")
    cls = GANTrainConfig if data.get("kind") == "stylegan2" else TrainConfig
    try:
        return from_dict(cls, {k: v for k, v in data.items() if k not in ("format", "step")})
    except UserError as err:
        raise UserError(f"{file}: {err}") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise UserError(f"{file}: invalid config ({err}); fix or restore this file") from None


def resume_config(run_dir: Path, preset: str | None, overrides: dict[str, Any]) -> TrainConfig | GANTrainConfig:
    """The saved config with the overrides a resume allows; anything else given is refused."""
    saved = read_run_config(run_dir)
    if preset is not None and preset != saved.preset:
        raise UserError(f"{run_dir} is a {saved.preset!r} run; drop --preset {preset} to resume it")
    # the same value as saved is fine (one launch command serves the first start and every resume)
    changed = sorted(k for k in overrides if k not in RESUME_OVERRIDES and with_overrides(saved, {k: overrides[k]})
                     != saved)
    if changed:
        raise UserError(f"--resume keeps the run's recipe; {', '.join(changed)} cannot change (only "
                        f"{', '.join(RESUME_OVERRIDES)} can) — start a new --out to change it")
    return with_overrides(saved, overrides)


def check_outside_data(run_dir: Path, data: str | None, allow: bool = False) -> None:
    """Refuse a run directory inside the --data folder (its sample grids and loss plot would lie among the faces)
    unless `allow`; the data folder itself is refused even then (nothing could tell the run's files apart)."""
    if data is None or not Path(data).expanduser().is_dir():
        return
    folder, run = Path(data).expanduser().resolve(), run_dir.expanduser().resolve()
    if run == folder:
        raise UserError(f"{run_dir}: --out is the --data folder itself; choose an --out outside it")
    if folder in run.parents and not allow:
        raise UserError(f"{run_dir}: --out lies inside --data {data}, beside the faces; choose an --out outside "
                        f"it (or add --allow-out-in-data: later runs on {data} leave the run's files out)")


def prepare_run(preset: str | None, overrides: dict[str, Any], out: Path | None, resume: bool,
                data: str | None = None, allow_out_in_data: bool = False
                ) -> tuple[TrainConfig | GANTrainConfig, Path, Path | None, FileLock]:
    """Decide and lock the run directory, and its config; on --resume the run's own config wins (see
    RESUME_OVERRIDES). The lock is taken first, so a second process is refused before it reads anything; a run
    inside its own `data` folder is refused before that (check_outside_data)."""
    if resume and out is None:
        raise UserError("--resume needs --out RUN_DIR, the run to continue")
    run_dir = out or next_run_dir(Path("runs"), preset or "simple")
    check_outside_data(run_dir, data, allow_out_in_data)
    created = not run_dir.exists()
    lock = run_lock(output_dir(run_dir))
    try:
        has_ckpt = (run_dir / "latest").exists() or any((run_dir / "checkpoints").glob("step-*"))
        if resume and has_ckpt:
            return resume_config(run_dir, preset, overrides), run_dir, resolve_checkpoint(run_dir), lock
        if has_ckpt:
            raise UserError(f"{run_dir} already holds a run; add --resume to continue it, or choose another --out")
        if resume:  # a preemptible job relaunches one command until done: its first launch starts the run
            log.warning("%s: nothing saved yet; starting it from step 0", run_dir)
            if (run_dir / "config.json").is_file():
                return resume_config(run_dir, preset, overrides), run_dir, None, lock
        # config.json is written once the data has loaded: a bad --data leaves nothing behind
        return preset_config(preset or "simple", overrides), run_dir, None, lock
    except BaseException:
        drop_empty_run(run_dir, lock, created)
        raise


def drop_empty_run(run_dir: Path, lock: FileLock, created: bool) -> None:
    """Release the lock; a run folder this command created and left empty (bad preset, bad --data) goes too."""
    lock.release()
    if created and {p.name for p in run_dir.iterdir()} <= {LOCK_NAME}:
        (run_dir / LOCK_NAME).unlink(missing_ok=True)
        run_dir.rmdir()


def make_evaluator(cfg: TrainConfig | GANTrainConfig, images: torch.Tensor, run_dir: Path
                   ) -> Callable[[Callable[[list[int]], torch.Tensor], int], dict]:
    """`--eval-every`: score cfg.eval_num samples of the EMA model against as many real training images (SWD,
    AFD; FID too when its weights are on this machine). Real images come from the decoded cache, so archives
    work; the model's images come from the trainer's `preview` (its own sampler, or the GAN's psi)."""
    from animegen.metrics.registry import EvalContext
    from animegen.workflows.evaluate import evaluate, fid_available

    real_dir = run_dir / "eval" / "real"
    if not real_dir.is_dir():
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.eval_num]
        for k, i in enumerate(pick.tolist(), start=1):
            save_jpeg(images[i], real_dir / f"{k}.jpg", quality=95)
    metrics = ["swd", "afd"] + (["fid"] if fid_available(None) else [])

    def evaluator(preview: Callable[[list[int]], torch.Tensor], step: int) -> dict:
        fake_dir = Path(tempfile.mkdtemp(prefix=f"eval-{step}-", dir=run_dir / "eval"))
        try:
            seeds = list(range(10_000, 10_000 + cfg.eval_num))
            index = 1
            for start in range(0, len(seeds), EVAL_BATCH):
                for image in preview(seeds[start : start + EVAL_BATCH]).cpu():
                    save_jpeg(image, fake_dir / f"{index}.jpg", quality=95)
                    index += 1
            return evaluate(EvalContext(images=fake_dir, real=real_dir, seed=cfg.seed), metrics)
        except UserError as err:  # a missing detector must not end an hour of training
            log.warning("evaluation at step %d skipped: %s", step, err)
            return {}
        finally:
            shutil.rmtree(fake_dir, ignore_errors=True)

    return evaluator


def trainer_class(cfg: TrainConfig | GANTrainConfig) -> type[Trainer]:
    """Which trainer a recipe trains with: StyleGAN2, a few-step student (`distill`), or plain diffusion."""
    if isinstance(cfg, GANTrainConfig):
        return GANTrainer
    return DistillTrainer if cfg.consistency.enabled else DiffusionTrainer


def no_images(cfg: TrainConfig | GANTrainConfig) -> torch.Tensor:
    """The empty image set of a run that needs none (a student learning from its teacher's solves alone); any
    other run without --data is a user mistake."""
    if trainer_class(cfg) is not DistillTrainer or DistillTrainer.needs_data(cfg):
        raise UserError("no --data given: training needs a folder (or .zip/.tar/.tar.gz) of face images")
    if cfg.eval_every:
        raise UserError("eval_every needs real images to compare with: pass --data, or set eval_every=0")
    return torch.empty((0, cfg.model.channels, cfg.model.image_size, cfg.model.image_size), dtype=torch.uint8)


def train(data: str | None, preset: str | None = None, overrides: dict[str, Any] | None = None,
          out: Path | None = None, resume: bool = False, cache_dir: Path | None = None,
          init_from: Path | None = None, allow_out_in_data: bool = False) -> Path:
    """Train on the images at `data` (None: a run that draws its own pairs, `distill`'s trajectory method) with
    `preset` plus dotted `overrides`; returns the run directory. A fresh run starts from the EMA weights of
    checkpoint folder `init_from` when given (`distill`'s teacher). An `out` inside the `data` folder is refused
    unless `allow_out_in_data`.

    Under torchrun every process calls this: rank 0 decides the run directory and builds the data cache first,
    then each rank trains on its shard with DDP, and rank 0 alone writes."""
    overrides = overrides or {}
    env, device = init_distributed(overrides.get("device", "auto"))
    locks: list[FileLock] = []
    finished = False
    try:
        if not env.is_main:
            logging.getLogger("animegen").setLevel(logging.WARNING)
        def prepare():  # rank 0 decides the run and holds its lock until the end (the kernel drops it on a kill)
            cfg, run_dir, ckpt, lock = prepare_run(preset, overrides, out, resume, data, allow_out_in_data)
            locks.append(lock)
            return cfg, run_dir, ckpt

        cfg, run_dir, ckpt = main_first(env, prepare, share=True)
        if cfg.tensorboard:
            require_tensorboard()  # before minutes of decoding, not after
        size = cfg.model.image_size
        try:
            images = main_first(env, lambda: load_images(data, size, cache_dir, progress=env.is_main)) \
                if data is not None else no_images(cfg)
        except UserError:
            for lock in locks:  # a fresh run whose data failed leaves no folder behind
                drop_empty_run(run_dir, lock, created=ckpt is None and not (run_dir / "config.json").exists())
            raise
        if ckpt is None and env.is_main:
            with writing(run_dir):
                write_json(run_dir / "config.json", to_dict(cfg))
        log.info("%s; run directory %s%s", f"{len(images)} training images from {data}" if data is not None
                 else "no data: the teacher's own ODE solves are the training pairs", run_dir,
                 f"; {env.world_size} processes" if env.enabled else "")
        evaluator = make_evaluator(cfg, images, run_dir) if cfg.eval_every and env.is_main else None
        trainer = trainer_class(cfg)(cfg, run_dir, images, env=env, evaluator=evaluator, device=device)
        if ckpt is not None:
            trainer.resume(ckpt)
            log.info("resumed %s at step %d", ckpt, trainer.step)
        elif init_from is not None:
            trainer.init_weights(init_from)
            log.info("started from the weights of %s", init_from)
        # precision "auto" depends on the machine (core/precision.py); say which this run trains in, and why
        precision = getattr(trainer, "precision", None)
        log.info("training on %s in %s", trainer.device, precision.reason if precision else "fp32")
        trainer.flops_per_image = trainer.count_flops_per_image()  # once: the log's TFLOP/s
        if trainer.flops_per_image:
            log.info("%.2f GFLOP a training image (forward and backward)", trainer.flops_per_image / 1e9)
        if getattr(trainer, "compile", None) and trainer.compile.note:
            log.info("%s", trainer.compile.note)
        trainer.run()
        finished = True
    finally:
        for lock in locks:
            lock.release()
        shutdown(wait=finished)
    return run_dir
