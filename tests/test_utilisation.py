"""Utilisation in the log: FLOPs a training image counted once at the start (FlopCounterMode), TFLOP/s beside
img/s in log.jsonl, counting that changes no run, and benchmarks/utilisation.py's share of the measured peak."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from animegen.cli import main
from animegen.data.dataset import load_images
from animegen.runs.config import TrainConfig, from_dict
from animegen.runs.presets import preset_config
from animegen.training.diffusion_trainer import DiffusionTrainer
from animegen.training.flops import count_flops
from animegen.training.gan_trainer import GANTrainer
from conftest import FAST, SMALL_GAN

ROOT = Path(__file__).resolve().parents[1]


def test_count_flops_is_two_per_multiply_add_forward_and_backward():
    net, x = torch.nn.Linear(4, 3), torch.randn(8, 4)  # x needs no gradient: backward is the weight's alone
    assert count_flops(lambda: net(x).sum().backward()) == 2 * (2 * 8 * 4 * 3)
    assert count_flops(lambda: net(x)) == 2 * 8 * 4 * 3


@pytest.mark.slow
def test_the_log_gives_tflops_and_counting_changes_no_run(tmp_path, faces_dir):
    run = tmp_path / "run"
    assert main(["train", "--data", str(faces_dir), "--out", str(run), "--steps", "3", *FAST,
                 "--set", "sample.every=0", "--precision", "fp32"]) == 0
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    cfg = from_dict(TrainConfig, {k: v for k, v in json.loads((run / "config.json").read_text()).items()})
    images = load_images(faces_dir, 64, progress=False)
    trainer = DiffusionTrainer(cfg, tmp_path / "probe", images)
    flops = trainer.count_flops_per_image()
    assert flops > 1e6
    for row in rows:  # TFLOP/s = img/s x FLOPs a training image
        assert abs(row["tflops"] - row["img_per_s"] * flops / 1e12) <= 1e-4 + 1e-3 * row["tflops"]
    # the same run without the count takes the same steps: counting put every RNG back
    (tmp_path / "uncounted").mkdir()
    DiffusionTrainer(cfg, tmp_path / "uncounted", images).run()
    again = [json.loads(line) for line in (tmp_path / "uncounted" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in again] == [r["loss"] for r in rows] and "tflops" not in again[0]


@pytest.mark.slow
def test_the_gan_count_moves_no_state(tmp_path, faces_dir):
    images = load_images(faces_dir, SMALL_GAN["model.image_size"], progress=False)[:16]
    trainer = GANTrainer(preset_config("boss", SMALL_GAN), tmp_path, images, device="cpu")
    before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    rng = torch.get_rng_state()
    assert trainer.count_flops_per_image() > 1e6
    assert all(torch.equal(v, trainer.G.state_dict()[k]) for k, v in before.items())  # w_avg included
    assert torch.equal(rng, torch.get_rng_state()) and all(p.grad is None for p in trainer.G.parameters())


@pytest.mark.slow
def test_the_utilisation_benchmark_gives_a_share_of_the_measured_peak(tmp_path, faces_dir):
    run = tmp_path / "run"
    assert main(["train", "--data", str(faces_dir), "--out", str(run), "--steps", "2", *FAST,
                 "--set", "sample.every=0"]) == 0
    out = tmp_path / "u.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "utilisation.py"), str(run), "--small",
                    "--seconds", "0.05", "--json", str(out)], check=True, capture_output=True, timeout=300,
                   env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    report = json.loads(out.read_text())
    assert {"matmul fp32", "conv fp32", "matmul bf16", "conv bf16"} <= set(report["peaks"])
    (row,) = report["runs"]
    assert row["pct_of_matmul"] == round(100 * row["tflops"] / report["peaks"][f"matmul {row['precision']}"], 1)
