"""Consistency tuning (`animegen distill`) and multistep consistency sampling: the boundary condition, seeded and
batch-invariant sampling, the gap schedule, a bit-exact resume, and the command line round trip."""

import json

import pytest
import torch

from animegen.diffusion.consistency import ConsistencyLoss, consistency_x0
from animegen.runs.model import TrainedModel
from animegen.samplers.consistency import consistency_timesteps
from animegen.samplers.run import sample_batch
from animegen.samplers.spec import SamplerSpec
from animegen.training.diffusion_trainer import DiffusionTrainer
from conftest import FAST, cli
from test_training import faces16, tiny_cfg  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def shipped():
    return TrainedModel.load(None, "cpu", bf16="off").net


def test_the_boundary_condition_holds(shipped):
    # f(x, sigma_min) = x in data scale, whatever the network says; above it, the Denoiser's own x0
    x = torch.randn(3, *shipped.image_shape)
    t0 = torch.zeros(3, dtype=torch.long)
    assert torch.equal(consistency_x0(shipped, x, t0), x / shipped.alpha_bar[0].float().sqrt())
    t = torch.tensor([1, 500, 999])
    assert torch.equal(consistency_x0(shipped, x, t), shipped(x, t)[0])


def test_student_sampling_is_seeded_and_the_same_at_any_batch_size(shipped):
    spec = SamplerSpec("consistency", 2).resolve(shipped.timesteps)
    together = sample_batch(shipped, [5, 6, 7], spec)
    alone = sample_batch(shipped, [6], spec)
    again = sample_batch(shipped, [5, 6, 7], spec)
    assert torch.equal(together, again)
    assert torch.allclose(together[1:2], alone, atol=1e-5)
    assert together.min() >= -1 and together.max() <= 1
    # one evaluation per step, from the last timestep down to sigma ~0.8 (ECT's two-step sampler)
    ts = consistency_timesteps(shipped.alpha_bar, 2)
    sigma = ((1 - shipped.alpha_bar[ts[1]]) / shipped.alpha_bar[ts[1]]).sqrt()
    assert ts[0] == shipped.timesteps - 1 and 0.75 < sigma < 0.85
    assert consistency_timesteps(shipped.alpha_bar, 4) == sorted(consistency_timesteps(shipped.alpha_bar, 4),
                                                                   reverse=True)


def test_the_gap_halves_every_stage():
    loss = ConsistencyLoss()
    t = torch.tensor([1, 10, 400, 999])
    loss.set_stage(0)
    assert loss.pair(t).tolist() == [0, 0, 0, 0]          # stage 0: the target is the (nearly) clean image
    loss.set_stage(1)
    assert loss.pair(t).tolist() == [0, 5, 200, 499]
    loss.set_stage(3)
    assert loss.pair(t).tolist() == [0, 8, 350, 874]      # never closer than one step below t


def test_distill_resumes_bit_for_bit(tmp_path, faces16):  # noqa: F811
    cfg = tiny_cfg(**{"consistency.enabled": True, "consistency.stages": 3, "steps": 9,
                      "sample.sampler": "consistency", "sample.steps": 2})
    straight = DiffusionTrainer(cfg, tmp_path / "a", faces16[:64])
    reference = [float(straight.train_step()) for _ in range(9)]
    first = DiffusionTrainer(cfg, tmp_path / "b", faces16[:64])
    [first.train_step() for _ in range(5)]
    ckpt = first.save()
    resumed = DiffusionTrainer(cfg, tmp_path / "b", faces16[:64])
    resumed.resume(ckpt)
    assert [float(resumed.train_step()) for _ in range(4)] == reference[5:]
    assert resumed.loss_fn.gap.item() == 0.25  # the last third of the run is stage 2
    for p, q in zip(resumed.ema.module.parameters(), straight.ema.module.parameters()):
        assert torch.equal(p, q)


def test_distill_from_the_command_line(tmp_path, faces_dir):
    teacher = tmp_path / "teacher"
    cli("train", "--data", str(faces_dir), "--out", str(teacher), "--steps", "2", *FAST, "--set", "sample.every=0")
    student = tmp_path / "student"
    proc = cli("distill", "--checkpoint", str(teacher), "--data", str(faces_dir), "--out", str(student),
               "--steps", "3", "--batch-size", "8", "--sample-every", "0")
    assert "student run directory" in proc.stdout
    config = json.loads((student / "config.json").read_text())
    assert config["consistency"]["enabled"] and config["sample"]["sampler"] == "consistency"
    assert config["model"] == json.loads((teacher / "config.json").read_text())["model"]  # the teacher's network
    out = tmp_path / "S"
    cli("generate", "--checkpoint", str(student), "--num", "3", "--out", str(out))  # its own sampler: 2 steps
    assert sorted(p.name for p in out.glob("*.jpg")) == ["1.jpg", "2.jpg", "3.jpg"]
