"""What a run stores for post-hoc EMA (EDM2, Karras et al. 2024, sec. 3): power-function EMAs of a few widths
(ema.snapshot_stds), updated with the run's own EMA, and their fp16 snapshots in run/phema/ every
ema.snapshot_every steps and at the run's end. `animegen ema` (workflows/ema.py) later combines the snapshots into
the EMA of any width; runs/phema.py holds the profiles and the files.

Each tracker is one more lerp over the weights per EMA update; the trackers live on rank 0 alone (they only feed
its snapshots) and their fp32 state rides in the checkpoint, so a resumed run writes the snapshots the straight
run would have.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from animegen.runs.config import EMAConfig
from animegen.runs.phema import remove_snapshots_after, write_snapshot
from animegen.training.ema import make_ema


class PostHocEMA:
    """Power-function EMAs of `net` of relative widths cfg.snapshot_stds, snapshotted into run_dir/phema/."""

    def __init__(self, net: nn.Module, cfg: EMAConfig, run_dir: Path):
        self.every, self.snapshot_every, self.run_dir = cfg.every, cfg.snapshot_every, Path(run_dir)
        # the same AveragedModel as the run's own EMA, so a tracker of the run's own width is that EMA bit for bit
        self.trackers = {std: make_ema(net, dataclasses.replace(cfg, kind="power", std=std))
                         for std in cfg.snapshot_stds}
        self.restart(net)
        self._fresh = True  # no step taken in this process yet

    def restart(self, net: nn.Module) -> None:
        """Start every tracker as a copy of `net` (update 1), as the run's own EMA starts."""
        for ema in self.trackers.values():
            ema.n_averaged.zero_()
            ema.update_parameters(net)

    def after_step(self, net: nn.Module, step: int) -> None:
        """After optimizer step `step`: update on the run's EMA cadence, snapshot on the snapshot cadence."""
        if self._fresh:  # snapshots past the step this process started from are a killed run's: they come again
            remove_snapshots_after(self.run_dir, step - 1)
            self._fresh = False
        if step % self.every == 0:
            for ema in self.trackers.values():
                ema.update_parameters(net)
        if step % self.snapshot_every == 0:
            self.snapshot(step)

    def finish(self, step: int) -> None:
        """The run ended at `step`: snapshot it too, so a reconstruction is of the final weights."""
        if step % self.snapshot_every != 0:
            self.snapshot(step)

    def snapshot(self, step: int) -> None:
        for std, ema in self.trackers.items():
            write_snapshot(self.run_dir, step, int(ema.n_averaged), std, ema.module.state_dict())

    # -- resume ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"stds": list(self.trackers), "trackers": [ema.state_dict() for ema in self.trackers.values()]}

    def load_state_dict(self, state: dict) -> None:
        """The trackers as saved in a checkpoint."""
        if [float(s) for s in state["stds"]] != list(self.trackers):
            raise ValueError(f"post-hoc EMA widths {state['stds']} were saved, this run tracks {list(self.trackers)}")
        for ema, saved in zip(self.trackers.values(), state["trackers"]):
            ema.load_state_dict(saved)
