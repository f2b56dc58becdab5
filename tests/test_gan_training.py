"""The StyleGAN2 trainer: exact resume, diverse samples after a short run, and the CLI around it."""

import json

import pytest
import torch

from conftest import SMALL_GAN as SMALL, cli

from animegen.data.dataset import load_images
from animegen.samplers.gan import gan_images
from animegen.training.gan_trainer import GANTrainer
from animegen.runs.presets import preset_config

SMALL_ARGS = [x for key, value in SMALL.items() for x in ("--set", f"{key}={json.dumps(value)}")]


@pytest.mark.parametrize("extra", [{}, {"optim.pl_weight": 2.0, "optim.pl_every": 2}], ids=["plain", "path-length"])
def test_resume_continues_bit_for_bit(tmp_path, faces_dir, extra):
    images = load_images(faces_dir, 32, progress=False)[:64]
    cfg = preset_config("boss", {**SMALL, **extra})
    straight = GANTrainer(cfg, tmp_path / "A", images)
    losses = [straight.train_step() for _ in range(5)]
    first = GANTrainer(cfg, tmp_path / "B", images)
    for _ in range(2):
        first.train_step()
    ckpt = first.save()
    resumed = GANTrainer(cfg, tmp_path / "B", images)
    resumed.resume(ckpt)
    assert resumed.step == 2
    assert [resumed.train_step() for _ in range(3)] == losses[2:]  # same losses, R1 (and PL) steps included
    assert resumed.loss.pl_mean == straight.loss.pl_mean and (straight.loss.pl_mean > 0) == bool(extra)
    for a, b in zip(straight.ema.module.state_dict().values(), resumed.ema.module.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_a_short_run_on_real_faces_gives_diverse_images(tmp_path, faces_dir):
    images = load_images(faces_dir, 32, progress=False)
    trainer = GANTrainer(preset_config("boss", SMALL), tmp_path / "R", images)
    for _ in range(200):
        trainer.train_step()
    fake = gan_images(trainer.ema.module, list(range(32))).float() / 255
    real = images[:32].float() / 255

    def mean_pairwise_l2(x):
        d = torch.cdist(x.flatten(1), x.flatten(1))
        return d.sum() / (len(x) * (len(x) - 1))

    assert mean_pairwise_l2(fake) > 0.3 * mean_pairwise_l2(real)  # no collapse onto one picture
    assert (fake.mean() - real.mean()).abs() < 0.25  # and it has left the initial grey


def test_boss_preset_from_the_command_line(tmp_path, faces_dir):
    run = tmp_path / "R"
    cli("train", "--data", str(faces_dir), "--preset", "boss", "--out", str(run), "--steps", "3", *SMALL_ARGS,
        "--set", "sample.every=3")
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "stylegan2" and (run / "samples" / "step-0000003.png").exists()
    cli("train", "--data", str(faces_dir), "--out", str(run), "--resume", "--steps", "4")
    assert (run / "latest").read_text().strip() == "checkpoints/step-0000004"
    for name in ("A", "B"):  # a GAN checkpoint is told apart from a diffusion one; seeds fix the pictures
        cli("generate", "--checkpoint", str(run), "--num", "3", "--psi", "0.7", "--out", str(tmp_path / name))
    assert [(tmp_path / "A" / f"{k}.jpg").read_bytes() == (tmp_path / "B" / f"{k}.jpg").read_bytes()
            for k in (1, 2, 3)] == [True, True, True]
    cli("interpolate", "--checkpoint", str(run), "--rows", "2", "--steps", "5", "--out", str(tmp_path / "lerp.png"))
    from PIL import Image

    with Image.open(tmp_path / "lerp.png") as im:  # 5 columns x 2 rows of 32 px tiles, upscaled 2x
        assert im.size == (2 * (5 * 34 + 2), 2 * (2 * 34 + 2))
    refused = cli("progress", "--checkpoint", str(run), "--out", str(tmp_path / "q1.png"), check=False)
    assert refused.returncode == 2 and "StyleGAN2 checkpoint" in refused.stderr
    refused = cli("interpolate", "--checkpoint", str(tmp_path / "nothing"), check=False)
    assert refused.returncode == 2 and "no checkpoint" in refused.stderr


def test_eval_every_scores_the_gan_during_training(tmp_path, faces_dir):
    run = tmp_path / "R"
    cli("train", "--data", str(faces_dir), "--preset", "boss", "--out", str(run), "--steps", "2", *SMALL_ARGS,
        "--eval-every", "2", "--set", "eval_num=8")
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    (scores,) = [r["eval"] for r in rows if "eval" in r]
    assert scores["swd"] > 0 and 0.0 <= scores["afd"] <= 1.0
    assert len(list((run / "eval" / "real").glob("*.jpg"))) == 8


def test_a_nan_stops_the_gan_at_the_next_check_with_the_last_checkpoint_intact(tmp_path, faces_dir):
    # the same check as the diffusion trainer's (Trainer._read_losses): at log and save steps, before any save
    from animegen.core.errors import UserError
    from animegen.runs.checkpoint import resolve_checkpoint
    from animegen.runs.load import load_generator

    images = load_images(faces_dir, 32, progress=False)[:32]
    trainer = GANTrainer(preset_config("boss", {**SMALL, "steps": 12, "save_every": 4, "log_every": 5}),
                         tmp_path, images)

    def poison(_module, args):  # from step 6 on, D's input turns to NaN, as a diverging run's activations would
        return (args[0] * float("nan"), *args[1:]) if trainer.step >= 5 else None

    trainer.D.register_forward_pre_hook(poison)
    with pytest.raises(UserError, match="diverged.*r1_gamma"):
        trainer.run()
    assert trainer.step == 8  # found where a checkpoint was due, not at step 6 (no per-step check)
    ckpt = resolve_checkpoint(tmp_path)
    assert ckpt.name == "step-0000004"
    G, _, _ = load_generator(ckpt)
    assert all(torch.isfinite(p).all() for p in G.parameters())
