"""The StyleGAN2 training loop: D step (+ lazy R1), G step (+ lazy path length), G EMA by half-life; the same run
directory, checkpoints, grids, log and exact resume as the diffusion trainer (setup, save, resume and the outer loop are the shared `Trainer`).

Under torchrun each rank takes its share of the global batch and gradients are averaged over ranks after every
backward (not DDP: the regularisers need double backward), so the replicas stay identical; rank 0 writes."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
from torch import nn

from animegen.models.stylegan2 import Discriminator, Generator
from animegen.runs.gan_config import GANTrainConfig
from animegen.samplers.gan import gan_images
from animegen.training.distributed import DistEnv, average_gradients, mean_and_any
from animegen.training.ema import follow_buffers, make_half_life_ema
from animegen.training.flops import count_flops
from animegen.training.gan_loss import StyleGAN2Loss
from animegen.training.trainer import Evaluator, Trainer

log = logging.getLogger(__name__)


class GANTrainer(Trainer):
    """One StyleGAN2 run in `run_dir` over uint8 `images` (N, 3, H, W)."""

    def __init__(self, cfg: GANTrainConfig, run_dir: Path, images: torch.Tensor, env: DistEnv | None = None,
                 evaluator: Evaluator | None = None, device: str | None = None):
        super().__init__(cfg, run_dir, images, env, evaluator, device)
        self.G, self.D = Generator(cfg.model).to(self.device), Discriminator(cfg.model).to(self.device)
        self.ema = make_half_life_ema(self.G, cfg.optim.batch_size, cfg.ema_kimg, cfg.ema_rampup, lambda: self.step)
        if self.env.enabled:  # then each rank its own per-layer noise (drawn from the global RNG)
            torch.manual_seed(cfg.seed * 1000 + self.rank + 1)
        o = cfg.optim
        # lazy regularisation: each optimizer is rescaled so the rarer, larger regularisation steps keep the same
        # dynamics (NVlabs: c = interval / (interval + 1) on lr and betas)
        c_d = o.r1_every / (o.r1_every + 1)
        c_g = o.pl_every / (o.pl_every + 1) if o.pl_weight > 0 else 1.0
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=o.lr_g * c_g, betas=tuple(b ** c_g for b in o.betas))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=o.lr_d * c_d, betas=tuple(b ** c_d for b in o.betas))
        self.loss = StyleGAN2Loss(self.G, self.D, o.r1_gamma, o.r1_every, cfg.style_mixing, cfg.diffaugment,
                                  o.pl_weight, o.pl_every, o.pl_decay, o.pl_batch_shrink,
                                  reduce_mean=lambda v: mean_and_any(v, False, self.env, self.device)[0])

    diverged_advice = "resume with a lower lr (--set optim.lr_g=... optim.lr_d=...) or a larger optim.r1_gamma"

    def train_step(self) -> dict[str, float]:
        """D step (+ R1 every r1_every steps), G step (+ PL every pl_every steps), G EMA; returns the losses."""
        real = self.next_batch()
        o = self.cfg.optim
        loss_d = self._phase("D", real, self.D, self.opt_D)
        if self.step % o.r1_every == 0:
            self._phase("R1", real, self.D, self.opt_D)
        self.D.requires_grad_(False)  # G's steps must not accumulate gradients in D
        loss_g = self._phase("G", real, self.G, self.opt_G)
        if o.pl_weight > 0 and self.step % o.pl_every == 0:
            self._phase("PL", real, self.G, self.opt_G)
        self.D.requires_grad_(True)
        self.step += 1
        self.ema.update_parameters(self.G)
        follow_buffers(self.ema, self.G)
        # read and checked with the diffusion trainer's losses: averaged over ranks and refused if not finite at
        # log and save steps (Trainer._read_losses), so the last checkpoint stays the last good one
        return {"loss_D": loss_d, "loss_G": loss_g}

    def _phase(self, name: str, real: torch.Tensor, module: nn.Module, optimizer: torch.optim.Optimizer) -> float:
        """One optimizer step of `module` on loss phase `name`, gradients averaged over ranks; the loss value."""
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss.phase(name, real, self.generator)
        loss.backward()
        average_gradients(module, self.env)
        optimizer.step()
        return loss.item()

    def count_flops_per_image(self, batch: int = 2) -> float:
        """FLOPs of one training image: the D and G phases, forward and backward, plus R1 spread over its interval
        (path length, off by default, is not counted). On copies, so no state (w_avg, pl_mean) moves."""
        o, G, D = self.cfg.optim, copy.deepcopy(self.G), copy.deepcopy(self.D)
        loss = StyleGAN2Loss(G, D, o.r1_gamma, o.r1_every, self.cfg.style_mixing, self.cfg.diffaugment)
        size = self.cfg.model.image_size
        real = torch.zeros((batch, 3, size, size), device=self.device)
        generator = torch.Generator(self.device).manual_seed(0)

        def d_and_g() -> None:
            # G only draws in D's phase (under no_grad; the counter's module hooks trip over its leaves there) and
            # D only judges in G's, as in train_step
            G.requires_grad_(False)
            loss.phase("D", real, generator).backward()
            G.requires_grad_(True)
            D.requires_grad_(False)
            loss.phase("G", real, generator).backward()
            D.requires_grad_(True)

        flops = count_flops(d_and_g, self.device)
        flops += count_flops(lambda: loss.phase("R1", real, generator).backward(), self.device) / o.r1_every
        return flops / batch

    # -- state -----------------------------------------------------------------------------------------------
    def checkpoint_modules(self) -> tuple[nn.Module, nn.Module]:
        return nn.ModuleDict({"G": self.G, "D": self.D}), self.ema.module

    def extra_state(self) -> dict:
        return {"opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(), "pl_mean": self.loss.pl_mean}

    def load_extra_state(self, state: dict) -> None:
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.loss.pl_mean = float(state.get("pl_mean", 0.0))  # runs from before path-length support: 0

    # -- outputs ---------------------------------------------------------------------------------------------
    def preview(self, seeds: list[int]) -> torch.Tensor:
        return gan_images(self.ema.module, seeds, self.cfg.sample.psi, self.device)
