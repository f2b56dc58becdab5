"""`animegen train`: make (or reopen) a run directory, load the cached data set, train."""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from pathlib import Path

import torch

from animegen.core.atomic import write_json
from animegen.core.errors import UserError
from animegen.data.dataset import load_images
from animegen.samplers.run import sample_images
from animegen.training.checkpoint import resolve_checkpoint
from animegen.training.config import TrainConfig, from_dict, to_dict
from animegen.training.distributed import init_distributed, main_first, shutdown
from animegen.training.gan_config import GANTrainConfig
from animegen.training.gan_loop import GANTrainer
from animegen.training.loop import Trainer
from animegen.workflows.generate import save_jpeg

log = logging.getLogger(__name__)


def next_run_dir(root: Path, preset: str) -> Path:
    """runs/00000-simple, runs/00001-medium, ...: the next free number under `root`."""
    numbers = [int(m.group(1)) for p in root.glob("*") if (m := re.match(r"(\d{5})-", p.name))]
    return root / f"{max(numbers, default=-1) + 1:05d}-{preset}"


def prepare_run(cfg: TrainConfig, out: Path | None, resume: bool) -> tuple[TrainConfig, Path, Path | None]:
    """Decide the run directory; on --resume the run's own config wins over the command line's preset."""
    run_dir = out or next_run_dir(Path("runs"), cfg.preset)
    has_ckpt = (run_dir / "latest").exists() or any((run_dir / "checkpoints").glob("step-*"))
    if resume:
        if not has_ckpt:
            raise UserError(f"{run_dir}: nothing to resume (no checkpoint); drop --resume to start a new run")
        ckpt = resolve_checkpoint(run_dir)
        saved = json.loads((run_dir / "config.json").read_text())
        cls = GANTrainConfig if saved.get("kind") == "stylegan2" else TrainConfig
        saved_cfg = from_dict(cls, saved)
        # a resumed run may be extended (more steps, more minutes) but keeps its architecture and recipe
        cfg = from_dict(cls, {**to_dict(saved_cfg), "steps": cfg.steps, "max_minutes": cfg.max_minutes})
        return cfg, run_dir, ckpt
    if has_ckpt:
        raise UserError(f"{run_dir} already holds a run; add --resume to continue it, or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", to_dict(cfg))
    return cfg, run_dir, None


def make_evaluator(cfg: TrainConfig, images: torch.Tensor, run_dir: Path):
    """`--eval-every`: score cfg.eval_num EMA samples against as many real training images (SWD, AFD; FID
    too when its weights are on this machine). Real images come from the decoded cache, so archives work."""
    from animegen.metrics.registry import EvalContext
    from animegen.workflows.evaluate import evaluate, fid_available

    real_dir = run_dir / "eval" / "real"
    if not real_dir.is_dir():
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.eval_num]
        for k, i in enumerate(pick.tolist(), start=1):
            save_jpeg(images[i], real_dir / f"{k}.jpg", quality=95)
    metrics = ["swd", "afd"] + (["fid"] if fid_available(None) else [])
    shape = (cfg.model.channels, cfg.model.image_size, cfg.model.image_size)

    def evaluator(denoiser, step: int) -> dict:
        fake_dir = Path(tempfile.mkdtemp(prefix=f"eval-{step}-", dir=run_dir / "eval"))
        try:
            seeds = list(range(10_000, 10_000 + cfg.eval_num))
            index = 1
            for batch in sample_images(denoiser, seeds, batch_size=64, sampler="ddim", steps=cfg.sample.steps,
                                       image_shape=shape, device=next(denoiser.parameters()).device):
                for image in batch.cpu():
                    save_jpeg(image, fake_dir / f"{index}.jpg", quality=95)
                    index += 1
            return evaluate(EvalContext(images=fake_dir, real=real_dir, seed=cfg.seed), metrics)
        except UserError as err:  # a missing detector must not end an hour of training
            log.warning("evaluation at step %d skipped: %s", step, err)
            return {}
        finally:
            shutil.rmtree(fake_dir, ignore_errors=True)

    return evaluator


def train(cfg: TrainConfig | GANTrainConfig, data: str, out: Path | None = None, resume: bool = False,
          cache_dir: Path | None = None) -> Path:
    """Train a diffusion model on the images at `data`; returns the run directory.

    Under torchrun every process calls this: rank 0 decides the run directory and builds the data cache first,
    then each rank trains on its shard with DDP, and rank 0 alone writes."""
    env, device = init_distributed(cfg.device)
    try:
        if not env.is_main:
            logging.getLogger("animegen").setLevel(logging.WARNING)
        cfg, run_dir, ckpt = main_first(env, lambda: prepare_run(cfg, out, resume), share=True)
        images = main_first(env, lambda: load_images(data, cfg.model.image_size, cache_dir, progress=env.is_main))
        log.info("%d training images from %s; run directory %s%s", len(images), data, run_dir,
                 f"; {env.world_size} processes" if env.enabled else "")
        if isinstance(cfg, GANTrainConfig):
            trainer = GANTrainer(cfg, run_dir, images, env=env, device=device)
        else:
            evaluator = make_evaluator(cfg, images, run_dir) if cfg.eval_every and env.is_main else None
            trainer = Trainer(cfg, run_dir, images, env=env, evaluator=evaluator, device=device)
        if ckpt is not None:
            trainer.resume(ckpt)
            log.info("resumed %s at step %d", ckpt, trainer.step)
        # bf16 "auto" depends on the machine (AVX512-BF16 / AMX, or a GPU); say which precision this run trains in
        log.info("training on %s in %s", trainer.device, "bf16 autocast" if getattr(trainer, "bf16", False) else "fp32")
        trainer.run()
    finally:
        shutdown()
    return run_dir
