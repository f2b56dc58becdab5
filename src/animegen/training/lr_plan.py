"""The learning rate planned for the run's horizon: warm-up, then decay to a floor at the planned last step.

With --steps the horizon is known; with --max-minutes the trainer measures its step time and plans how many steps
the budget holds (`plan_total`), re-planning as it goes, so the decay ends where the run does (short-run results:
Karras et al. 2024, and lr decay to the deadline in general). The plan is saved with the run, so --resume keeps it.
"""

from __future__ import annotations

import math

from animegen.runs.config import LR_SCHEDULES

PLAN_AFTER = 20  # steps measured in this process before the step time is trusted
# the warm-up never takes more than this share of the planned steps: a short run (a one-minute try of a recipe)
# still decays to its floor instead of ending inside a warm-up sized for an hour
MAX_WARMUP_SHARE = 0.05


def lr_factor(schedule: str, step: int, total: int, warmup: int = 0, floor: float = 0.0) -> float:
    """The multiplier of the base lr for the optimizer step with 0-based index `step` of `total`: linear warm-up
    over `warmup` steps (at most MAX_WARMUP_SHARE of `total`), then `schedule` from 1 down to `floor`, reached
    exactly at the last step (total - 1)."""
    warmup = min(warmup, int(MAX_WARMUP_SHARE * total))
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = total - 1 - warmup
    progress = 1.0 if span <= 0 else min(1.0, max(0.0, (step - warmup) / span))
    if schedule == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return floor + (1 - floor) * (1 - progress)
    raise ValueError(f"unknown lr schedule {schedule!r}; choose from {', '.join(LR_SCHEDULES)}")


def plan_total(step: int, elapsed_s: float, budget_s: float, seconds_per_step: float, cap: int) -> int:
    """How many steps the run will have reached when its time budget is spent, at `seconds_per_step` from now
    on; never more than `cap` (--steps) and never fewer than the steps already taken."""
    remaining = max(0.0, budget_s - elapsed_s)
    return max(step, min(cap, step + int(remaining / max(seconds_per_step, 1e-9))))
