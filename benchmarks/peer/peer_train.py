"""The peer's side of the equal-time quality run: lucidrains' denoising-diffusion-pytorch, trained as its own
Trainer trains, for a fixed wall time, then sampled with its default sampler. Runs in the peer venv.

    .peer-venv/bin/python benchmarks/peer/peer_train.py train --data /data48/faces --out runs/peer --minutes 30
    .peer-venv/bin/python benchmarks/peer/peer_train.py sample --out runs/peer --num 1000 --images runs/peer/images

The model is the homework's `simple` config (Unet dim 16, dim_mults (1, 2, 4); GaussianDiffusion T = 100, linear
betas, pred_noise) with the knobs animegen's `--preset simple` uses (batch 16, Adam 1e-3 betas (0.9, 0.99), grad
clip 1, EMA 0.995 every 10 steps, no flips). The step is the body of `Trainer.train` (v2.3.4) line for line, with
a wall-clock deadline instead of a step count and without its periodic sampling (animegen's run had sampling off
too); the data come from the Trainer's own Dataset and DataLoader (PIL decode + resize per image, its workers).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from denoising_diffusion_pytorch import GaussianDiffusion, Trainer, Unet
from PIL import Image


def build(data: Path, out: Path, batch: int) -> Trainer:
    torch.manual_seed(0)
    diffusion = GaussianDiffusion(Unet(dim=16, dim_mults=(1, 2, 4)), image_size=64, timesteps=100,
                                  beta_schedule="linear", objective="pred_noise")
    return Trainer(diffusion, str(data), train_batch_size=batch, train_lr=1e-3, train_num_steps=10**9,
                   augment_horizontal_flip=False, ema_decay=0.995, ema_update_every=10, amp=False,
                   calculate_fid=False, save_and_sample_every=10**9, results_folder=str(out))


def train(args: argparse.Namespace) -> None:
    trainer = build(args.data, args.out, args.batch)
    log = open(args.out / "log.jsonl", "a")
    start = time.perf_counter()
    deadline = start + 60 * args.minutes
    while time.perf_counter() < deadline:
        # Trainer.train's step (gradient_accumulate_every = 1)
        trainer.model.train()
        data = next(trainer.dl).to(trainer.accelerator.device)
        with trainer.accelerator.autocast():
            loss = trainer.model(data)
        trainer.accelerator.backward(loss)
        trainer.accelerator.clip_grad_norm_(trainer.model.parameters(), trainer.max_grad_norm)
        trainer.opt.step()
        trainer.opt.zero_grad()
        trainer.step += 1
        trainer.ema.update()
        if trainer.step % 50 == 0:
            elapsed = time.perf_counter() - start
            log.write(json.dumps({"step": trainer.step, "loss": loss.item(), "seconds": round(elapsed, 1),
                                  "img_s": round(trainer.step * args.batch / elapsed, 2)}) + "\n")
            log.flush()
    trainer.save("final")
    elapsed = time.perf_counter() - start
    summary = {"steps": trainer.step, "seconds": round(elapsed, 1), "img_s": trainer.step * args.batch / elapsed}
    (args.out / "train.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


def sample(args: argparse.Namespace) -> None:
    """`ema_model.sample()` in batches (the default sampler: ancestral DDPM over all T steps), 1.jpg ... N.jpg."""
    trainer = build(args.data, args.out, 16)
    trainer.load("final")
    model = trainer.ema.ema_model.eval()
    args.images.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    start, done = time.perf_counter(), 0
    while done < args.num:
        n = min(args.batch, args.num - done)
        with torch.inference_mode():
            images = model.sample(batch_size=n)        # (n, 3, 64, 64) in [0, 1]
        arr = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for a in arr:
            done += 1
            Image.fromarray(a).save(args.images / f"{done}.jpg", quality=95)
        print(f"{done}/{args.num} images, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    summary = {"num": args.num, "sampler": f"ddpm:{model.sampling_timesteps}", "seconds": round(seconds, 1)}
    (args.out / "sample.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("train", "sample"))
    parser.add_argument("--data", type=Path, default=Path("/data48/faces"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--batch", type=int, default=16, help="training batch (train) or sampling batch (sample)")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--images", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train(args) if args.command == "train" else sample(args)


if __name__ == "__main__":
    main()
