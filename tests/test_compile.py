"""--compile and the step without host syncs: compiled and eager training agree, a NaN is caught at the next log or
save step with the last checkpoint intact, no compiler means one line and eager training (or sampling), bf16
sampling stays close to fp32, compiled sampling draws the eager faces."""

import logging
from contextlib import nullcontext

import pytest
import torch

from animegen.core.compiler import cxx_compiler
from animegen.core.device import cpu_has_native_bf16
from animegen.core.errors import UserError
from animegen.runs.checkpoint import resolve_checkpoint
from animegen.runs.model import TrainedModel
from animegen.samplers.compiled_net import AUTO_MIN_IMAGE_EVALS, plan_sampling_compile
from animegen.samplers.run import sample_batch
from animegen.samplers.spec import SamplerSpec
from animegen.training.compile_check import compiled_gradient_mismatch
from animegen.training.compile_plan import AUTO_MIN_MINUTES, plan_compile
from animegen.training.diffusion_trainer import DiffusionTrainer
from conftest import FAST, NATIVE_BF16, cli
from test_training import faces16, tiny_cfg  # noqa: F401 (fixture)


def test_compile_plan_per_device():
    # per GPU generation and CPU kind: tests/test_precision.py; here this machine's own CPU and an H100
    cuda, cpu, h100 = torch.device("cuda"), torch.device("cpu"), {"cuda_capability": (9, 0)}
    assert not plan_compile("off", cuda, **h100).enabled and not plan_compile("off", cpu).enabled
    auto = plan_compile("auto", cuda, max_minutes=5, **h100)
    assert auto.cuda_graph and not auto.inductor           # a graph costs a second; inductor a minute or two
    assert plan_compile("auto", cuda, max_minutes=AUTO_MIN_MINUTES, **h100).inductor  # which a long run repays
    assert plan_compile("on", cuda, **h100).inductor and plan_compile("on", cuda, **h100).cuda_graph
    assert not plan_compile("auto", cuda, grad_accum=2, **h100).cuda_graph  # accumulation is not one fixed step
    assert plan_compile("on", cuda, distributed=True, **h100).cuda_graph  # the all-reduce goes inside the graph
    # a CPU trains eager on `auto`, however long the run; `on` compiles where there is a compiler
    assert not plan_compile("auto", cpu, max_minutes=AUTO_MIN_MINUTES).enabled
    assert plan_compile("on", cpu).inductor == (cxx_compiler() is not None)
    with pytest.raises(ValueError):
        plan_compile("fast", cpu)




@pytest.mark.first
@pytest.mark.slow
@pytest.mark.skipif(cxx_compiler() is None, reason="inductor's CPU backend needs a C++ compiler")
@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=NATIVE_BF16)])
def test_compiled_and_eager_training_agree(tmp_path, faces16, precision, caplog):  # noqa: F811
    # same seeds and precision, 200 steps: every parameter learns, and the mean loss over the last 50 is within 2%
    # (compiled kernels reorder float sums and round to bf16 at other points, so the runs drift apart; they must
    # still learn the same). Where the compiled gradients are wrong (torch 2.13's inductor under bf16 autocast on
    # a CPU) the run must say so and train eager, the very run --compile off trains.
    losses, moved = {}, {}
    for setting in ("off", "on"):
        cfg = tiny_cfg(**{"compile": setting, "optim.lr": 2e-3, "precision": precision})
        trainer = DiffusionTrainer(cfg, tmp_path / setting, faces16[:64])
        start = {k: v.clone() for k, v in trainer.denoiser.net.state_dict().items()}
        losses[setting] = [float(trainer.train_step()) for _ in range(200)]
        moved[setting] = [k for k, v in trainer.denoiser.net.state_dict().items() if not torch.equal(v, start[k])]
    assert moved["on"] == moved["off"] == list(start), set(start) - set(moved["on"])
    refused = [r.getMessage() for r in caplog.records if "got no gradient" in r.getMessage()]
    if trainer.compile.inductor:
        assert not refused
        assert sum(losses["on"][-50:]) / 50 == pytest.approx(sum(losses["off"][-50:]) / 50, rel=0.02)
    else:  # the probe found the compiler's gradients wrong: one line, and the eager run bit for bit
        assert precision == "bf16" and len(refused) == 1 and "training runs eager" in refused[0], refused
        assert losses["on"] == losses["off"]


def test_the_gradient_probe_finds_a_network_that_loses_gradients(tmp_path, faces16):  # noqa: F811
    # a network that drops the gradient upstream of its last upsampling, as inductor did (compile_check.py), and
    # the same network whole: the probe tells them apart, and leaves the weights as they were
    trainer = DiffusionTrainer(tiny_cfg(), tmp_path, faces16[:8])
    den, x0 = trainer.denoiser, faces16[:8].float() / 127.5 - 1
    before = {k: v.clone() for k, v in den.net.state_dict().items()}

    class Cut(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x, noise_level):
            cut = self.net.upsample[0].register_forward_pre_hook(lambda module, args: (args[0].detach(),))
            try:
                return self.net(x, noise_level)
            finally:
                cut.remove()

    fp32 = nullcontext
    assert compiled_gradient_mismatch(den, den.with_net(Cut(den.net)), x0, fp32).endswith(
        "parameters got no gradient through the compiled network")
    assert compiled_gradient_mismatch(den, den, x0, fp32) is None
    assert all(torch.equal(v, before[k]) for k, v in den.net.state_dict().items())


def test_a_nan_stops_the_run_at_the_next_check_and_the_last_checkpoint_stays_good(tmp_path, faces16):  # noqa: F811
    cfg = tiny_cfg(**{"steps": 20, "save_every": 4, "log_every": 5})
    # the step's loss stays on the device: the host does not wait for it every step
    assert isinstance(DiffusionTrainer(cfg, tmp_path / "probe", faces16[:32]).train_step(), torch.Tensor)
    trainer = DiffusionTrainer(cfg, tmp_path / "run", faces16[:32])

    def poison(_module, args):  # step 7's input turns to NaN, as a diverging run's activations would
        if trainer.step == 6:
            return (args[0] * float("nan"), *args[1:])
        return None

    trainer.denoiser.net.register_forward_pre_hook(poison)
    with pytest.raises(UserError, match="diverged"):
        trainer.run()
    # found at step 8, where a checkpoint was due (not at step 7: no per-step check), and that one not written
    assert trainer.step == 8
    ckpt = resolve_checkpoint(tmp_path / "run")
    assert ckpt.name == "step-0000004"
    model = TrainedModel.load(ckpt, "cpu")
    assert all(torch.isfinite(p).all() for p in model.net.parameters())


@pytest.mark.slow
def test_compile_on_without_a_compiler_says_so_in_one_line_and_trains(tmp_path, faces_dir):
    bare = tmp_path / "bin"  # a PATH with no c++/g++/clang++ on it
    bare.mkdir()
    proc = cli("train", "--data", str(faces_dir), "--out", str(tmp_path / "run"), "--steps", "2", *FAST,
               "--set", "sample.every=0", "--compile", "on", env={"PATH": str(bare), "CXX": ""})
    lines = [line for line in proc.stderr.splitlines() if "compiler" in line]
    assert len(lines) == 1 and "training runs eager" in lines[0], proc.stderr[-2000:]
    assert resolve_checkpoint(tmp_path / "run").name == "step-0000002"


def test_bf16_sampling_stays_close_to_fp32():
    # the shipped model, the same seeds, the UNet under bf16 autocast: the images differ by bf16's rounding only
    model = TrainedModel.load(None, "cpu", precision="fp32")
    spec = SamplerSpec("unipc", 5).resolve(model.net.timesteps)
    fp32 = sample_batch(model.net, [0, 1], spec, "cpu")
    bf16 = sample_batch(model.net, [0, 1], spec, "cpu", dtype=torch.bfloat16)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)  # it did run in bf16
    assert (bf16 - fp32).abs().mean() < 0.03, (bf16 - fp32).abs().mean()


def test_sampling_compiles_only_where_it_repays_the_compile():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert plan_sampling_compile("auto", cpu, AUTO_MIN_IMAGE_EVALS - 1) == (False, "")  # 1000 faces x 20 steps
    # long generations only, and only where bf16 runs in hardware (on AVX2 it gained 1.06x warm, lost cold)
    assert plan_sampling_compile("auto", cpu, AUTO_MIN_IMAGE_EVALS)[0] == (cpu_has_native_bf16()
                                                                          and cxx_compiler() is not None)
    assert plan_sampling_compile("auto", cuda, 10**9, cuda_capability=(9, 0)) == (False, "")  # not measured: eager
    assert plan_sampling_compile("on", cuda, 1, cuda_capability=(9, 0))[0]
    assert not plan_sampling_compile("off", cpu, 10**9)[0]
    with pytest.raises(ValueError):
        plan_sampling_compile("fast", cpu, 1)


def shipped_faces(seeds: list[int], bf16: str, compile: str) -> torch.Tensor:
    """The shipped model's faces for `seeds` at batch 2 (DDIM, 2 steps), as float (N, 3, H, W) in 0..255."""
    model = TrainedModel.load(None, "cpu", precision=bf16, compile=compile)
    return torch.cat(list(model.images(seeds, SamplerSpec("ddim", 2).resolve(model.net.timesteps), batch_size=2))).float()


@pytest.mark.slow
@pytest.mark.skipif(cxx_compiler() is None, reason="inductor's CPU backend needs a C++ compiler")
@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=NATIVE_BF16)])
def test_compiled_generation_draws_the_eager_faces(precision, caplog):
    # the same precision on both sides; 3 faces at batch 2: the last batch is padded to the compiled shape and
    # cut back, so face 3 is still seed 2's face
    bf16 = "on" if precision == "bf16" else "off"
    eager = shipped_faces([0, 1, 2], bf16, "off")
    with caplog.at_level(logging.INFO):
        compiled = shipped_faces([0, 1, 2], bf16, "on")
    assert "inductor" in caplog.text
    diff = (compiled - eager).abs().mean(dim=(1, 2, 3))
    if precision == "fp32":
        # compiled kernels reorder float32 sums: relative errors of ~1e-6, far below one level of 255
        assert diff.max() < 0.05 and (compiled - eager).abs().max() <= 2, diff
    else:
        # inductor rounds to bf16 at other points than eager autocast does: the faces may differ by as much as
        # bf16 rounding moves them at all, measured here as eager bf16 against eager fp32 on the same seeds
        rounding = (eager - shipped_faces([0, 1, 2], "off", "off")).abs().mean(dim=(1, 2, 3))
        assert rounding.min() > 0  # bf16 did run
        assert (diff <= 2 * rounding).all(), (diff, rounding)
    assert (compiled[2] - eager[1]).abs().mean() > 10  # face 3 is not a copy of face 2


def test_generate_compile_on_without_a_compiler_says_so_in_one_line_and_samples(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    proc = cli("generate", "--num", "2", "--sampler", "ddim", "--steps", "2", "--compile", "on",
               "--out", str(tmp_path / "S"), env={"PATH": str(bare), "CXX": ""})
    lines = [line for line in proc.stderr.splitlines() if "compiler" in line]
    assert len(lines) == 1 and "sampling runs eager" in lines[0], proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "S").glob("*.jpg")) == ["1.jpg", "2.jpg"]
