"""Training: a tiny model overfits real faces, resume is exact, checkpoints refuse hostile or foreign files."""

import json
import math
import pickle
import warnings

import pytest
import torch

from animegen.core.errors import UserError
from animegen.data.dataset import load_images
from animegen.runs.checkpoint import load_state, load_weights, resolve_checkpoint
from animegen.training.diffusion_trainer import DiffusionTrainer
from animegen.runs.presets import preset_config
from animegen.models.unet import UNet, UNetConfig
from conftest import TINY


@pytest.fixture(scope="module")
def faces16(faces_dir):
    return load_images(faces_dir, 16, progress=False)


def tiny_cfg(**extra):
    return preset_config("simple", {**TINY, "sample.every": 0, "save_every": 1000, **extra})


def test_tiny_model_overfits_eight_faces(tmp_path, faces16):
    trainer = DiffusionTrainer(tiny_cfg(**{"optim.lr": 3e-3, "optim.batch_size": 8}), tmp_path, faces16[:8])
    losses = [trainer.train_step() for _ in range(300)]
    start, end = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert end < 0.35 * start, (start, end)


def test_resume_continues_bit_for_bit(tmp_path, faces16):
    cfg = tiny_cfg(**{"ema.every": 2, "augment.hflip": True, "augment.rotate_deg": 10.0, "model.dropout": 0.1})
    straight = DiffusionTrainer(cfg, tmp_path / "a", faces16[:64])
    reference = [straight.train_step() for _ in range(7)]

    first = DiffusionTrainer(cfg, tmp_path / "b", faces16[:64])
    [first.train_step() for _ in range(4)]
    ckpt = first.save()
    resumed = DiffusionTrainer(cfg, tmp_path / "b", faces16[:64])
    resumed.resume(ckpt)
    assert resumed.step == 4
    assert [resumed.train_step() for _ in range(3)] == reference[4:]
    for p, q in zip(resumed.ema.module.parameters(), straight.ema.module.parameters()):
        assert torch.equal(p, q)


def test_checkpoints_also_follow_the_clock(tmp_path, faces16):
    # a fake clock that advances 4 minutes a call: with save_minutes=10 a save falls due every few steps,
    # long before save_every's 1000
    cfg = tiny_cfg(**{"steps": 9, "save_every": 1000, "save_minutes": 10.0, "keep_checkpoints": 10})
    trainer = DiffusionTrainer(cfg, tmp_path, faces16[:32])
    ticks = iter(range(0, 10_000, 240))
    trainer.clock = lambda: float(next(ticks))
    trainer.run()
    saved = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "checkpoints").iterdir())
    assert saved == [3, 6, 9]  # 0 s at start; steps 1, 2, 3 read 240, 480, 720 s: the save at 3 resets the mark


def test_resume_on_a_smaller_data_set_starts_a_new_data_order(tmp_path, faces16, caplog):
    cfg = tiny_cfg()
    first = DiffusionTrainer(cfg, tmp_path, faces16[:64])
    [first.train_step() for _ in range(3)]
    ckpt = first.save()
    smaller = DiffusionTrainer(cfg, tmp_path, faces16[:16])
    smaller.resume(ckpt)
    assert "saved while training on 64 images, this run has 16" in caplog.text
    for _ in range(6):  # two epochs of the new set: every index is in range
        assert int(smaller.sampler.next().max()) < 16
    assert smaller.step == 3 and math.isfinite(smaller.train_step())


def test_run_writes_grid_log_curve_and_checkpoint(tmp_path, faces16):
    cfg = tiny_cfg(**{"steps": 6, "save_every": 3, "sample.every": 3, "keep_checkpoints": 1})
    DiffusionTrainer(cfg, tmp_path, faces16[:32]).run()
    assert (tmp_path / "latest").read_text().strip() == "checkpoints/step-0000006"
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-0000006"]  # older ones pruned
    assert {p.name for p in (tmp_path / "samples").iterdir()} == {"step-0000003.png", "step-0000006.png"}
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 7)) and all(r["loss"] > 0 for r in rows)
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_hostile_pickle_in_resume_state_does_not_run(tmp_path, faces16):
    cfg = tiny_cfg()
    trainer = DiffusionTrainer(cfg, tmp_path, faces16[:16])
    trainer.train_step()
    ckpt = trainer.save()
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (ckpt / "state.pt").write_bytes(pickle.dumps({"step": Exploit()}))
    with pytest.raises(UserError, match="holds code, not only tensors, so it was not loaded") as err, \
            warnings.catch_warnings():
        warnings.simplefilter("error")  # and no torch warning around it
        load_state(ckpt)
    assert "weights_only" not in str(err.value)  # not torch's advice to load it anyway
    torch.save({"step": Exploit()}, ckpt / "state.pt")  # the same inside torch's zip container
    with pytest.raises(UserError, match="holds code"):
        DiffusionTrainer(cfg, tmp_path, faces16[:16]).resume(ckpt)
    assert not marker.exists()


def test_foreign_or_truncated_weights_are_named(tmp_path, faces16):
    trainer = DiffusionTrainer(tiny_cfg(), tmp_path, faces16[:16])
    ckpt = trainer.save()
    bigger = UNet(UNetConfig(image_size=16, dim=16, dim_mults=(1, 2), attn_resolutions=(8,)))
    with pytest.raises(UserError, match="do not match this architecture: .*shape of"):
        load_weights(bigger, ckpt / "ema.safetensors")
    data = (ckpt / "ema.safetensors").read_bytes()
    (ckpt / "ema.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or not safetensors"):
        load_weights(trainer.ema.module, ckpt / "ema.safetensors")
    with pytest.raises(UserError, match="no checkpoint here"):
        resolve_checkpoint(tmp_path / "nowhere")


def test_eval_every_logs_swd_and_afd_of_ema_samples(tmp_path, faces16):
    from animegen.workflows.train import make_evaluator

    cfg = tiny_cfg(**{"steps": 2, "eval_every": 2, "eval_num": 16, "save_every": 2})
    DiffusionTrainer(cfg, tmp_path, faces16[:64], evaluator=make_evaluator(cfg, faces16[:64], tmp_path)).run()
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    scores = [r["eval"] for r in rows if "eval" in r]
    assert len(scores) == 1 and scores[0]["afd_n"] == 16
    assert scores[0]["swd"] > 0 and 0 <= scores[0]["afd"] <= 1
    assert len(list((tmp_path / "eval" / "real").glob("*.jpg"))) == 16
    assert [p.name for p in (tmp_path / "eval").iterdir()] == ["real"]  # generated samples are cleaned up
