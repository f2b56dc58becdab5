"""A denoising loss that climbs back to where training began and stays there: the network collapsed.

The NaN check (`Trainer._read_losses`) catches a loss that overflows; a collapse is quieter. On an H100 the `gpu`
preset at lr 2e-3 (2026-11-27, docs/gpu-preset.md) fell to 0.032 by step 350, jumped to 0.22 (its first rows'
level) as the warm-up reached the peak lr, stayed there for 1,300 steps and only then became NaN: six of eight
minutes lost. Its 3-minute run of the day before had collapsed the same way and come back 1,300 steps later, as the
lr decayed. Past its first rows a denoiser's loss falls almost monotonically, so a window mean several times the
best one, row after row, is no noise. Consistency distillation is not watched: its loss rises by design when a
stage tightens the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RISE = 3.0  # a window mean this many times the best one counts as high
ROWS = 3  # consecutive high log rows that stop the run
MIN_WINDOW = 20  # steps a log row must average over: single small batches vary several-fold with t


@dataclass
class LossWatch:
    """Fed every log row's mean loss; says why to stop once `rows` rows in a row sit `rise` times above the best."""

    rise: float = RISE
    rows: int = ROWS
    best: float = math.inf
    best_step: int = 0
    high_rows: int = 0
    high_since: int = 0

    def update(self, step: int, loss: float, window: int) -> str | None:
        """`loss`: the mean over the `window` steps that end at `step`. None, or the reason the run diverged."""
        if window < MIN_WINDOW:
            return None
        if loss < self.best:
            self.best, self.best_step = loss, step
        if loss < self.rise * self.best:
            self.high_rows = 0
            return None
        self.high_rows += 1
        if self.high_rows == 1:
            self.high_since = step
        if self.high_rows < self.rows:
            return None
        return (f"the loss rose from {self.best:.4g} (step {self.best_step}) to {loss:.4g} and stayed above "
                f"{self.rise:g}x that from step {self.high_since} to {step}")
