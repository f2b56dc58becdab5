"""StyleGAN2 training throughput (G step + D step, lazy R1 every 16, DiffAugment) on this CPU, per width.

    python benchmarks/gan_speed.py

Random uint8 images (the step's cost does not depend on content), batch 32, 2 threads; 2 untimed steps, then 4.
"""

from __future__ import annotations

import time
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

from animegen.training.gan_trainer import GANTrainer
from animegen.runs.presets import preset_config

WIDTHS = {  # overrides on top of the boss preset
    "channels 256 (NVlabs-like)": {"model.channels": 256, "model.max_channels": 256, "model.z_dim": 256,
                                   "model.w_dim": 256, "model.mapping_layers": 4},
    "channels 128": {"model.channels": 128, "model.max_channels": 128},
    "channels 64 (boss preset)": {},
}


def main() -> None:
    torch.set_num_threads(2)
    images = torch.randint(0, 255, (512, 3, 64, 64), dtype=torch.uint8)
    print("| width | G params | D params | G+D img/s |\n|---|---|---|---|")
    for name, overrides in WIDTHS.items():
        cfg = preset_config("boss", overrides)
        with TemporaryDirectory() as tmp:
            trainer = GANTrainer(cfg, Path(tmp), images)
            for _ in range(2):
                trainer.train_step()
            start, n = time.perf_counter(), 4
            for _ in range(n):
                trainer.train_step()
            img_s = n * cfg.optim.batch_size / (time.perf_counter() - start)
        g = sum(p.numel() for p in trainer.G.parameters()) / 1e6
        d = sum(p.numel() for p in trainer.D.parameters()) / 1e6
        print(f"| {name} | {g:.2f}M | {d:.2f}M | {img_s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
