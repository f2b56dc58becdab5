"""The outer training loop shared by the diffusion and GAN trainers: progress bar, JSONL log, grids, evaluation,
checkpoint cadence, --max-minutes, SIGINT/SIGTERM, and ranks that stop together.

A subclass provides `train_step()` (-> a loss, or a dict of named losses), `save()`, `write_grid()`,
`eval_model()` and optionally `log_extras()`; its config has steps, log_every, save_every, eval_every,
max_minutes, preset, seed, sample.every and optim.batch_size. It has a per-rank `sampler` (BatchSampler over
`images` in micro-batches of `micro_batch`) and `generator`, which `rank_states` / `load_rank_states` save and
restore for an exact resume.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path

import torch
from tqdm import tqdm

from animegen.data.dataset import BatchSampler
from animegen.training.distributed import gather, mean_and_any

log = logging.getLogger(__name__)


class TrainingLoop:
    run_dir: Path
    step: int
    elapsed: float
    stop_reason: str | None
    rank: int

    def train_step(self) -> float | dict[str, float]:
        raise NotImplementedError

    def save(self) -> Path | None:
        raise NotImplementedError

    def write_grid(self) -> None:
        raise NotImplementedError

    def eval_model(self):
        """What the evaluator scores (an EMA denoiser or generator)."""
        raise NotImplementedError

    def log_extras(self) -> dict:
        return {}

    def rank_states(self) -> list[dict]:
        """Every rank's data order and RNGs, in rank order (a collective: every rank must call it)."""
        mine = {"sampler": self.sampler.state_dict(), "generator": self.generator.get_state().cpu(),
                "torch_rng": torch.get_rng_state()}
        return gather(mine, self.env)

    def load_rank_states(self, ranks: list[dict], ckpt: Path) -> None:
        """This rank's entry of `rank_states()`; saved by another process count, a new data order instead."""
        if len(ranks) == self.env.world_size:
            mine = ranks[self.rank]
            self.sampler.load_state_dict(mine["sampler"])
            self.generator.set_state(mine["generator"])
            torch.set_rng_state(mine["torch_rng"])
        else:  # weights and optimizers carry over, the data order starts afresh
            log.warning("%s was saved by %d process(es), this run has %d: continuing with a new data order "
                        "(not bit-exact)", ckpt, len(ranks), self.env.world_size)
            self.sampler = BatchSampler(len(self.images), self.micro_batch, self.cfg.seed + self.step,
                                        self.rank, self.env.world_size)

    def log(self, row: dict) -> None:
        with open(self.run_dir / "log.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")

    def run(self) -> Path | None:
        """Train until cfg.steps, cfg.max_minutes or SIGINT/SIGTERM; save, and return the run directory."""
        cfg = self.cfg
        self._install_signal_handlers()
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.preset}", unit="step",
                   disable=self.rank != 0, dynamic_ncols=True)
        window: dict[str, float] = {}
        window_n, window_t = 0, time.perf_counter()
        last_saved = self.step
        try:
            while self.step < cfg.steps and self.stop_reason is None:
                t0 = time.perf_counter()
                out = self.train_step()
                for key, value in (out if isinstance(out, dict) else {"loss": out}).items():
                    window[key] = window.get(key, 0.0) + value
                window_n += 1
                self.elapsed += time.perf_counter() - t0
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    now = time.perf_counter()
                    img_s = window_n * cfg.optim.batch_size / max(now - window_t, 1e-9)
                    means = {k: v / window_n for k, v in window.items()}
                    row = {"step": self.step, **means, **self.log_extras(), "img_per_s": round(img_s, 2),
                           "elapsed_s": round(self.elapsed, 1)}
                    bar.set_postfix(**{k: f"{v:.4f}" for k, v in means.items()}, img_s=f"{img_s:.1f}")
                    if self.rank == 0:
                        self.log(row)
                    window, window_n, window_t = {}, 0, time.perf_counter()
                bar.update(1)
                self._periodic_outputs(bar)
                if self.step % cfg.save_every == 0:
                    self.save()
                    last_saved = self.step
                if cfg.max_minutes is not None and self.elapsed >= cfg.max_minutes * 60:
                    self.stop_reason = f"reached --max-minutes {cfg.max_minutes}"
                # ranks stop together: one rank's signal or time limit stops all after this same step
                _, stop = mean_and_any(0.0, self.stop_reason is not None, self.env, self.device)
                if stop and self.stop_reason is None:
                    self.stop_reason = "another process stopped"
        finally:
            bar.close()
            self._restore_signal_handlers()
        if self.step != last_saved:
            self.save()
        if self.rank == 0 and cfg.sample.every and self.step % cfg.sample.every != 0:
            self.write_grid()  # the run always ends with a grid of its final EMA
        if self.stop_reason:
            log.warning("stopped at step %d: %s", self.step, self.stop_reason)
        return self.run_dir

    def _periodic_outputs(self, bar) -> None:
        """Rank 0's sample grid and evaluation at their intervals."""
        cfg = self.cfg
        if self.rank != 0:
            return
        if cfg.sample.every and self.step % cfg.sample.every == 0:
            self.write_grid()
        if self.evaluator and cfg.eval_every and self.step % cfg.eval_every == 0:
            scores = self.evaluator(self.eval_model(), self.step)
            self.log({"step": self.step, "eval": scores})
            if scores:
                bar.write(f"step {self.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))

    def _install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            if self.stop_reason is not None:  # second Ctrl-C: stop right now
                raise KeyboardInterrupt
            self.stop_reason = f"received {signal.Signals(signum).name}; saving"
            log.warning("%s at step %d (press Ctrl-C again to abort without saving)", self.stop_reason, self.step)

        self._old_handlers = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def _restore_signal_handlers(self) -> None:
        for s, h in getattr(self, "_old_handlers", {}).items():
            signal.signal(s, h)
