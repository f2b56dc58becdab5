"""The end of a training step, from the loss on: backward (through the loss scale under fp16), gradients averaged
over processes where DDP does not do it, unscale and overflow check, clip, the optimizer step, the scale's update.
Nothing here waits for the device, so the whole step can be one CUDA graph (training/cuda_graph.py).

Loss scaling is GradScaler's algorithm written with the primitives GradScaler is built on, because
GradScaler.step reads its overflow flag on the host — a sync every step, which a CUDA graph cannot hold:
- the loss is multiplied by a device tensor `scale` before backward, so fp16's small gradients do not underflow;
- torch._amp_foreach_non_finite_check_and_unscale_ divides the gradients by it and sets `found_inf` if any is
  inf or NaN;
- the fused Adam reads `optimizer.found_inf` (the attribute GradScaler hands fused optimizers) and leaves the
  weights, its moments and its step count untouched when it is set: the overflowed step is skipped on the device;
- torch._amp_update_scale_ halves the scale after an overflow and doubles it after `growth_interval` clean steps.
A loss that is itself NaN or inf overflows too and skips its step; it still stops the run at the next log or
save step (Trainer._read_losses), since a diverging run keeps diverging.
"""

from __future__ import annotations

import torch
from torch import nn

from animegen.core.precision import Precision
from animegen.training.distributed import DistEnv, average_gradients

# GradScaler's defaults: start high and let the first overflows find the range
INIT_SCALE, GROWTH_FACTOR, BACKOFF_FACTOR, GROWTH_INTERVAL = 2.0**16, 2.0, 0.5, 2000


def fused_adam(device: torch.device, precision: Precision) -> bool:
    """Whether the optimizer is fused: on CUDA (one kernel for every tensor; capturable in a graph) and wherever a
    loss scale runs (only the fused Adam skips an overflowed step on the device)."""
    return device.type == "cuda" or precision.scaler


class LossScale:
    """GradScaler's dynamic loss scale as device tensors: `scale`, its growth tracker, this step's `found_inf`,
    and the count of skipped steps (read at log steps only)."""

    def __init__(self, device: torch.device, init_scale: float = INIT_SCALE,
                 growth_interval: int = GROWTH_INTERVAL):
        self.growth_interval = growth_interval
        self.scale = torch.full((), init_scale, dtype=torch.float32, device=device)
        self.growth_tracker = torch.zeros((), dtype=torch.int32, device=device)
        self.found_inf = torch.zeros((), dtype=torch.float32, device=device)
        self.skipped = torch.zeros((), dtype=torch.float32, device=device)

    def tensors(self) -> list[torch.Tensor]:
        """Everything a step changes (a graph's warm-up puts them back)."""
        return [self.scale, self.growth_tracker, self.found_inf, self.skipped]

    def unscale_(self, params: list[nn.Parameter]) -> None:
        """grads /= scale, and found_inf = 1 if any gradient is inf or NaN."""
        self.found_inf.zero_()
        grads = [p.grad for p in params if p.grad is not None]
        torch._amp_foreach_non_finite_check_and_unscale_(grads, self.found_inf, self.scale.reciprocal())

    def update(self) -> None:
        """Halve the scale after an overflow, double it after growth_interval clean steps (GradScaler.update)."""
        self.skipped += self.found_inf
        torch._amp_update_scale_(self.scale, self.growth_tracker, self.found_inf, GROWTH_FACTOR, BACKOFF_FACTOR,
                                 self.growth_interval)

    def state_dict(self) -> dict:
        return {"scale": self.scale.clone(), "growth_tracker": self.growth_tracker.clone(),
                "skipped": self.skipped.clone()}

    def load_state_dict(self, state: dict) -> None:
        for name in ("scale", "growth_tracker", "skipped"):
            getattr(self, name).copy_(state[name])


class GradStep:
    """`backward(loss)` for each (micro-)batch, then `finish()` once per optimizer step.

    reduce_over: average the gradients over these processes in one flat all-reduce after backward (the CUDA
    graph's way under torch.distributed; None when DDP's hooks or a single process do it)."""

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float,
                 precision: Precision, device: torch.device, reduce_over: DistEnv | None = None):
        self.module, self.optimizer, self.grad_clip = module, optimizer, grad_clip
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.reduce_over = reduce_over
        self.loss_scale = LossScale(device) if precision.scaler else None
        if self.loss_scale is not None and not optimizer.defaults.get("fused"):
            raise ValueError("loss scaling skips overflowed steps through the fused Adam: build it with fused=True")

    def backward(self, loss: torch.Tensor) -> None:
        (loss * self.loss_scale.scale if self.loss_scale is not None else loss).backward()

    def scaled(self, grad: torch.Tensor) -> torch.Tensor:
        """A gradient handed to backward() by hand (the adversarial term's), scaled like the loss."""
        return grad * self.loss_scale.scale if self.loss_scale is not None else grad

    def finish(self) -> None:
        """Average over processes, unscale and check, clip, step (skipped on overflow), update the scale."""
        if self.reduce_over is not None:
            average_gradients(self.module, self.reduce_over)
        if self.loss_scale is not None:
            self.loss_scale.unscale_(self.params)
            self.optimizer.found_inf = self.loss_scale.found_inf  # read by the fused Adam, as GradScaler hands it
            self.optimizer.grad_scale = None                     # already unscaled
        torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        if self.loss_scale is not None:
            self.loss_scale.update()

    def state_tensors(self) -> list[torch.Tensor]:
        return self.loss_scale.tensors() if self.loss_scale is not None else []

    def state_dict(self) -> dict:
        return self.loss_scale.state_dict() if self.loss_scale is not None else {}

    def load_state_dict(self, state: dict) -> None:
        """A saved scale resumes; a run saved without one (another precision) starts a fresh scale."""
        if self.loss_scale is not None and state:
            self.loss_scale.load_state_dict(state)

    def log_extras(self) -> dict:
        """The scale and the skipped steps so far, for log.jsonl (read at log steps, where the host waits anyway)."""
        if self.loss_scale is None:
            return {}
        return {"loss_scale": float(self.loss_scale.scale), "skipped_steps": int(self.loss_scale.skipped)}
