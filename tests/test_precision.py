"""Precision and compiling per device generation (pure functions of the capability: no GPU needed), the --bf16
alias and old configs, fp16 on a CPU, and the loss scale that lives inside the step (fused Adam's found_inf)."""

import copy
import json

import pytest
import torch

from animegen.cli import main
from animegen.core.errors import UserError
from animegen.core.precision import Precision, canonical_precision, resolve_precision
from animegen.runs.checkpoint import resolve_checkpoint
from animegen.runs.config import TrainConfig, from_dict, to_dict
from animegen.runs.presets import preset_config
from animegen.samplers.compiled_net import plan_sampling_compile
from animegen.training.compile_plan import AUTO_MIN_MINUTES, plan_compile
from animegen.training.diffusion_trainer import DiffusionTrainer
from animegen.training.grad_step import GROWTH_INTERVAL, INIT_SCALE, GradStep
from animegen.workflows.train import read_run_config
from conftest import FAST, FIXTURES
from test_training import faces16, tiny_cfg  # noqa: F401 (fixture)

P100, T4, A100, H100 = (6, 0), (7, 5), (8, 0), (9, 0)
FP16 = Precision(torch.float16, True, "fp16 autocast with loss scaling (a test on a CPU)")


@pytest.mark.parametrize("capability, auto, scaler", [(P100, "fp32", False), ((7, 0), "fp16", True),
                                                      (T4, "fp16", True), (A100, "bf16", False),
                                                      (H100, "bf16", False)])
def test_auto_precision_per_gpu_generation(capability, auto, scaler):
    chosen = resolve_precision("auto", "cuda", capability)
    assert (chosen.name, chosen.scaler) == (auto, scaler)
    assert f"sm{capability[0]}{capability[1]}" in chosen.reason  # the one log line says why
    # asked for explicitly, each is honoured on any GPU; fp16 always with its loss scale, bf16 never
    fp16 = resolve_precision("fp16", "cuda", capability)
    assert fp16.name == "fp16" and fp16.scaler
    bf16 = resolve_precision("bf16", "cuda", capability)
    assert bf16.name == "bf16" and not bf16.scaler and (("emulates" in bf16.reason) == (capability < A100))
    assert resolve_precision("fp32", "cuda", capability).dtype is None


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_cpus_with_and_without_native_bf16(native):
    assert resolve_precision("auto", "cpu", cpu_native_bf16=native).name == ("bf16" if native else "fp32")
    assert resolve_precision("bf16", "cpu", cpu_native_bf16=native).name == "bf16"
    # fp16 on a CPU runs in fp32, saying why in its one line
    fp16 = resolve_precision("fp16", "cpu", cpu_native_bf16=native)
    assert fp16.dtype is None and not fp16.scaler and "fp32" in fp16.reason and "GPU" in fp16.reason


def test_the_bf16_flag_is_an_alias():
    assert [canonical_precision(v) for v in ("on", "off", "auto", "fp16")] == ["bf16", "fp32", "auto", "fp16"]
    assert resolve_precision("on", "cuda", T4).name == "bf16" and resolve_precision("off", "cuda", H100).name == "fp32"
    with pytest.raises(ValueError):
        canonical_precision("fp8")


@pytest.mark.parametrize("capability, inductor", [(P100, False), (T4, True), (A100, True), (H100, True)])
def test_compile_plan_per_gpu_generation(capability, inductor):
    long_run = plan_compile("auto", torch.device("cuda"), max_minutes=AUTO_MIN_MINUTES, cuda_capability=capability)
    assert long_run.cuda_graph and long_run.inductor == inductor  # the graph everywhere, inductor where Triton runs
    forced = plan_compile("on", torch.device("cuda"), cuda_capability=capability)
    assert forced.cuda_graph and forced.inductor == inductor
    assert ("Triton needs sm70" in forced.note) == (not inductor)
    short = plan_compile("auto", torch.device("cuda"), max_minutes=5, cuda_capability=capability)
    assert short.cuda_graph and not short.inductor and short.grad_sync == "none"
    # under torch.distributed: the graph with the all-reduce inside it, not DDP's hooks
    dist = plan_compile("auto", torch.device("cuda"), distributed=True, max_minutes=30, cuda_capability=capability)
    assert dist.cuda_graph and dist.inductor == inductor and dist.grad_sync == "allreduce"
    ddp = plan_compile("auto", torch.device("cuda"), distributed=True, dist_sync="ddp", cuda_capability=capability)
    assert not ddp.enabled and ddp.grad_sync == "ddp"
    for no_graph in ({"setting": "off"}, {"setting": "auto", "grad_accum": 2}):  # no graph: DDP's hooks, eager
        plan = plan_compile(device=torch.device("cuda"), distributed=True, cuda_capability=capability, **no_graph)
        assert not plan.enabled and plan.grad_sync == "ddp"
    assert not plan_compile("auto", torch.device("cuda"), grad_accum=2, cuda_capability=capability).cuda_graph
    # sampling: inductor on request where Triton runs, else one line and eager
    on, note = plan_sampling_compile("on", torch.device("cuda"), 1, cuda_capability=capability)
    assert on == inductor and (("sampling runs eager" in note) == (not inductor))
    assert plan_sampling_compile("auto", torch.device("cuda"), 10**9, cuda_capability=capability) == (False, "")


def test_compile_plan_on_a_cpu():
    cpu = torch.device("cpu")
    # auto trains eager on every CPU, however long the run (training/compile_plan.py says why)
    for minutes in (1, AUTO_MIN_MINUTES, 600):
        assert not plan_compile("auto", cpu, max_minutes=minutes, has_compiler=True).enabled
    assert plan_compile("on", cpu, has_compiler=True).inductor
    no_cxx = plan_compile("on", cpu, has_compiler=False)
    assert not no_cxx.enabled and "no C++ compiler" in no_cxx.note
    dist = plan_compile("on", cpu, distributed=True, max_minutes=60, has_compiler=True)
    assert not dist.enabled and dist.grad_sync == "ddp"  # gloo: DDP's hooks, eager, as before
    assert plan_compile("off", cpu, distributed=True, dist_sync="allreduce").grad_sync == "allreduce"


def test_configs_saved_with_the_bf16_key_still_load():
    saved = to_dict(TrainConfig())
    del saved["precision"]
    for old, new in (("on", "bf16"), ("off", "fp32"), ("auto", "auto")):
        assert from_dict(TrainConfig, {**saved, "bf16": old}).precision == new
    # a run's config.json written before the precision key (the v1 fixture's says "bf16": "off") resumes in fp32
    assert json.loads((FIXTURES / "v1-model" / "config.json").read_text())["bf16"] == "off"
    assert read_run_config(FIXTURES / "v1-model").precision == "fp32"
    assert preset_config("simple", {"bf16": "off"}).precision == "fp32"
    with pytest.raises(UserError, match="disagree"):
        preset_config("simple", {"bf16": "on", "precision": "fp16"})


@pytest.mark.slow
def test_precision_fp16_on_a_cpu_trains_in_fp32_and_says_why_in_one_line(tmp_path, faces_dir, caplog):
    caplog.set_level("INFO", logger="animegen")
    run = tmp_path / "run"
    assert main(["train", "--data", str(faces_dir), "--out", str(run), "--steps", "2", *FAST,
                 "--set", "sample.every=0", "--precision", "fp16", "--device", "cpu"]) == 0
    lines = [r.getMessage() for r in caplog.records if "training on" in r.getMessage()]
    assert len(lines) == 1 and "fp32" in lines[0] and "fp16" in lines[0], lines
    assert json.loads((run / "config.json").read_text())["precision"] == "fp16"  # the recipe keeps what was asked
    assert resolve_checkpoint(run).name == "step-0000002"
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert "loss_scale" not in rows[-1]  # no scale in fp32


# -- the loss scale ------------------------------------------------------------------------------------------------
def take(step: GradStep, net: torch.nn.Module, x: torch.Tensor, factor: float = 1.0) -> None:
    """One optimizer step of `net` on mean(net(x)^2) * factor through `step` (as the trainer: grads zeroed first)."""
    step.optimizer.zero_grad(set_to_none=True)
    step.backward(net(x).pow(2).mean() * factor)
    step.finish()


def scaled_step(growth_interval: int = GROWTH_INTERVAL):
    """A small layer, a fused Adam that has taken one step, and a GradStep with a loss scale (CPU)."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, fused=True)
    step = GradStep(net, optimizer, 1.0, FP16, torch.device("cpu"))
    step.loss_scale.growth_interval = growth_interval
    x = torch.randn(8, 4)
    take(step, net, x)
    return net, optimizer, step, x


def test_an_overflowing_step_is_skipped_on_the_device_and_halves_the_scale():
    net, optimizer, step, x = scaled_step()
    weights = [p.detach().clone() for p in net.parameters()]
    moments = [{k: v.clone() for k, v in optimizer.state[p].items()} for p in net.parameters()]
    scale = float(step.loss_scale.scale)
    take(step, net, x, factor=1e38)  # finite in fp32, inf once scaled: an overflow
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters()))  # weights untouched
    for saved, p in zip(moments, net.parameters()):  # and Adam's moments and step count
        assert all(torch.equal(saved[k], optimizer.state[p][k]) for k in saved)
    assert float(step.loss_scale.scale) == scale / 2 and step.log_extras()["skipped_steps"] == 1
    take(step, net, x)  # the next good step moves the weights again
    assert not torch.equal(weights[0], net.weight) and float(optimizer.state[net.weight]["step"]) == 2


def test_the_scale_grows_after_growth_interval_clean_steps_and_adam_sees_unscaled_gradients():
    net, optimizer, step, x = scaled_step(growth_interval=3)  # one clean step taken
    scale = float(step.loss_scale.scale)
    for _ in range(2):
        take(step, net, x)
    assert float(step.loss_scale.scale) == 2 * scale and step.log_extras()["skipped_steps"] == 0
    # the same step without a scale, from the same weights and Adam state, lands on the same weights
    plain = torch.nn.Linear(4, 3)
    plain.load_state_dict(net.state_dict())
    reference = torch.optim.Adam(plain.parameters(), lr=1e-2, fused=True)
    reference.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # its own moments, not shared ones
    take(step, net, x)
    take(GradStep(plain, reference, 1.0, Precision(None, False, "fp32"), torch.device("cpu")), plain, x)
    torch.testing.assert_close(net.weight, plain.weight, rtol=0, atol=1e-6)
    assert not torch.equal(net.weight, optimizer.state[net.weight]["exp_avg"])  # (not a trivial comparison)


def test_a_loss_scale_needs_the_fused_adam():
    net = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="fused"):
        GradStep(net, torch.optim.Adam(net.parameters()), 1.0, FP16, torch.device("cpu"))


@pytest.mark.slow
def test_fp16_with_its_loss_scale_trains_and_resumes_bit_for_bit(tmp_path, faces16):  # noqa: F811
    # fp16 autocast is emulated on a CPU (slow), so few steps: 8 straight against 4 + 4 resumed
    cfg = tiny_cfg(**{"steps": 8, "save_every": 4, "log_every": 4})
    for name in ("straight", "split"):
        (tmp_path / name).mkdir()
    straight = DiffusionTrainer(cfg, tmp_path / "straight", faces16[:32], precision=FP16)
    start = [p.detach().clone() for p in straight.denoiser.net.parameters()]
    straight.run()
    rows = [json.loads(x) for x in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert 0 < rows[-1]["loss_scale"] <= INIT_SCALE and rows[-1]["skipped_steps"] < 8
    assert not all(torch.equal(a, b) for a, b in zip(start, straight.denoiser.net.parameters()))  # it trained
    first = DiffusionTrainer(tiny_cfg(**{"steps": 4, "save_every": 4, "log_every": 4}), tmp_path / "split",
                             faces16[:32], precision=FP16)
    first.run()
    resumed = DiffusionTrainer(cfg, tmp_path / "split", faces16[:32], precision=FP16)
    resumed.resume(resolve_checkpoint(tmp_path / "split"))
    assert float(resumed.grad_step.loss_scale.scale) == float(first.grad_step.loss_scale.scale)
    resumed.run()
    for a, b in zip(resumed.denoiser.net.parameters(), straight.denoiser.net.parameters()):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_a_poisoned_forward_under_fp16_still_stops_the_run(tmp_path, faces16):  # noqa: F811
    # a NaN from the network (not an overflow of the scaled gradients) skips its step like an overflow, and the
    # run still stops at the next check with the last checkpoint good
    cfg = tiny_cfg(**{"steps": 20, "save_every": 4, "log_every": 5})
    trainer = DiffusionTrainer(cfg, tmp_path / "run", faces16[:32], precision=FP16)

    def poison(_module, args):
        return (args[0] * float("nan"), *args[1:]) if trainer.step == 6 else None

    trainer.denoiser.net.register_forward_pre_hook(poison)
    with pytest.raises(UserError, match="diverged"):
        trainer.run()
    assert trainer.step == 8 and resolve_checkpoint(tmp_path / "run").name == "step-0000004"
    assert int(trainer.grad_step.loss_scale.skipped) >= 1  # the poisoned step was skipped, weights stayed finite
    assert all(torch.isfinite(p).all() for p in trainer.denoiser.net.parameters())


def test_generate_takes_precision_says_it_once_and_keeps_the_bf16_alias(tmp_path, caplog, capsys):
    caplog.set_level("INFO", logger="animegen")
    assert main(["generate", "--num", "2", "--sampler", "ddim", "--steps", "2", "--device", "cpu",
                 "--precision", "fp16", "--out", str(tmp_path / "S")]) == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sampling on")]
    assert lines == [lines[0]] and "fp32" in lines[0] and "fp16" in lines[0]  # one line: fp16 on a CPU is fp32
    assert sorted(p.name for p in (tmp_path / "S").glob("*.jpg")) == ["1.jpg", "2.jpg"]
    capsys.readouterr()  # (the progress bar)
    assert main(["generate", "--num", "1", "--bf16", "on", "--precision", "fp32", "--out", str(tmp_path / "T")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "disagree" in err[0] and not (tmp_path / "T").exists()
