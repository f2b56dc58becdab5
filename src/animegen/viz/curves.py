"""Loss curve PNG from a run's JSONL log."""

from __future__ import annotations

import json
from pathlib import Path

from animegen.core.atomic import atomic_path


def read_log(path: Path) -> list[dict]:
    """Entries of a JSONL log; after a resume the newest entry for a step wins, and torn lines are skipped."""
    by_step: dict[int, dict] = {}
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "step" in row and "loss" in row:
            by_step[int(row["step"])] = row
    return [by_step[k] for k in sorted(by_step)]


def plot_loss(log_path: Path, out_path: Path, title: str = "training loss") -> None:
    """Loss against step (log scale), raw and smoothed; the learning rate on a second axis when logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log_path)
    if not rows:
        return
    steps = [r["step"] for r in rows]
    loss = [r["loss"] for r in rows]
    smooth, acc = [], loss[0]
    for v in loss:
        acc = 0.9 * acc + 0.1 * v
        smooth.append(acc)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, loss, alpha=0.3, label="loss")
    ax.plot(steps, smooth, label="smoothed")
    ax.set(xlabel="step", ylabel="loss", yscale="log", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    lr_rows = [r for r in rows if "lr" in r]
    if lr_rows:  # the lr plan (warm-up, decay to the floor) beside the loss it shapes
        lr_ax = ax.twinx()
        lr_ax.plot([r["step"] for r in lr_rows], [r["lr"] for r in lr_rows], color="tab:green", lw=1, label="lr")
        lr_ax.set_ylabel("learning rate", color="tab:green")
        lr_ax.set_ylim(bottom=0)
    fig.tight_layout()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
