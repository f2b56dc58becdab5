"""The diffusion trainer: batches from the uint8 cache, augment, loss, Adam, EMA — one step on one screen, run
eager or, on a GPU, as one CUDA graph (training/cuda_graph.py). A few-step student (`animegen distill`) trains in
training/distill_trainer.py, on this one with its own losses.

`DiffusionTrainer(cfg, run_dir, images).run()` trains until cfg.steps (or max_minutes, or a signal); setup, save,
resume and the outer loop are the shared `Trainer`'s. A resumed run restores everything adaptive, so it is the run
that would have happened.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from animegen.core.compiler import inductor_cache_dir
from animegen.core.errors import UserError
from animegen.core.imagefiles import to_uint8
from animegen.core.precision import Precision, device_precision
from animegen.diffusion.loss import DiffusionLoss
from animegen.diffusion.parameterization import Denoiser
from animegen.runs.config import TrainConfig
from animegen.runs.load import build_denoiser
from animegen.samplers.run import sample_batch
from animegen.training.compile_check import compiled_gradient_mismatch
from animegen.training.compile_plan import plan_compile
from animegen.training.cuda_graph import GraphedStep, make_capturable
from animegen.training.distributed import DistEnv
from animegen.training.ema import make_ema
from animegen.training.flops import count_flops
from animegen.training.grad_step import GradStep, fused_adam
from animegen.training.lr_plan import lr_factor
from animegen.training.phema import PostHocEMA
from animegen.training.trainer import Evaluator, Trainer
from animegen.viz.curves import plot_loss

log = logging.getLogger(__name__)


class DiffusionTrainer(Trainer):
    """One diffusion training run in `run_dir` over uint8 `images` (N, 3, H, W)."""

    watches_collapse = True

    def __init__(self, cfg: TrainConfig, run_dir: Path, images: torch.Tensor, env: DistEnv | None = None,
                 evaluator: Evaluator | None = None, device: str | None = None, precision: Precision | None = None):
        super().__init__(cfg, run_dir, images, env, evaluator, device)
        # `precision` overrides cfg.precision's decision (tests: fp16 with its loss scale on a CPU)
        self.precision = precision or device_precision(cfg.precision, self.device)
        self.denoiser = build_denoiser(cfg.model_spec()).to(self.device)
        if cfg.channels_last:
            self.denoiser = self.denoiser.to(memory_format=torch.channels_last)
        self.compile = plan_compile(cfg.compile, self.device, distributed=self.env.enabled, dist_sync=cfg.dist_sync,
                                    grad_accum=cfg.optim.grad_accum, max_minutes=cfg.max_minutes, steps=cfg.steps)
        self._train_denoiser = self.denoiser
        if self.compile.grad_sync == "ddp":
            # the loss calls the net through this wrapper so DDP averages gradients over ranks during backward;
            # EMA, checkpoints and sampling keep using the bare net (no "module." prefixes on disk)
            ddp = DistributedDataParallel(self.denoiser.net,
                                          device_ids=[self.device.index] if self.device.type == "cuda" else None)
            self._train_denoiser = self.denoiser.with_net(ddp)
        self.ema = make_ema(self.denoiser.net, cfg.ema)
        self.ema.update_parameters(self.denoiser.net)  # n_averaged = 1: the EMA starts as a copy
        # post-hoc EMA's profiles (training/phema.py): rank 0 alone writes their snapshots
        self.phema = PostHocEMA(self.denoiser.net, cfg.ema, self.run_dir) \
            if cfg.ema.snapshot_every and self.rank == 0 else None
        if self.compile.inductor:
            inductor_cache_dir()
            # the bare net stays what EMA, checkpoints and sampling see; only the training forward is compiled.
            # Static shapes (a step's are fixed): the UNet's forward compiled earlier in the process at other sizes
            # (sampling, another run) would otherwise make dynamo trace it dynamic, where torch 2.13's inductor
            # failed ("cannot determine truth value of Relational")
            self._train_denoiser = self.denoiser.with_net(torch.compile(self.denoiser.net, dynamic=False))
            self._check_compiled()
        self.loss_fn = self._make_loss()
        if not self.graphable():
            self.compile = dataclasses.replace(self.compile, cuda_graph=False)
        self.optimizer = self._make_optimizer()
        self.grad_step = GradStep(self.denoiser.net, self.optimizer, cfg.optim.grad_clip, self.precision, self.device,
                                  self.env if self.compile.grad_sync == "allreduce" else None)
        self._graph: GraphedStep | None = None
        self.compiles_first_step = self.compile.enabled

    def _check_compiled(self) -> None:
        """Train eager, saying why in one line, if the compiled network's gradients are not the eager one's
        (training/compile_check.py): a compiler bug must cost minutes, not a run."""
        n, shape = self.micro_batch, (3, self.cfg.model.image_size, self.cfg.model.image_size)
        x0 = self.images[:n].to(self.device, torch.float32) / 127.5 - 1 if len(self.images) >= n else \
            torch.rand((n, *shape), generator=torch.Generator().manual_seed(0)).to(self.device) * 2 - 1
        if self.cfg.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        problem = compiled_gradient_mismatch(self.denoiser, self._train_denoiser, x0, self._autocast)
        if problem is None:
            return
        log.warning("--compile: %s (in %s); training runs eager", problem, self.precision.name)
        self._train_denoiser = self.denoiser
        self.compile = dataclasses.replace(self.compile, inductor=False, note="")

    def _make_loss(self) -> DiffusionLoss:
        d = self.cfg.diffusion
        return DiffusionLoss(d.min_snr_gamma, d.t_sampling, d.p_mean, d.p_std)

    def graphable(self) -> bool:
        """Whether one CUDA graph can hold the whole step (a fixed loss on a fixed batch shape)."""
        return True

    def _make_optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(o.name)
        if cls is None:
            raise UserError(f"unknown optimizer {o.name!r}; choose adam or adamw")
        # on CUDA one fused kernel updates every tensor (and can be captured in a graph); on a CPU the foreach
        # default is as fast and keeps today's numbers (a loss scale needs the fused one: training/grad_step.py)
        fused = {"fused": True} if fused_adam(self.device, self.precision) else {}
        optimizer = cls(self.denoiser.net.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay,
                        **fused)
        if self.compile.cuda_graph:
            make_capturable(optimizer, self.device)
        return optimizer

    # -- state -----------------------------------------------------------------------------------------------
    def checkpoint_modules(self) -> tuple[nn.Module, nn.Module]:
        return self.denoiser.net, self.ema.module

    def extra_state(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict(), "ema_n_averaged": self.ema.n_averaged.clone(),
                 "loss_scale": self.grad_step.state_dict()}
        if self.phema is not None:
            state["phema"] = self.phema.state_dict()
        return state

    def load_extra_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        # the saved groups carry the saving run's flags (fused, capturable, a tensor lr): this run's own apply,
        # and Adam's step counts live where they do (on the GPU when fused, else on the host)
        on_gpu = self.device.type == "cuda"
        for group in self.optimizer.param_groups:
            group.update(fused=True if fused_adam(self.device, self.precision) else None, capturable=False,
                         lr=float(group["lr"]))
        for param, slots in self.optimizer.state.items():
            if "step" in slots:
                slots["step"] = slots["step"].to(param.device if on_gpu else "cpu", torch.float32)
        if self.compile.cuda_graph:
            make_capturable(self.optimizer, self.device)
        self.grad_step.load_state_dict(state.get("loss_scale", {}))
        self.ema.n_averaged.copy_(state["ema_n_averaged"])
        if self.phema is not None:
            self.phema.load_state_dict(state["phema"])

    def run(self) -> Path:
        run_dir = super().run()  # an interrupted run raises here: its end comes when a resume finishes it
        if self.phema is not None:
            self.phema.finish(self.step)
        return run_dir

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

    def train_step(self) -> torch.Tensor | dict[str, torch.Tensor]:
        """One optimizer step over grad_accum micro-batches; returns the mean loss as a 0-dim tensor on the
        device. Nothing here waits for the device: Trainer.run reads the losses (and checks them) at log steps."""
        lr = self.lr_at(self.step)
        loss = self._step(lr)
        self.step += 1
        if self.step % self.cfg.ema.every == 0:
            self.ema.update_parameters(self.denoiser.net)
        if self.phema is not None:
            self.phema.after_step(self.denoiser.net, self.step)
        return loss

    def _step(self, lr: float) -> torch.Tensor | dict[str, torch.Tensor]:
        """The optimizer step itself: replayed as one CUDA graph where it can be, eager otherwise."""
        if not self.compile.cuda_graph:
            return self._eager_step(lr)
        x = self.next_batch()
        if self._graph is None:
            self._graph = self._capture(x)
        return self._graph(x, lr) if self._graph is not None else self._eager_step(lr)

    def batch_loss(self) -> torch.Tensor:
        """The mean loss of one micro-batch (a 0-dim tensor with its graph): the next batch of faces through the
        loss."""
        return self.loss_fn(self._train_denoiser, self.next_batch(), self.generator).mean()

    def _autocast(self, cache: bool = True):
        return self.precision.autocast(self.device.type, cache)

    def _eager_step(self, lr: float) -> torch.Tensor:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        accum = self.cfg.optim.grad_accum
        for i in range(accum):
            # under DDP, gradients are averaged over ranks once, at the last micro-batch
            sync = self.compile.grad_sync != "ddp" or i == accum - 1
            with nullcontext() if sync else self._train_denoiser.net.no_sync():
                with self._autocast():
                    loss = self.batch_loss()
                self.grad_step.backward(loss / accum)
            total += loss.detach() / accum
        self.grad_step.finish()  # all-reduce (without DDP), unscale, clip, Adam, the loss scale
        return total

    def _capture(self, example: torch.Tensor) -> GraphedStep | None:
        """The CUDA graph of one step (forward, backward, clip, Adam) for batches shaped like `example`."""
        def body(x: torch.Tensor) -> torch.Tensor:
            with self._autocast(cache=False):  # a graph cannot keep autocast's cast-weight cache
                loss = self.loss_fn(self._train_denoiser, x, self.generator).mean()
            self.grad_step.backward(loss)
            self.grad_step.finish()
            return loss.detach()

        start = time.perf_counter()
        try:
            graph = GraphedStep(body, self.optimizer, self.generator, example, self.grad_step.state_tensors(),
                                collectives=self.compile.grad_sync == "allreduce")
        except RuntimeError as err:  # an op that cannot be captured (a new kernel, a driver): train eager
            log.warning("could not capture the training step as a CUDA graph (%s); training runs eager",
                        str(err).splitlines()[0][:200])
            self.compile = dataclasses.replace(self.compile, cuda_graph=False)
            return None
        log.info("captured the training step as a CUDA graph in %.1f s", time.perf_counter() - start)
        return graph

    # -- outputs ---------------------------------------------------------------------------------------------
    def ema_denoiser(self) -> Denoiser:
        """The EMA weights wrapped for sampling (shares parameters with the EMA, no copy)."""
        return self.denoiser.with_net(self.ema.module).eval()

    def preview(self, seeds: list[int]) -> torch.Tensor:
        """uint8 samples of the EMA model with the model's own sampler (its config's `sample` section)."""
        spec = self.cfg.sample.spec.resolve(self.denoiser.timesteps)
        return to_uint8(sample_batch(self.ema_denoiser(), seeds, spec, self.device, dtype=self.precision.dtype))

    def log_extras(self) -> dict:
        return {"lr": self.lr_at(self.step - 1), "planned_steps": self.total_steps, **self.grad_step.log_extras()}

    def count_flops_per_image(self, batch: int = 2) -> float:
        """FLOPs of one training image through the network, forward and backward (the loss a plain diffusion run
        computes; distillation's teacher solves are not counted): for TFLOP/s in the log."""
        x = torch.zeros((batch, *self.denoiser.image_shape), device=self.device)
        loss = DiffusionLoss()
        generator = torch.Generator(self.device).manual_seed(0)
        flops = count_flops(lambda: loss(self.denoiser, x, generator).mean().backward(), self.device)
        self.optimizer.zero_grad(set_to_none=True)
        return flops / batch
