"""The diffusion training loop: batches from the uint8 cache, augment, loss, Adam, EMA, grids, checkpoints.

`Trainer(cfg, run_dir, images).run()` trains until cfg.steps (or max_minutes, or a signal) and always leaves
a loadable checkpoint behind. A resumed run restores everything adaptive, so it is the run that would have
happened.
"""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel

from animegen.core.device import pick_device, use_bf16
from animegen.core.errors import UserError
from animegen.data.augment import augment
from animegen.data.dataset import BatchSampler
from animegen.diffusion.loss import DiffusionLoss
from animegen.diffusion.parameterization import Denoiser
from animegen.samplers.run import sample_images
from animegen.training.checkpoint import load_state, load_weights, save_checkpoint
from animegen.training.config import TrainConfig, to_dict
from animegen.training.distributed import DistEnv, mean_and_any
from animegen.training.ema import make_ema
from animegen.training.runner import TrainingLoop
from animegen.training.factory import build_denoiser
from animegen.viz.curves import plot_loss
from animegen.viz.grid import save_grid

log = logging.getLogger(__name__)


class Trainer(TrainingLoop):
    """One diffusion training run in `run_dir` over uint8 `images` (N, 3, H, W)."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, images: torch.Tensor, env: DistEnv | None = None,
                 evaluator: Callable[[Denoiser, int], dict] | None = None, device: str | None = None):
        self.cfg, self.run_dir, self.images = cfg, Path(run_dir), images
        self.evaluator = evaluator  # (EMA denoiser, step) -> metrics; given by the workflow (metrics live above)
        self.env = env or DistEnv()
        self.rank, self.world_size = self.env.rank, self.env.world_size
        self.device = pick_device(device or cfg.device)
        self.bf16 = use_bf16(cfg.bf16, self.device)
        torch.manual_seed(cfg.seed)  # every rank builds the same initial weights
        self.denoiser = build_denoiser(cfg).to(self.device)
        if cfg.channels_last:
            self.denoiser = self.denoiser.to(memory_format=torch.channels_last)
        self._ddp_denoiser = None
        if self.env.enabled:
            # the loss calls the net through this wrapper so DDP averages gradients over ranks during backward;
            # EMA, checkpoints and sampling keep using the bare net (no "module." prefixes on disk)
            ddp = DistributedDataParallel(self.denoiser.net,
                                          device_ids=[self.device.index] if self.device.type == "cuda" else None)
            self._ddp_denoiser = Denoiser(ddp, self.denoiser.alpha_bar, self.denoiser.objective)
        self.ema = make_ema(self.denoiser.net, cfg.ema.decay, cfg.ema.every, cfg.ema.warmup)
        self.ema.update_parameters(self.denoiser.net)  # n_averaged = 1: the EMA starts as a copy
        self.optimizer = self._make_optimizer()
        self.loss_fn = DiffusionLoss(cfg.diffusion.min_snr_gamma)
        world_size, rank = self.world_size, self.rank
        per_rank = cfg.optim.batch_size // (world_size * cfg.optim.grad_accum)
        if per_rank < 1 or per_rank * world_size * cfg.optim.grad_accum != cfg.optim.batch_size:
            raise UserError(f"batch size {cfg.optim.batch_size} does not split into {world_size} process(es) x "
                            f"{cfg.optim.grad_accum} accumulation step(s)")
        self.micro_batch = per_rank
        self.sampler = BatchSampler(len(images), per_rank, cfg.seed, rank, world_size)
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed * 1000 + rank + 1)
        self.step, self.elapsed = 0, 0.0
        self.stop_reason: str | None = None

    def _make_optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(o.name)
        if cls is None:
            raise UserError(f"unknown optimizer {o.name!r}; choose adam or adamw")
        return cls(self.denoiser.net.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

    # -- state ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resume needs; the data order and RNGs of every rank (collected from all of them)."""
        return {"step": self.step, "elapsed": self.elapsed, "optimizer": self.optimizer.state_dict(),
                "ema_n_averaged": self.ema.n_averaged.clone(), "ranks": self.rank_states()}

    def resume(self, ckpt: Path) -> None:
        """Restore weights, EMA, optimizer, data order, RNGs and counters from checkpoint folder `ckpt`."""
        state = load_state(ckpt)
        load_weights(self.denoiser.net, ckpt / "model.safetensors")
        load_weights(self.ema.module, ckpt / "ema.safetensors")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.ema.n_averaged.copy_(state["ema_n_averaged"])
            self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
            # checkpoints from before per-rank state kept one process's data order and RNGs at the top level
            ranks = state.get("ranks") or [{k: state[k] for k in ("sampler", "generator", "torch_rng")}]
            self.load_rank_states(ranks, ckpt)
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise UserError(f"{ckpt / 'state.pt'}: resume state does not fit this run ({err})") from None

    def save(self) -> Path | None:
        """Checkpoint (rank 0 writes; every rank must call it, since the state is gathered from all ranks)."""
        state = self.state_dict()
        if self.rank != 0:
            return None
        path = save_checkpoint(self.run_dir, self.step, self.denoiser.net, self.ema.module, to_dict(self.cfg),
                               state, self.cfg.keep_checkpoints)
        plot_loss(self.run_dir / "log.jsonl", self.run_dir / "loss.png", f"{self.cfg.preset} preset")
        return path

    # -- one step ------------------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        warmup = self.cfg.optim.warmup_steps
        return self.cfg.optim.lr * (min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0)

    def next_batch(self) -> torch.Tensor:
        """(micro_batch, 3, H, W) float in [-1, 1], augmented on the fly."""
        x = self.images[self.sampler.next()].to(self.device, torch.float32) / 255.0
        x = augment(x, self.cfg.augment, self.generator) * 2 - 1
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def train_step(self) -> float:
        """One optimizer step over grad_accum micro-batches; returns the mean loss."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        accum = self.cfg.optim.grad_accum
        for i in range(accum):
            # under DDP, gradients are averaged over ranks once, at the last micro-batch
            sync = self._ddp_denoiser is None or i == accum - 1
            with nullcontext() if sync else self._ddp_denoiser.net.no_sync():
                with autocast:
                    loss = self.loss_fn(self._train_module(), self.next_batch(), self.generator).mean()
                (loss / accum).backward()
            total += loss.item() / accum
        total, _ = mean_and_any(total, False, self.env, self.device)  # the same verdict on every rank
        if not math.isfinite(total):
            raise UserError(f"loss became {total} at step {self.step + 1}: training diverged. The last checkpoint "
                            f"in {self.run_dir} is intact; resume with a lower learning rate (--lr)")
        torch.nn.utils.clip_grad_norm_(self.denoiser.net.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.step += 1
        if self.step % self.cfg.ema.every == 0:
            self.ema.update_parameters(self.denoiser.net)
        return total

    def _train_module(self):
        """The module the loss calls (a DDP wrapper under torch.distributed)."""
        return self._ddp_denoiser or self.denoiser

    # -- outputs -------------------------------------------------------------------------------------------
    def ema_denoiser(self) -> Denoiser:
        """The EMA weights wrapped for sampling (shares parameters with the EMA, no copy)."""
        return Denoiser(self.ema.module, self.denoiser.alpha_bar, self.denoiser.objective).eval()

    def write_grid(self) -> None:
        """A grid of EMA samples with fixed seeds, so grids of successive steps are comparable."""
        s = self.cfg.sample
        ema_denoiser = self.ema_denoiser()
        seeds = list(range(s.seed, s.seed + s.num))
        shape = (self.cfg.model.channels, self.cfg.model.image_size, self.cfg.model.image_size)
        batches = list(sample_images(ema_denoiser, seeds, batch_size=s.num, sampler=s.sampler, steps=s.steps,
                                     eta=s.eta, threshold=s.threshold, image_shape=shape, device=self.device))
        save_grid(torch.cat(batches).cpu(), self.run_dir / "samples" / f"step-{self.step:07d}.png")

    def log_extras(self) -> dict:
        return {"lr": self.lr_at(self.step - 1)}

    def eval_model(self) -> Denoiser:
        return self.ema_denoiser()
