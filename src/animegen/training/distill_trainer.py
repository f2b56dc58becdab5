"""The distill trainer: a few-step student of a trained diffusion model (`animegen distill`), on the diffusion
trainer with its own losses.

The student is the teacher's network and schedule, started from the teacher's EMA weights (`init_weights`).
- trajectory (the default): it learns to jump from points of the teacher's own ODE solves to their ends
  (training/trajectory_distill.py); no real image is read, except by the optional discriminator whose gradient
  sharpens the student's images (training/adversarial.py, `consistency.adversarial`).
- ect: consistency tuning on real faces (diffusion/consistency.py), its gap halved stage by stage over the run.
Everything else (EMA, the lr plan, precision, checkpoints, an exact resume) is the diffusion trainer's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from animegen.core.errors import UserError
from animegen.diffusion.consistency import ConsistencyLoss
from animegen.diffusion.guidance import GuidedDenoiser
from animegen.diffusion.parameterization import Denoiser
from animegen.runs.checkpoint import is_model_folder, load_weights
from animegen.runs.config import TrainConfig
from animegen.runs.load import build_denoiser, load_guide, model_folder
from animegen.runs.model_file import GUIDE_DIR, MODEL_FILE, read_model_file
from animegen.samplers.consistency import consistency_timesteps
from animegen.training.adversarial import AdversarialTerm
from animegen.training.diffusion_trainer import DiffusionTrainer
from animegen.training.trajectory_distill import TrajectoryDistillLoss

log = logging.getLogger(__name__)


class DistillTrainer(DiffusionTrainer):
    """One student run in `run_dir`; `images` are real faces for ect or the discriminator, else empty."""

    watches_collapse = False  # a consistency loss rises by design when a stage tightens its target

    def __init__(self, cfg: TrainConfig, run_dir: Path, images: torch.Tensor, **kwargs):
        self.trajectory = cfg.consistency.method == "trajectory"  # else ect
        super().__init__(cfg, run_dir, images, **kwargs)
        self.adversarial = self._make_adversarial()
        self._stage = -1  # ect: the current stage of the gap schedule

    @staticmethod
    def needs_data(cfg: TrainConfig) -> bool:
        """Whether the run reads real faces: ect tunes on them, the discriminator judges against them."""
        return cfg.consistency.method == "ect" or cfg.consistency.adversarial > 0

    def _make_loss(self) -> ConsistencyLoss | TrajectoryDistillLoss:
        c = self.cfg.consistency
        if not self.trajectory:
            return ConsistencyLoss(c.p_mean, c.p_std, c.huber_c).to(self.device)
        if not c.teacher:
            raise UserError("consistency.method=trajectory needs consistency.teacher: the checkpoint to distill "
                            "(animegen distill sets it)")
        # the teacher stays frozen beside the student: its solves are the targets for the whole run
        teacher = build_denoiser(self.cfg.model_spec()).to(self.device)
        ckpt = model_folder(c.teacher)
        load_weights(teacher.net, ckpt / "ema.safetensors", ckpt / MODEL_FILE)
        return TrajectoryDistillLoss(self._guided_teacher(teacher, ckpt), c.teacher_solver, c.teacher_steps,
                                     c.huber_c, self.cfg.seed * 1000 + self.rank, c.reuse)

    def _guided_teacher(self, teacher: Denoiser, ckpt: Path) -> Denoiser:
        """The teacher as `generate` samples it: guided by the guide that ships with it (export --guide) at its own
        weight, or at consistency.teacher_guidance; the student then learns the guided solves."""
        spec = read_model_file(ckpt)
        weight = self.cfg.consistency.teacher_guidance
        weight = getattr(spec, "guidance", 1.0) if weight is None else float(weight)
        if weight == 1.0:
            return teacher
        if not is_model_folder(ckpt / GUIDE_DIR):
            raise UserError(f"{ckpt}: no guide ships with the teacher, so consistency.teacher_guidance={weight:g} "
                            f"has nothing to guide with; export it with --guide, or leave the setting out")
        guide, name = load_guide(ckpt / GUIDE_DIR, spec, ckpt, self.device)
        log.info("the teacher solves guided by %s at weight %g", name, weight)
        return GuidedDenoiser(teacher, guide, weight)

    def graphable(self) -> bool:
        return not self.trajectory  # trajectory pools new teacher solves every few steps: not one fixed step

    def _make_adversarial(self) -> AdversarialTerm | None:
        c = self.cfg.consistency
        if c.adversarial <= 0:
            return None
        if not self.trajectory:
            raise UserError("consistency.adversarial works with the trajectory method (distill's default)")
        if self.env.enabled or self.cfg.optim.grad_accum != 1:
            raise UserError("consistency.adversarial trains in one process without accumulation: drop "
                            "optim.grad_accum / run without torchrun")
        # D judges the images the 1- and 2-step samplers hand out (pairs from their starting timesteps): a third
        # of the pairs, so it costs a third; the later steps of longer samplers only refine near-final images
        self._judged_from = consistency_timesteps(self.denoiser.alpha_bar, 2)[-1]
        return AdversarialTerm(self.denoiser.image_shape[-1], c.adversarial, self.device)

    def init_weights(self, ckpt: Path) -> None:
        """Start net and EMA from the EMA weights in checkpoint folder `ckpt` (the teacher)."""
        for module in (self.denoiser.net, self.ema.module):
            load_weights(module, ckpt / "ema.safetensors", ckpt / MODEL_FILE)
        if self.phema is not None:
            self.phema.restart(self.denoiser.net)

    # -- state -----------------------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        state = super().extra_state()
        if self.adversarial is not None:
            state["adversarial"] = self.adversarial.state_dict()
        return state

    def load_extra_state(self, state: dict) -> None:
        super().load_extra_state(state)
        if self.adversarial is not None:
            self.adversarial.load_state_dict(state["adversarial"])

    # -- one step --------------------------------------------------------------------------------------------
    def batch_loss(self) -> torch.Tensor:
        if not self.trajectory:
            return super().batch_loss()
        # the loss draws its own pairs from the teacher's solves: no faces are read
        pred, target, _ = self.loss_fn.student_and_target(self._train_denoiser, self.micro_batch, self.device)
        return self.loss_fn.distance_between(pred, target).mean()

    def _step(self, lr: float) -> torch.Tensor | dict[str, torch.Tensor]:
        if self.trajectory:  # pair k of the run is a function of k: resumable
            self.loss_fn.drawn = self.step * self.micro_batch * self.cfg.optim.grad_accum
        else:  # ect: the stage follows the run's plan, so a resume lands on the same one
            stages = self.cfg.consistency.stages
            stage = min(self.step * stages // max(self.total_steps, 1), stages - 1)
            if stage != self._stage:
                self.loss_fn.set_stage(stage)
                self._stage = stage
        if self.adversarial is not None:
            return self._adversarial_step(lr)
        return super()._step(lr)

    def _adversarial_step(self, lr: float) -> dict[str, torch.Tensor]:
        """One student step on distillation + adversarial gradients (training/adversarial.py), then one D step on
        the same images against a batch of real faces."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            pred, target, t = self.loss_fn.student_and_target(self._train_denoiser, self.micro_batch, self.device)
            loss = self.loss_fn.distance_between(pred, target).mean()
        # both gradients meet at the image; one backward through the student carries their sum
        (grad_distill,) = torch.autograd.grad(loss, pred, retain_graph=True)
        judged = t >= self._judged_from
        weight = self.adversarial.ramp(self.step, self.total_steps)
        pred.backward(self.grad_step.scaled(self.adversarial.image_grad(pred, grad_distill, weight, judged,
                                                                         self.generator)))
        self.grad_step.finish()
        real = self.next_batch()[: int(judged.sum())]
        d_loss = self.adversarial.discriminator_step(pred[judged], real, self.generator)
        return {"loss": loss.detach(), "d_loss": d_loss}
