"""Presets are data: the homework's ladder (simple -> medium -> strong) as overrides of TrainConfig."""

from __future__ import annotations

import dataclasses

from animegen.core.errors import UserError
from animegen.runs.config import TrainConfig, with_overrides
from animegen.runs.gan_config import GANTrainConfig

# simple = the homework's sample code: dim 16, (1,2,4), T=100 linear, eps-prediction, batch 16, Adam 1e-3
SIMPLE: dict = {}

# medium = simple + the homework's augmentation (flip, 10 degrees, colour jitter 0.25/0.25) + T = 1000.
# It previews and hands in with DPM-Solver++(2M) SDE, 20 steps, dynamic thresholding: on this eps-prediction model
# that found more faces than DDPM-1000 at a fraction of the time, while deterministic DDIM/DPM-Solver++ with the
# plain clamp saturate colour (docs/q2-ddpm-vs-ddim.md has the table)
MEDIUM = {
    **SIMPLE,
    "augment.hflip": True, "augment.rotate_deg": 10.0, "augment.brightness": 0.25, "augment.contrast": 0.25,
    "diffusion.timesteps": 1000,
    "sample.sampler": "dpmpp", "sample.steps": 20, "sample.eta": 1.0, "sample.threshold": "dynamic",
}

# strong = medium + a bigger UNet (dim 32, four levels) + the cosine schedule
STRONG = {
    **MEDIUM,
    "model.dim": 32, "model.dim_mults": [1, 2, 4, 8], "model.attn_resolutions": [16, 8],
    "diffusion.schedule": "cosine",
}

# cpu = the best faces per CPU-hour found by benchmarks/preset_sweep.py (docs/cpu-preset.md has the table):
# the UNet runs at 32x32 on 2x2 patches (space-to-depth), one res block per level, v-prediction with min-SNR
# weighting on a cosine T=1000 schedule; fewer FLOPs per image buy more steps, which matters most in an hour
CPU = {
    "model.patch_size": 2, "model.dim": 32, "model.num_res_blocks": 1, "model.attn_resolutions": [8],
    "diffusion.timesteps": 1000, "diffusion.schedule": "cosine", "diffusion.objective": "pred_v",
    "diffusion.min_snr_gamma": 5.0,
    "optim.batch_size": 32, "optim.warmup_steps": 200,
    # planned for its budget (round 3 of docs/cpu-preset.md: better on both scores at equal CPU time): the lr
    # decays to 1% at the run's last step and the EMA is EDM2's power function (10% of the run)
    "optim.lr_schedule": "cosine", "ema.kind": "power", "ema.every": 1,
    # post-hoc EMA (docs/post-hoc-ema.md): EDM2's two profiles every 250 steps, enough snapshots in an hour's run
    # to rebuild the useful widths closely; `animegen ema` picks the width afterwards
    "ema.snapshot_every": 250,
    # its 20 steps evenly spaced in log-SNR, not in t: the cosine schedule's uniform t spends steps where the
    # noise level barely moves; on the shipped model SWD 31 -> 20 alone, 22 -> 16 guided (docs/guidance.md)
    "sample.sampler": "dpmpp", "sample.steps": 20, "sample.spacing": "logsnr",
}

# gpu = the cpu recipe scaled to one GPU (docs/gpu-preset.md): twice the width, batch 256 (a 64-px UNet this small
# leaves an H100 idle at batch 32), a longer warm-up, and the cpu preset's lr 1e-3: at 2e-3 both H100 runs
# (2026-11-26, 2026-11-27) collapsed once the warm-up passed ~1.5e-3, loss back at its first rows' level for 1,300
# steps. Training logs img/s.
GPU = {
    **CPU,
    "model.dim": 64,
    "optim.batch_size": 256, "optim.lr": 1e-3, "optim.warmup_steps": 500,
    "sample.every": 2000,
    # no post-hoc EMA snapshots until their cost is measured on a GPU (--set ema.snapshot_every=1000: ~20 in 10
    # minutes, 35 MB each)
    "ema.snapshot_every": 0,
}

# boss = the homework's top baseline: a StyleGAN2 (training/gan_config.py holds the NVlabs-style defaults).
# Sized for a CPU: modulated grouped convolutions are slow there, and their cost grows with the square of the
# channels (BENCHMARKS.md); on a GPU raise them, e.g. --set model.channels=256
BOSS = {"model.channels": 64, "model.max_channels": 128, "model.z_dim": 128, "model.w_dim": 128,
        "model.mapping_layers": 2}

# the settings people change most, by their flag name (--batch-size, or batch_size= in Python) -> config key
FLAG_KEYS = {
    "steps": "steps", "batch_size": "optim.batch_size", "lr": "optim.lr", "timesteps": "diffusion.timesteps",
    "schedule": "diffusion.schedule", "objective": "diffusion.objective", "dim": "model.dim",
    "dim_mults": "model.dim_mults", "seed": "seed", "sample_every": "sample.every", "save_every": "save_every",
    "eval_every": "eval_every", "max_minutes": "max_minutes", "save_minutes": "save_minutes",
    "precision": "precision", "bf16": "bf16",  # bf16: the older name, mapped onto precision (runs/config.py)
    "grad_accum": "optim.grad_accum", "device": "device", "compile": "compile", "method": "consistency.method",
}

PRESETS: dict[str, dict] = {"simple": SIMPLE, "medium": MEDIUM, "strong": STRONG, "cpu": CPU, "gpu": GPU,
                            "boss": BOSS}
GAN_PRESETS = {"boss"}


# a run given minutes and no step count trains until its minutes are up: its lr plan sets the steps from the
# measured step time, and the config's default count would end a fast machine's run early (a `cpu` hour on a CPU
# with native bf16, a 10-minute `gpu` run on an H100: docs/cpu-preset.md "Inductor and bf16 on a CPU")
TIME_LIMITED_STEPS = 10_000_000


def preset_config(name: str, overrides: dict | None = None) -> TrainConfig | GANTrainConfig:
    """The config of preset `name` with `overrides` (dotted keys) applied on top; with `max_minutes` but no
    `steps`, a run whose lr decays to a planned end trains until its minutes are up (TIME_LIMITED_STEPS)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    base = GANTrainConfig(preset=name) if name in GAN_PRESETS else TrainConfig(preset=name)
    given = {**PRESETS[name], **(overrides or {})}
    cfg = with_overrides(base, given)
    planned = getattr(getattr(cfg, "optim", None), "lr_schedule", "constant") != "constant"
    if cfg.max_minutes is not None and "steps" not in given and planned:
        cfg = dataclasses.replace(cfg, steps=TIME_LIMITED_STEPS)
    return cfg
