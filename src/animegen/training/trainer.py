"""What every trainer shares, diffusion or GAN: device and seeds, the batch split over processes, the data order
and RNGs, save and exact resume, and the outer loop (progress bar, JSONL log, grids, evaluation, checkpoint
cadence, --max-minutes, SIGINT/SIGTERM, ranks that stop together).

A subclass builds its networks and optimizers, then provides `train_step()` (-> a loss, or a dict of named
losses), `checkpoint_modules()` (what model.safetensors and ema.safetensors hold), `extra_state()` /
`load_extra_state()` (its optimizers and anything adaptive) and `preview(seeds)` (uint8 images of its EMA model).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from animegen.core.device import pick_device
from animegen.core.errors import Interrupted, UserError
from animegen.data.augment import augment
from animegen.data.dataset import BatchSampler
from animegen.runs.checkpoint import load_state, load_weights, save_checkpoint
from animegen.runs.config import to_dict
from animegen.runs.model_file import MODEL_FILE
from animegen.training.distributed import DistEnv, gather, mean_and_any
from animegen.training.loss_watch import LossWatch
from animegen.training.lr_plan import PLAN_AFTER, plan_total
from animegen.training.tensorboard import TensorBoardLog
from animegen.viz.grid import make_grid, save_grid

log = logging.getLogger(__name__)

# (preview function: seeds -> uint8 (B, C, H, W), step) -> metric values; built by the train workflow
Evaluator = Callable[[Callable[[list[int]], torch.Tensor], int], dict]


class Trainer:
    """One run in `run_dir` over uint8 `images` (N, 3, H, W); `run()` trains until cfg.steps, cfg.max_minutes
    or a signal and always leaves a loadable checkpoint behind."""

    diverged_advice = "resume with a lower learning rate (--lr)"  # what the one line says when a loss is not finite
    watches_collapse = False  # a denoiser's loss: stop when it climbs back and stays (training/loss_watch.py)

    def __init__(self, cfg, run_dir: Path, images: torch.Tensor, env: DistEnv | None = None,
                 evaluator: Evaluator | None = None, device: str | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.evaluator = evaluator  # metrics live above training; the workflow hands them in
        self.env = env or DistEnv()
        self.rank, self.world_size = self.env.rank, self.env.world_size
        self.device = pick_device(device or cfg.device)
        # on a GPU the whole uint8 set lives there (71k faces at 64 px: 0.9 GB): a batch is gathered on the device
        # and no step waits for a host-to-device copy
        self.images = images.to(self.device) if self.device.type == "cuda" else images
        torch.manual_seed(cfg.seed)  # every rank builds the same initial weights
        accum = getattr(cfg.optim, "grad_accum", 1)
        per_rank = cfg.optim.batch_size // (self.world_size * accum)
        if per_rank < 1 or per_rank * self.world_size * accum != cfg.optim.batch_size:
            raise UserError(f"batch size {cfg.optim.batch_size} does not split into {self.world_size} process(es) "
                            f"x {accum} accumulation step(s)")
        self.micro_batch = per_rank
        self.sampler = BatchSampler(len(images), per_rank, cfg.seed, self.rank, self.world_size)
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed * 1000 + self.rank + 1)
        self.step, self.elapsed = 0, 0.0
        self.stop_reason: str | None = None
        self.signal: int | None = None  # the SIGINT/SIGTERM that stopped the run, if one did
        self.clock = time.monotonic  # for time-based checkpoints; a test may hand in a fake one
        self.tensorboard = TensorBoardLog(self.run_dir) if cfg.tensorboard and self.rank == 0 else None
        # the horizon: cfg.steps, or with --max-minutes and a decaying lr, what the measured step time allows
        self.total_steps = cfg.steps
        self._measured = (0, 0.0)  # (steps, seconds) timed in this process
        self.compiles_first_step = False  # a subclass that compiles its step sets it: that step is not timed
        self.flops_per_image = 0.0  # set from count_flops_per_image() at the start (workflows/train.py): TFLOP/s
        self.loss_watch = LossWatch() if self.watches_collapse else None

    # -- what a subclass provides --------------------------------------------------------------------------
    def train_step(self) -> torch.Tensor | float | dict[str, torch.Tensor | float]:
        """One optimizer step; its loss(es), ideally as device tensors: the host reads them at log steps only."""
        raise NotImplementedError

    def checkpoint_modules(self) -> tuple[nn.Module, nn.Module]:
        """(trained weights, EMA weights): written as model.safetensors and ema.safetensors."""
        raise NotImplementedError

    def extra_state(self) -> dict:
        """Optimizers and anything adaptive, beside the step, time, data order and RNGs saved here."""
        raise NotImplementedError

    def load_extra_state(self, state: dict) -> None:
        raise NotImplementedError

    def preview(self, seeds: list[int]) -> torch.Tensor:
        """uint8 (len(seeds), C, H, W) from the EMA model, image k from seeds[k] alone."""
        raise NotImplementedError

    def log_extras(self) -> dict:
        return {}

    def count_flops_per_image(self) -> float:
        """FLOPs of one training image (forward and backward of the step's networks); 0 if not counted."""
        return 0.0

    def after_save(self) -> None:
        """Rank 0, after each checkpoint (e.g. redraw the loss curve)."""

    # -- data ------------------------------------------------------------------------------------------------
    def next_batch(self) -> torch.Tensor:
        """(micro_batch, 3, H, W) float in [-1, 1], augmented on the fly."""
        idx = self.sampler.next().to(self.images.device, non_blocking=True)
        x = self.images[idx].to(self.device, torch.float32) / 255.0
        return augment(x, self.cfg.augment, self.generator) * 2 - 1

    # -- the plan --------------------------------------------------------------------------------------------
    def plans_by_time(self) -> bool:
        """True when the horizon comes from --max-minutes: a decaying lr needs to know where the run ends."""
        return self.cfg.max_minutes is not None and getattr(self.cfg.optim, "lr_schedule", "constant") != "constant"

    def replan(self) -> None:
        """Set total_steps from the step time measured so far (every log step, and on resume; see
        training/lr_plan.py): this process's own once it has timed PLAN_AFTER steps, before that the saved run's."""
        if not self.plans_by_time():
            return
        steps, seconds = self._measured
        earlier_steps, earlier_seconds = self.step - steps, self.elapsed - seconds
        if steps >= PLAN_AFTER:
            rate = seconds / steps
        elif earlier_steps >= PLAN_AFTER:
            rate = earlier_seconds / earlier_steps
        else:
            return
        # every rank plans from the mean step time, so all stop at the same step
        rate, _ = mean_and_any(rate, False, self.env, self.device)
        self.total_steps = plan_total(self.step, self.elapsed, self.cfg.max_minutes * 60, rate, self.cfg.steps)

    # -- state -----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resume needs; the data order and RNGs of every rank (collected from all of them)."""
        mine = {"sampler": self.sampler.state_dict(), "generator": self.generator.get_state().cpu(),
                "torch_rng": torch.get_rng_state()}
        return {"step": self.step, "elapsed": self.elapsed, "total_steps": self.total_steps, **self.extra_state(),
                "ranks": gather(mine, self.env)}

    def save(self) -> Path | None:
        """Checkpoint (rank 0 writes; every rank must call it, since the state is gathered from all ranks)."""
        state = self.state_dict()
        if self.rank != 0:
            return None
        model, ema = self.checkpoint_modules()
        path = save_checkpoint(self.run_dir, self.step, model, ema, self.cfg.model_spec(), to_dict(self.cfg), state,
                               self.cfg.keep_checkpoints)
        self.after_save()
        return path

    def resume(self, ckpt: Path) -> None:
        """Restore weights, EMA, optimizers, data order, RNGs and counters from checkpoint folder `ckpt`."""
        state = load_state(ckpt)
        model, ema = self.checkpoint_modules()
        load_weights(model, ckpt / "model.safetensors", ckpt / MODEL_FILE)
        load_weights(ema, ckpt / "ema.safetensors", ckpt / MODEL_FILE)
        try:
            self.load_extra_state(state)
            self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
            # the saved plan, re-planned at once from the saved step time (more minutes or steps extend it)
            saved_total = int(state.get("total_steps", self.cfg.steps))
            self.total_steps = saved_total if self.plans_by_time() and saved_total > self.step else self.cfg.steps
            self.replan()  # with the saved run's step time: an extended budget is planned from the first step
            # checkpoints from before per-rank state kept one process's data order and RNGs at the top level
            ranks = state.get("ranks") or [{k: state[k] for k in ("sampler", "generator", "torch_rng")}]
            self._load_rank_states(ranks, ckpt)
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise UserError(f"{ckpt / 'state.pt'}: resume state does not fit this run ({err})") from None

    def _load_rank_states(self, ranks: list[dict], ckpt: Path) -> None:
        """This rank's data order and RNGs; with another process count or another data set, a new data order."""
        mine = ranks[self.rank] if len(ranks) == self.world_size else None
        saved_n = mine["sampler"].get("n") if mine else None
        if mine is not None and saved_n in (None, len(self.images)):
            self.sampler.load_state_dict(mine["sampler"])
            self.generator.set_state(mine["generator"])
            torch.set_rng_state(mine["torch_rng"])
            return
        # weights and optimizers carry over; the data order starts afresh over the data this run has
        why = (f"saved by {len(ranks)} process(es), this run has {self.world_size}" if mine is None else
               f"saved while training on {saved_n} images, this run has {len(self.images)}")
        log.warning("%s was %s: continuing with a new data order (not bit-exact)", ckpt, why)
        self.sampler = BatchSampler(len(self.images), self.micro_batch, self.cfg.seed + self.step, self.rank,
                                    self.world_size)

    # -- outputs ---------------------------------------------------------------------------------------------
    def log(self, row: dict) -> None:
        with open(self.run_dir / "log.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.tensorboard:
            self.tensorboard.scalars(row)

    def write_grid(self) -> None:
        """A grid of EMA samples with fixed seeds, so grids of successive steps are comparable."""
        s = self.cfg.sample
        images = self.preview(list(range(s.seed, s.seed + s.num))).cpu()
        save_grid(images, self.run_dir / "samples" / f"step-{self.step:07d}.png")
        if self.tensorboard:
            self.tensorboard.grid(self.step, make_grid(images))

    # -- the outer loop --------------------------------------------------------------------------------------
    def run(self) -> Path:
        """Train until cfg.steps, cfg.max_minutes or SIGINT/SIGTERM; save, and return the run directory."""
        cfg = self.cfg
        self._install_signal_handlers()
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"train {cfg.preset}", unit="step",
                   disable=self.rank != 0, dynamic_ncols=True)
        window: dict[str, float] = {}
        window_n, window_t = 0, time.perf_counter()
        last_saved, last_save_time = self.step, self.clock()
        stop = False  # agreed by every rank: a rank that stops alone would leave the others in a collective
        try:
            while self.step < self.total_steps and not stop:
                t0 = self.clock()
                out = self.train_step()
                # losses stay on the device (tensors) until a log step: no step waits for the GPU
                for key, value in (out if isinstance(out, dict) else {"loss": out}).items():
                    window[key] = window.get(key, 0.0) + value
                window_n += 1
                self._time_step(self.clock() - t0)
                at_log = self.step % cfg.log_every == 0 or self.step == self.total_steps
                if at_log:
                    self._log_window(window, window_n, window_t, bar)
                    window, window_n, window_t = {}, 0, time.perf_counter()
                bar.update(1)
                self._periodic_outputs(bar)
                # a planned run ends at its planned step; the time limit then only guards against a slowdown
                slack = 1.05 if self.plans_by_time() else 1.0
                if cfg.max_minutes is not None and self.elapsed >= cfg.max_minutes * 60 * slack:
                    self.stop_reason = f"reached --max-minutes {cfg.max_minutes}"
                # checkpoints every save_every steps or save_minutes, whichever comes first. Ranks save and stop
                # together: at log and save steps one all-reduce carries rank 0's clock verdict and any rank's stop
                due = bool(cfg.save_minutes) and self.clock() - last_save_time >= cfg.save_minutes * 60
                due_any = 0.0
                if not self.env.enabled or at_log or self.step % cfg.save_every == 0:
                    due_any, stop = mean_and_any(float(due), self.stop_reason is not None, self.env, self.device)
                if stop and self.stop_reason is None:
                    self.stop_reason = "another process stopped"
                if (self.step % cfg.save_every == 0 or due_any > 0) and not stop:
                    self._read_losses(window, window_n)  # never save weights that a NaN has reached
                    self.save()
                    last_saved, last_save_time = self.step, self.clock()
        finally:
            bar.close()
            self._restore_signal_handlers()
            if self.tensorboard:
                self.tensorboard.close()
        if self.step != last_saved:
            self._read_losses(window, window_n)
            self.save()
        if self.rank == 0 and cfg.sample.every and self.step % cfg.sample.every != 0:
            self.write_grid()  # the run always ends with a grid of its final EMA
        if self.signal is not None:
            raise Interrupted(self.signal, f"{signal.Signals(self.signal).name}: saved step {self.step} in "
                                           f"{self.run_dir}; `--resume` to continue")
        if self.stop_reason:
            log.warning("stopped at step %d: %s", self.step, self.stop_reason)
        return self.run_dir

    def _time_step(self, seconds: float) -> None:
        """Add a step's host time to the run's clock and, unless it compiled, to the step time the plan uses."""
        self.elapsed += seconds
        if self.compiles_first_step:  # a step that compiled or captured says nothing of the rest
            log.info("the first step (compiling) took %.1f s", seconds)
            self.compiles_first_step = False
        else:
            self._measured = (self._measured[0] + 1, self._measured[1] + seconds)

    def _log_window(self, window: dict, n: int, started: float, bar) -> None:
        """A log step: the window's mean losses (checked), the re-plan, one log.jsonl row and the bar."""
        means = self._read_losses(window, n)
        self._watch_collapse(means.get("loss"), n)
        self.replan()
        bar.total = self.total_steps
        img_s = n * self.cfg.optim.batch_size / max(time.perf_counter() - started, 1e-9)
        row = {"step": self.step, **means, **self.log_extras(), "img_per_s": round(img_s, 2),
               "elapsed_s": round(self.elapsed, 1)}
        if self.flops_per_image:  # achieved rate of the whole run (all processes), training/flops.py
            row["tflops"] = round(img_s * self.flops_per_image / 1e12, 4)
        bar.set_postfix(**{k: f"{v:.4f}" for k, v in means.items()}, img_s=f"{img_s:.1f}")
        if self.rank == 0:
            self.log(row)

    def _read_losses(self, window: dict, n: int) -> dict[str, float]:
        """The mean of each loss over the last `n` steps, on the host (averaged over ranks): the one wait for the
        device in a log step. A loss that is not finite on any rank stops the run before anything is saved, so
        the last checkpoint stays the last good one."""
        means = {}
        for key, total in window.items():
            value = float(total) / n
            means[key], bad = mean_and_any(value, not math.isfinite(value), self.env, self.device)
            if bad:
                first = self.step - n + 1
                raise UserError(f"the {key} became {value} within steps {first}-{self.step}: training diverged. "
                                f"The last checkpoint in {self.run_dir} is intact; {self.diverged_advice}")
        return means

    def _watch_collapse(self, loss: float | None, n: int) -> None:
        """Stop a run whose loss climbed back and stayed (the same means on every rank: all stop together)."""
        if self.loss_watch is None or loss is None:
            return
        why = self.loss_watch.update(self.step, loss, n)
        if why:
            raise UserError(f"{why}: the network collapsed (the learning rate is too high for it); train again "
                            f"with a lower one (--lr)")

    def _periodic_outputs(self, bar) -> None:
        """Rank 0's sample grid and evaluation at their intervals."""
        cfg = self.cfg
        if self.rank != 0:
            return
        if cfg.sample.every and self.step % cfg.sample.every == 0:
            self.write_grid()
        if self.evaluator and cfg.eval_every and self.step % cfg.eval_every == 0:
            scores = self.evaluator(self.preview, self.step)
            self.log({"step": self.step, "eval": scores})
            if scores:
                bar.write(f"step {self.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))

    def _install_signal_handlers(self) -> None:
        """First Ctrl-C / SIGTERM: stop after this step and save; a second one: abort at once. Python runs a
        handler once for signals that arrive during one long C++ step, so each delivery is counted from the
        wakeup fd, to which the C-level handler writes one byte per signal."""
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach only the main thread; a trainer elsewhere stops by steps or time
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._wakeup = (read_fd, write_fd, signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False))

        def deliveries() -> int:
            count = 0
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(read_fd, 64):
                    count += len(chunk)
            return max(count, 1)

        def handler(signum, _frame):
            if self.signal is not None or deliveries() >= 2:
                raise KeyboardInterrupt  # the second signal: stop right now, without saving
            self.stop_reason, self.signal = f"received {signal.Signals(signum).name}; saving", signum
            log.warning("%s at step %d (press Ctrl-C again to abort without saving)", self.stop_reason, self.step)

        self._old_handlers = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def _restore_signal_handlers(self) -> None:
        for s, h in getattr(self, "_old_handlers", {}).items():
            signal.signal(s, h)
        if getattr(self, "_wakeup", None):
            read_fd, write_fd, old_fd = self._wakeup
            signal.set_wakeup_fd(old_fd)
            os.close(read_fd)
            os.close(write_fd)
            self._wakeup = None
