"""The diffusion trainer: batches from the uint8 cache, augment, loss, Adam, EMA — one step on one screen.

`DiffusionTrainer(cfg, run_dir, images).run()` trains until cfg.steps (or max_minutes, or a signal); setup, save,
resume and the outer loop are the shared `Trainer`'s. A resumed run restores everything adaptive, so it is the run
that would have happened.
"""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from animegen.core.device import use_bf16
from animegen.core.errors import UserError
from animegen.core.imagefiles import to_uint8
from animegen.diffusion.loss import DiffusionLoss
from animegen.diffusion.parameterization import Denoiser
from animegen.runs.config import TrainConfig
from animegen.runs.load import build_denoiser
from animegen.samplers.run import sample_batch
from animegen.training.distributed import DistEnv, mean_and_any
from animegen.training.ema import make_ema
from animegen.training.lr_plan import lr_factor
from animegen.training.trainer import Evaluator, Trainer
from animegen.viz.curves import plot_loss

log = logging.getLogger(__name__)


class DiffusionTrainer(Trainer):
    """One diffusion training run in `run_dir` over uint8 `images` (N, 3, H, W)."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, images: torch.Tensor, env: DistEnv | None = None,
                 evaluator: Evaluator | None = None, device: str | None = None):
        super().__init__(cfg, run_dir, images, env, evaluator, device)
        self.bf16 = use_bf16(cfg.bf16, self.device)
        self.denoiser = build_denoiser(cfg).to(self.device)
        if cfg.channels_last:
            self.denoiser = self.denoiser.to(memory_format=torch.channels_last)
        self._train_denoiser = self.denoiser
        if self.env.enabled:
            # the loss calls the net through this wrapper so DDP averages gradients over ranks during backward;
            # EMA, checkpoints and sampling keep using the bare net (no "module." prefixes on disk)
            ddp = DistributedDataParallel(self.denoiser.net,
                                          device_ids=[self.device.index] if self.device.type == "cuda" else None)
            self._train_denoiser = self.denoiser.with_net(ddp)
        self.ema = make_ema(self.denoiser.net, cfg.ema)
        self.ema.update_parameters(self.denoiser.net)  # n_averaged = 1: the EMA starts as a copy
        self.optimizer = self._make_optimizer()
        d = cfg.diffusion
        self.loss_fn = DiffusionLoss(d.min_snr_gamma, d.t_sampling, d.p_mean, d.p_std)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(o.name)
        if cls is None:
            raise UserError(f"unknown optimizer {o.name!r}; choose adam or adamw")
        return cls(self.denoiser.net.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

    # -- state -----------------------------------------------------------------------------------------------
    def checkpoint_modules(self) -> tuple[nn.Module, nn.Module]:
        return self.denoiser.net, self.ema.module

    def extra_state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "ema_n_averaged": self.ema.n_averaged.clone()}

    def load_extra_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.n_averaged.copy_(state["ema_n_averaged"])

    def after_save(self) -> None:
        plot_loss(self.run_dir / "log.jsonl", self.run_dir / "loss.png", f"{self.cfg.preset} preset")

    # -- one step --------------------------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """The lr of the optimizer step with 0-based index `step`, on the run's current plan."""
        o = self.cfg.optim
        return o.lr * lr_factor(o.lr_schedule, step, self.total_steps, o.warmup_steps, o.lr_floor)

    def next_batch(self) -> torch.Tensor:
        x = super().next_batch()
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
            sync = not self.env.enabled or i == accum - 1
            with nullcontext() if sync else self._train_denoiser.net.no_sync():
                with autocast:
                    loss = self.loss_fn(self._train_denoiser, self.next_batch(), self.generator).mean()
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

    # -- outputs ---------------------------------------------------------------------------------------------
    def ema_denoiser(self) -> Denoiser:
        """The EMA weights wrapped for sampling (shares parameters with the EMA, no copy)."""
        return self.denoiser.with_net(self.ema.module).eval()

    def preview(self, seeds: list[int]) -> torch.Tensor:
        """uint8 samples of the EMA model with the model's own sampler (its config's `sample` section)."""
        return to_uint8(sample_batch(self.ema_denoiser(), seeds, self.cfg.sample.spec, self.device))

    def log_extras(self) -> dict:
        return {"lr": self.lr_at(self.step - 1), "planned_steps": self.total_steps}
