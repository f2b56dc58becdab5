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


@pytest.mark.slow
def test_tiny_model_overfits_eight_faces(tmp_path, faces16):
    trainer = DiffusionTrainer(tiny_cfg(**{"optim.lr": 3e-3, "optim.batch_size": 8}), tmp_path, faces16[:8])
    losses = [float(trainer.train_step()) for _ in range(300)]
    start, end = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert end < 0.35 * start, (start, end)


def test_resume_continues_bit_for_bit(tmp_path, faces16):
    cfg = tiny_cfg(**{"ema.every": 2, "augment.hflip": True, "augment.rotate_deg": 10.0, "model.dropout": 0.1})
    straight = DiffusionTrainer(cfg, tmp_path / "a", faces16[:64])
    reference = [float(straight.train_step()) for _ in range(7)]

    first = DiffusionTrainer(cfg, tmp_path / "b", faces16[:64])
    [first.train_step() for _ in range(4)]
    ckpt = first.save()
    resumed = DiffusionTrainer(cfg, tmp_path / "b", faces16[:64])
    resumed.resume(ckpt)
    assert resumed.step == 4
    assert [float(resumed.train_step()) for _ in range(3)] == reference[4:]
    for p, q in zip(resumed.ema.module.parameters(), straight.ema.module.parameters()):
        assert torch.equal(p, q)


def test_checkpoints_also_follow_the_clock(tmp_path, faces16):
    # a fake clock on which every step takes 4 minutes: with save_minutes=10 a save falls due every third step,
    # long before save_every's 1000
    cfg = tiny_cfg(**{"steps": 9, "save_every": 1000, "save_minutes": 10.0, "keep_checkpoints": 10})
    trainer = DiffusionTrainer(cfg, tmp_path, faces16[:32])
    trainer.clock = lambda: trainer.step * 240.0
    trainer.run()
    saved = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "checkpoints").iterdir())
    assert saved == [3, 6, 9]  # 720 s after the start, then 720 s after each save
    assert trainer.elapsed == 9 * 240.0


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


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_lr_reaches_its_floor_at_the_planned_last_step(schedule):
    from animegen.training.lr_plan import lr_factor

    factors = [lr_factor(schedule, k, 200, warmup=10, floor=0.05) for k in range(200)]
    assert factors[:10] == [pytest.approx((k + 1) / 10) for k in range(10)]  # warm-up
    assert factors[10] == 1.0
    if schedule == "constant":
        assert set(factors[10:]) == {1.0}
    else:
        assert factors[-1] == pytest.approx(0.05) and factors[-2] > 0.05
        assert all(a >= b for a, b in zip(factors[10:], factors[11:]))  # never rises after warm-up
    if schedule == "cosine":
        assert factors[10 + 189 // 2] == pytest.approx(0.525, abs=0.01)  # halfway: halfway down


def test_a_warm_up_sized_for_an_hour_shrinks_to_a_short_run():
    from animegen.training.lr_plan import MAX_WARMUP_SHARE, lr_factor

    # the cpu preset's 200 warm-up steps in a run planned for 183 (a minute on faces-1k): 9 steps of warm-up, then
    # the decay ends at the floor on the last step instead of the run ending inside the warm-up
    factors = [lr_factor("cosine", k, 183, warmup=200, floor=0.01) for k in range(183)]
    short = int(MAX_WARMUP_SHARE * 183)
    assert short == 9 and factors[short - 1] == 1.0 and factors[short - 2] < 1.0
    assert factors[-1] == pytest.approx(0.01)
    assert lr_factor("cosine", 199, 10_000, warmup=200) == 1.0  # a long run keeps its whole warm-up


def test_the_plan_follows_from_the_step_time():
    from animegen.training.lr_plan import plan_total

    # 10 minutes, 2 of them spent in 100 steps: at 1.2 s a step the other 8 hold 400 more
    assert plan_total(100, 120.0, 600.0, 1.2, cap=10_000) == 500
    assert plan_total(100, 120.0, 600.0, 1.2, cap=300) == 300  # --steps caps it
    assert plan_total(100, 700.0, 600.0, 1.2, cap=10_000) == 100  # over budget: stop now


def test_minutes_without_a_step_count_decide_the_run():
    from animegen.runs.presets import TIME_LIMITED_STEPS, preset_config
    from animegen.training.lr_plan import plan_total

    # an hour at 0.3 s a step is 12,000 steps: more than the default count, which must not end the run early
    hour = preset_config("cpu", {"max_minutes": 60})
    assert hour.steps == TIME_LIMITED_STEPS and plan_total(100, 30.0, 3600.0, 0.3, cap=hour.steps) == 12_000
    assert preset_config("cpu", {"max_minutes": 60, "steps": 500}).steps == 500  # --steps still caps it
    assert preset_config("cpu").steps == preset_config("cpu", {"max_minutes": 60, "optim.lr_schedule": "constant"}
                                                        ).steps < TIME_LIMITED_STEPS  # nothing plans a constant lr


def test_a_planned_run_ends_at_its_plan_with_the_lr_at_its_floor_and_resumes_it(tmp_path, faces16):
    # every step takes 3 s on a fake clock, so 1 minute holds 20 of them: the plan (made after PLAN_AFTER
    # steps) ends the run at step 20 with the last lr at the floor
    cfg = tiny_cfg(**{"steps": 1000, "max_minutes": 1.0, "optim.lr_schedule": "cosine", "optim.lr_floor": 0.1,
                      "save_every": 10})
    trainer = DiffusionTrainer(cfg, tmp_path, faces16[:32])
    trainer.clock = lambda: trainer.step * 3.0
    trainer.run()
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert trainer.step == trainer.total_steps == 20 and rows[-1]["planned_steps"] == 20
    assert rows[-1]["lr"] == pytest.approx(cfg.optim.lr * 0.1)
    # resumed with 30 more seconds: re-planned at once from the saved run's step time
    longer = tiny_cfg(**{"steps": 1000, "max_minutes": 1.5, "optim.lr_schedule": "cosine", "optim.lr_floor": 0.1,
                         "save_every": 10})
    resumed = DiffusionTrainer(longer, tmp_path, faces16[:32])
    resumed.resume(tmp_path / "checkpoints" / "step-0000020")
    assert resumed.total_steps == 30
    resumed.clock = lambda: resumed.step * 3.0
    resumed.run()
    assert resumed.step == 30 and resumed.lr_at(29) == pytest.approx(cfg.optim.lr * 0.1)


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


@pytest.mark.parametrize("std", [0.05, 0.10, 0.20])
def test_power_ema_spans_its_relative_width_of_the_run(std):
    # feed the EMA a parameter equal to the update count u (then u^2): the EMA is then the first (second) moment
    # of its averaging profile, whose std must be std * U at every length U — the run-length-free property
    from animegen.runs.config import EMAConfig
    from animegen.training.ema import make_ema

    for total in (500, 4000):
        moments = []
        for power in (1, 2):
            net = torch.nn.Linear(1, 1, bias=False).double()
            ema = make_ema(net, EMAConfig(kind="power", std=std, every=1))
            for u in range(1, total + 1):
                net.weight.data.fill_(float(u) ** power)
                ema.update_parameters(net)  # update u; the first copies
            moments.append(float(ema.module.weight))
        mean, second = moments
        assert (second - mean**2) ** 0.5 / total == pytest.approx(std, rel=0.03)
