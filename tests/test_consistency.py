"""Consistency tuning (`animegen distill`) and multistep consistency sampling: the boundary condition, seeded and
batch-invariant sampling, the gap schedule, a bit-exact resume, and the command line round trip."""

import json
from pathlib import Path

import pytest
import torch

from animegen.assets import SHIPPED_MODEL, SHIPPED_STUDENT
from animegen.core.errors import UserError
from animegen.core.names import DISTILL_METHODS, TEACHER_SOLVERS
from animegen.diffusion.consistency import ConsistencyLoss, consistency_x0
from animegen.diffusion.parameterization import Denoiser
from animegen.diffusion.schedules import alpha_bar
from animegen.runs.model import TrainedModel
from animegen.samplers.consistency import consistency_timesteps, student_timesteps
from animegen.samplers.run import sample_batch
from animegen.samplers.spec import SamplerSpec
from animegen.training.adversarial import AdversarialTerm
from animegen.training.diffusion_trainer import DiffusionTrainer
from animegen.training.distill_trainer import DistillTrainer
from animegen.training.trajectory_distill import TrajectoryDistillLoss
from conftest import FAST, cli
from test_samplers import PointOracle
from test_training import faces16, tiny_cfg  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def shipped():
    return TrainedModel.load(None, "cpu", precision="fp32").net


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
    # one evaluation per step, from the last timestep, then re-noised to sigma ~2
    ts = consistency_timesteps(shipped.alpha_bar, 2)
    sigma = ((1 - shipped.alpha_bar[ts[1]]) / shipped.alpha_bar[ts[1]]).sqrt()
    assert ts[0] == shipped.timesteps - 1 and 1.95 < sigma < 2.05
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


@pytest.mark.parametrize("solver", TEACHER_SOLVERS)
def test_trajectory_pairs_lie_on_the_teachers_ode(solver):
    # with one data point the probability-flow ODE is a straight blend, x_t = sqrt(ab_t) x* + sqrt(1 - ab_t) e
    # for one e per trajectory: every recorded point must give the same e back, and every target must be x*
    T = 1000
    ab = alpha_bar("cosine", T)
    x_star = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8
    teacher = Denoiser(PointOracle(x_star, ab, T), ab, image_shape=(3, 8, 8))
    loss = TrajectoryDistillLoss(teacher, solver, teacher_steps=10, huber_c=0.03, seed=0, reuse=1, trajectories=1)
    x_t, t, x0 = loss.take(loss.pool_size, torch.device("cpu"))
    assert sorted(t.tolist()) == sorted(loss.targets_at) == sorted(student_timesteps(ab))
    torch.testing.assert_close(x0, x_star.expand_as(x0), atol=1e-4, rtol=0)
    abt = ab[t].float().view(-1, 1, 1, 1)
    e = (x_t - abt.sqrt() * x_star) / (1 - abt).sqrt()
    torch.testing.assert_close(e, e[:1].expand_as(e), atol=1e-3, rtol=0)  # float32 round-off only
    # the pool is the same for the same pair index, whatever came before (what a resume relies on)
    again = TrajectoryDistillLoss(teacher, solver, teacher_steps=10, huber_c=0.03, seed=0, reuse=1, trajectories=1)
    again.drawn = 3
    x_again, t_again, _ = again.take(2, torch.device("cpu"))
    assert torch.equal(x_again, x_t[3:5]) and torch.equal(t_again, t[3:5])


@pytest.mark.parametrize("method,adversarial", [(m, 0.0) for m in DISTILL_METHODS] + [("trajectory", 0.5)])
def test_distill_resumes_bit_for_bit(tmp_path, faces16, method, adversarial):  # noqa: F811
    teacher = DiffusionTrainer(tiny_cfg(), tmp_path / "teacher", faces16[:64]).save()
    cfg = tiny_cfg(**{"consistency.enabled": True, "consistency.method": method, "consistency.stages": 3,
                      "consistency.teacher": str(teacher), "consistency.reuse": 2, "steps": 9,
                      "consistency.adversarial": adversarial, "sample.sampler": "consistency", "sample.steps": 2})

    def trainer(run: str) -> DistillTrainer:
        made = DistillTrainer(cfg, tmp_path / run, faces16[:64])
        made.init_weights(teacher)
        if method == "trajectory":  # pools of 2 solves, each used twice: the resume lands mid-pool, not the first
            made.loss_fn.trajectories = 2
        return made

    def losses(made: DistillTrainer) -> tuple[float, ...]:  # the adversarial step also returns D's loss
        out = made.train_step()
        return tuple(float(v) for v in out.values()) if isinstance(out, dict) else (float(out),)

    straight = trainer("a")
    reference = [losses(straight) for _ in range(9)]
    first = trainer("b")
    [first.train_step() for _ in range(5)]
    if method == "trajectory":
        per_pool = first.loss_fn.pool_size * first.loss_fn.reuse
        assert first.loss_fn.drawn > per_pool and first.loss_fn.drawn % per_pool != 0
    ckpt = first.save()
    resumed = trainer("b")
    resumed.resume(ckpt)
    assert [losses(resumed) for _ in range(4)] == reference[5:]
    if method == "ect":
        assert resumed.loss_fn.gap.item() == 0.25  # the last third of the run is stage 2
    for p, q in zip(resumed.ema.module.parameters(), straight.ema.module.parameters()):
        assert torch.equal(p, q)
    if adversarial:  # the discriminator and its Adam came back too, and it did learn
        for p, q in zip(resumed.adversarial.D.parameters(), straight.adversarial.D.parameters()):
            assert torch.equal(p, q)
        assert resumed.adversarial.d_steps == straight.adversarial.d_steps > 0


@pytest.mark.slow
def test_distill_from_the_command_line(tmp_path, faces_dir):
    teacher = tmp_path / "teacher"
    cli("train", "--data", str(faces_dir), "--out", str(teacher), "--steps", "2", *FAST, "--set", "sample.every=0")
    # the default method needs no data: its pairs are the teacher's own solves
    student = tmp_path / "student"
    proc = cli("distill", "--checkpoint", str(teacher), "--out", str(student), "--steps", "3", "--batch-size", "8",
               "--sample-every", "0")
    assert "student run directory" in proc.stdout and "no data" in proc.stderr
    config = json.loads((student / "config.json").read_text())
    assert config["consistency"]["method"] == "trajectory" and config["sample"]["sampler"] == "consistency"
    recorded = Path(config["consistency"]["teacher"])  # the teacher's checkpoint folder, found from anywhere
    assert recorded.is_absolute() and recorded.is_relative_to(teacher.resolve())
    assert (recorded / "ema.safetensors").is_file()
    assert config["model"] == json.loads((teacher / "config.json").read_text())["model"]  # the teacher's network
    out = tmp_path / "S"
    cli("generate", "--checkpoint", str(student), "--num", "3", "--out", str(out))  # its own sampler: 2 steps
    assert sorted(p.name for p in out.glob("*.jpg")) == ["1.jpg", "2.jpg", "3.jpg"]
    # exported together, the teacher's consistency sampler draws with the student that ships beside it
    cli("export", "--checkpoint", str(teacher), "--student", str(student), "--out", str(tmp_path / "M"), "--fp32")
    cli("generate", "--checkpoint", str(tmp_path / "M"), "--sampler", "consistency", "--num", "3",
        "--out", str(tmp_path / "SM"))
    assert [(tmp_path / "SM" / f"{k}.jpg").read_bytes() for k in (1, 2, 3)] == \
        [(out / f"{k}.jpg").read_bytes() for k in (1, 2, 3)]
    refused = cli("export", "--checkpoint", str(student), "--student", str(teacher), "--out", str(tmp_path / "X"),
                  check=False)  # the teacher is nobody's student
    assert refused.returncode == 2 and "not a student" in refused.stderr and not (tmp_path / "X").exists()
    # consistency tuning learns from real faces: without them, one line saying so and no run left behind
    refused = cli("distill", "--checkpoint", str(teacher), "--method", "ect", "--out", str(tmp_path / "ect"),
                  "--steps", "3", check=False)
    assert refused.returncode != 0 and "--data" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "ect").exists()
    # so does the discriminator of the adversarial term
    refused = cli("distill", "--checkpoint", str(teacher), "--out", str(tmp_path / "adv"), "--steps", "3",
                  "--set", "consistency.adversarial=0.5", check=False)
    assert refused.returncode != 0 and "--data" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "adv").exists()


def test_the_adversarial_gradient_is_rescaled_to_its_share_and_only_on_judged_images():
    term = AdversarialTerm(image_size=16, weight=0.5, device=torch.device("cpu"))
    x0 = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(0)).tanh().requires_grad_(True)
    grad_distill = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    judged = torch.tensor([True, True, False, True, False, False])
    mixed = term.image_grad(x0, grad_distill, 0.5, judged, torch.Generator().manual_seed(2))
    added = mixed - grad_distill
    assert torch.equal(added[~judged], torch.zeros_like(added[~judged]))  # D never saw those images
    torch.testing.assert_close(added.norm(), 0.5 * grad_distill[judged].norm())
    assert added[judged].flatten(1).norm(dim=1).min() > 0
    # the weight ramps up from 0 over the first quarter of the run
    assert [term.ramp(s, 100) for s in (0, 10, 25, 80)] == [0.0, 0.2, 0.5, 0.5]
    assert torch.equal(term.image_grad(x0, grad_distill, 0.0, judged, None), grad_distill)


def test_the_shipped_student_in_generate_compare_progress_and_python(tmp_path, faces_dir):
    # no --checkpoint: the shipped model, and for consistency rows / --sampler consistency its shipped student
    out = tmp_path / "report"
    cli("compare", "--samplers", "dpmpp:2,consistency:1", "--num", "4", "--metrics", "swd", "--real",
        str(faces_dir), "--out", str(out))
    rows = {r["name"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    assert Path(rows["dpmpp-2"]["checkpoint"]) == SHIPPED_MODEL
    assert Path(rows["consistency-1"]["checkpoint"]) == SHIPPED_STUDENT
    cli("generate", "--sampler", "consistency", "--steps", "1", "--num", "4", "--out", str(tmp_path / "G"))
    for k in range(1, 5):
        assert (out / "samples" / "consistency-1" / f"{k}.jpg").read_bytes() == \
            (tmp_path / "G" / f"{k}.jpg").read_bytes()
    # the Python API's student writes the same files as the command line's, from the same seeds
    from animegen.api import load_student

    load_student(device="cpu").save(tmp_path / "P", num=4, steps=1)
    assert [(tmp_path / "P" / f"{k}.jpg").read_bytes() for k in range(1, 5)] == \
        [(tmp_path / "G" / f"{k}.jpg").read_bytes() for k in range(1, 5)]
    proc = cli("progress", "--sampler", "consistency", "--steps", "2", "--num", "2", "--frames", "3",
               "--out", str(tmp_path / "q1.png"))
    assert "q1.png" in proc.stdout and (tmp_path / "q1-x0.png").is_file()


def test_a_consistency_sampler_on_the_teacher_draws_with_its_student_or_is_refused(tmp_path, capsys):
    import numpy as np

    import animegen
    from animegen.cli import main
    from animegen.workflows.export import export_model

    # the rule lives in one place (runs/model.py): the API, the CLI and serve all go through it
    via_teacher = animegen.load(device="cpu").generate(4, sampler="consistency")
    student = animegen.load_student(device="cpu").generate(4)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(via_teacher, student))
    bare = export_model(str(SHIPPED_MODEL), tmp_path / "M")  # the shipped model without its student beside it
    with pytest.raises(UserError, match="needs a few-step student"):
        animegen.load(bare, device="cpu").generate(4, sampler="consistency")
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(bare), "--sampler", "consistency", "--num", "2",
                 "--out", str(tmp_path / "S")]) == 2
    err = capsys.readouterr().err
    assert "needs a few-step student" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "S").exists()


def test_a_teacher_that_ships_with_a_guide_is_distilled_guided(tmp_path, faces16):  # noqa: F811
    # as `generate` samples it: its guide at its weight, or consistency.teacher_guidance (1: alone); a weight with
    # no guide to apply it to is refused in one line
    from safetensors.torch import load_file

    from animegen.diffusion.guidance import GuidedDenoiser
    from animegen.workflows.export import export_model

    plain = DiffusionTrainer(tiny_cfg(), tmp_path / "teacher", faces16[:64]).save()
    guide = DiffusionTrainer(tiny_cfg(seed=1), tmp_path / "guide", faces16[:64]).save()
    guided = export_model(str(plain), tmp_path / "guided", half=False, guide=str(guide), guidance=2.0)

    def teacher_of(folder, **extra):
        cfg = tiny_cfg(**{"consistency.enabled": True, "consistency.teacher": str(folder), "steps": 2,
                          "sample.sampler": "consistency", "sample.steps": 2, **extra})
        return DistillTrainer(cfg, tmp_path / f"student-{len(list(tmp_path.iterdir()))}", faces16[:8]).loss_fn.teacher

    own = teacher_of(guided)
    assert isinstance(own, GuidedDenoiser) and own.weight == 2.0
    for name, value in load_file(str(guide / "ema.safetensors")).items():
        assert torch.equal(own.guide.net.state_dict()[name], value.float())
    assert teacher_of(guided, **{"consistency.teacher_guidance": 3.0}).weight == 3.0
    assert not isinstance(teacher_of(guided, **{"consistency.teacher_guidance": 1.0}), GuidedDenoiser)
    assert not isinstance(teacher_of(plain), GuidedDenoiser)
    with pytest.raises(UserError, match="no guide ships with the teacher") as err:
        teacher_of(plain, **{"consistency.teacher_guidance": 2.0})
    assert "\n" not in str(err.value)
