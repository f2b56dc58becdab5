"""The StyleGAN2 training loop: D step (+ lazy R1), G step, G EMA by half-life; the same run directory,
checkpoints, grids, log and exact resume as the diffusion trainer (the outer loop is `TrainingLoop`)."""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import torch
from torch import nn

from animegen.core.device import pick_device
from animegen.core.errors import UserError
from animegen.core.rng import StackedRandomGenerator
from animegen.data.augment import augment
from animegen.data.dataset import BatchSampler
from animegen.models.stylegan2 import Discriminator, Generator
from animegen.samplers.run import to_uint8
from animegen.training.checkpoint import load_state, load_weights, save_checkpoint
from animegen.training.config import to_dict
from animegen.training.distributed import DistEnv
from animegen.training.gan_config import GANTrainConfig
from animegen.training.gan_loss import StyleGAN2Loss
from animegen.training.runner import TrainingLoop
from animegen.viz.grid import save_grid

log = logging.getLogger(__name__)


def gan_images(G: Generator, seeds: list[int], psi: float = 1.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (len(seeds), 3, S, S): image k from z drawn with seed k alone, constant noise (reproducible)."""
    z = StackedRandomGenerator(seeds, device).randn((len(seeds), G.cfg.z_dim))
    with torch.inference_mode():
        return to_uint8(G(z, psi=psi, noise="const"))


class GANTrainer(TrainingLoop):
    """One StyleGAN2 run in `run_dir` over uint8 `images` (N, 3, H, W)."""

    def __init__(self, cfg: GANTrainConfig, run_dir: Path, images: torch.Tensor, env: DistEnv | None = None,
                 evaluator=None, device: str | None = None):
        self.cfg, self.run_dir, self.images = cfg, Path(run_dir), images
        self.env = env or DistEnv()
        if self.env.enabled:
            raise UserError("the boss preset (StyleGAN2) trains in one process for now; run it without torchrun")
        self.rank, self.evaluator = 0, None  # GAN scores: `animegen evaluate` on generated folders
        self.device = pick_device(device or cfg.device)
        torch.manual_seed(cfg.seed)
        self.G, self.D = Generator(cfg.model).to(self.device), Discriminator(cfg.model).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        o = cfg.optim
        # lazy R1: D's optimizer is rescaled so the rarer, larger regularisation steps keep the same dynamics
        c = o.r1_every / (o.r1_every + 1)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=tuple(o.betas))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=o.lr_d * c, betas=tuple(b ** c for b in o.betas))
        self.loss = StyleGAN2Loss(self.G, self.D, o.r1_gamma, o.r1_every, cfg.style_mixing, cfg.diffaugment)
        self.sampler = BatchSampler(len(images), o.batch_size, cfg.seed)
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed * 1000 + 1)
        self.step, self.elapsed = 0, 0.0
        self.stop_reason: str | None = None

    def next_batch(self) -> torch.Tensor:
        x = self.images[self.sampler.next()].to(self.device, torch.float32) / 255.0
        return augment(x, self.cfg.augment, self.generator) * 2 - 1

    def train_step(self) -> dict[str, float]:
        """D step (with R1 every r1_every steps), then G step, then the G EMA; returns the two losses."""
        real = self.next_batch()
        self.opt_D.zero_grad(set_to_none=True)
        loss_d = self.loss.phase("D", real, self.generator)
        loss_d.backward()
        self.opt_D.step()
        if self.step % self.cfg.optim.r1_every == 0:
            self.opt_D.zero_grad(set_to_none=True)
            self.loss.phase("R1", real, self.generator).backward()
            self.opt_D.step()
        self.D.requires_grad_(False)  # G's step must not accumulate gradients in D
        self.opt_G.zero_grad(set_to_none=True)
        loss_g = self.loss.phase("G", real, self.generator)
        loss_g.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)
        values = {"loss_D": loss_d.item(), "loss_G": loss_g.item()}
        if not all(math.isfinite(v) for v in values.values()):
            raise UserError(f"GAN losses became {values} at step {self.step + 1}: training diverged. The last "
                            f"checkpoint in {self.run_dir} is intact; resume with a lower lr or a larger r1_gamma")
        self.step += 1
        self.update_ema()
        return values

    @torch.no_grad()
    def update_ema(self) -> None:
        """G_ema <- beta G_ema + (1 - beta) G, beta from a half-life in images (ramped up early, as NVlabs)."""
        batch, seen = self.cfg.optim.batch_size, self.step * self.cfg.optim.batch_size
        half_life = min(self.cfg.ema_kimg * 1000, seen * self.cfg.ema_rampup)
        beta = 0.5 ** (batch / max(half_life, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)  # w_avg and the constant noise follow G

    # -- state ---------------------------------------------------------------------------------------------
    def _models(self) -> nn.Module:
        return nn.ModuleDict({"G": self.G, "D": self.D})

    def state_dict(self) -> dict:
        return {"step": self.step, "elapsed": self.elapsed, "opt_G": self.opt_G.state_dict(),
                "opt_D": self.opt_D.state_dict(), "ranks": [{"sampler": self.sampler.state_dict(),
                "generator": self.generator.get_state().cpu(), "torch_rng": torch.get_rng_state()}]}

    def resume(self, ckpt: Path) -> None:
        state = load_state(ckpt)
        load_weights(self._models(), ckpt / "model.safetensors")
        load_weights(self.G_ema, ckpt / "ema.safetensors")
        try:
            self.opt_G.load_state_dict(state["opt_G"])
            self.opt_D.load_state_dict(state["opt_D"])
            mine = state["ranks"][0]
            self.sampler.load_state_dict(mine["sampler"])
            self.generator.set_state(mine["generator"])
            torch.set_rng_state(mine["torch_rng"])
            self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise UserError(f"{ckpt / 'state.pt'}: resume state does not fit this run ({err})") from None

    def save(self) -> Path | None:
        return save_checkpoint(self.run_dir, self.step, self._models(), self.G_ema, to_dict(self.cfg),
                               self.state_dict(), self.cfg.keep_checkpoints)

    # -- outputs -------------------------------------------------------------------------------------------
    def write_grid(self) -> None:
        s = self.cfg.sample
        images = gan_images(self.G_ema, list(range(s.seed, s.seed + s.num)), s.psi, self.device)
        save_grid(images.cpu(), self.run_dir / "samples" / f"step-{self.step:07d}.png")

    def eval_model(self) -> Generator:
        return self.G_ema
