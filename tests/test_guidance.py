"""Autoguidance: weight 1 is the model alone, bit for bit; the guided prediction is the guide's pushed past by the
weight; a guide that denoises something else is refused in one line; guides are found by name in a run."""

import pytest
import torch

from animegen.assets import SHIPPED_STUDENT
from animegen.core.errors import UserError
from animegen.diffusion.guidance import GuidedDenoiser
from animegen.diffusion.parameterization import Denoiser
from animegen.diffusion.schedules import alpha_bar
from animegen.runs.model import TrainedModel
from animegen.samplers.spec import SamplerSpec
from animegen.workflows.export import export_model
from conftest import SMALL_GAN
from test_samplers import PointOracle


def test_the_guided_prediction_is_the_guides_pushed_past_by_the_weight():
    T = 100
    ab = alpha_bar("cosine", T)
    g = torch.Generator().manual_seed(0)
    good, bad = (torch.rand(1, 3, 8, 8, generator=g) * 1.6 - 0.8 for _ in range(2))
    main = Denoiser(PointOracle(good, ab, T), ab, image_shape=(3, 8, 8))
    guide = Denoiser(PointOracle(bad, ab, T), ab, image_shape=(3, 8, 8))
    x_t, t = torch.randn(2, 3, 8, 8, generator=g), torch.tensor([60, 60])
    x0, eps = GuidedDenoiser(main, guide, 2.5)(x_t, t)
    torch.testing.assert_close(x0, (bad + 2.5 * (good - bad)).expand(2, -1, -1, -1), atol=1e-4, rtol=0)
    a, s = ab[60].float().sqrt(), (1 - ab[60]).float().sqrt()
    torch.testing.assert_close(a * x0 + s * eps, x_t, atol=1e-4, rtol=0)  # eps is the one that x0 implies
    # outside its interval, the model alone (and the guide is not evaluated)
    interval = GuidedDenoiser(main, guide, 2.5, sigma_lo=0.5, sigma_hi=2.0)
    low = torch.tensor([1, 1])
    assert torch.equal(interval(x_t, low)[0], main(x_t, low)[0]) and interval.calls == [1, 0]


def test_weight_one_samples_the_model_alone_bit_for_bit(tmp_path):
    spec = SamplerSpec("dpmpp", 4)
    plain = TrainedModel.load(None, "cpu", precision="fp32", compile="off").with_guide(None, 1.0)  # its guide off
    alone = torch.cat(list(plain.images([0, 1, 2], spec.resolve(1000))))
    one = plain.with_guide(SHIPPED_STUDENT, 1.0)  # other weights of the same network and schedule
    assert torch.equal(torch.cat(list(one.images([0, 1, 2], spec.resolve(1000)))), alone)
    assert one.evaluations(spec.resolve(1000)) == 4
    two = one.with_guide(None, 2.0)  # the same guide, a weight that guides: other images, twice the evaluations
    guided = torch.cat(list(two.images([0, 1, 2], spec.resolve(1000))))
    assert not torch.equal(guided, alone) and two.evaluations(spec.resolve(1000)) == 8


def test_a_guide_of_another_shape_kind_or_schedule_is_refused_in_one_line(tmp_path, faces_dir):
    from animegen.cli import main

    run16 = tmp_path / "small"
    assert main(["train", "--data", str(faces_dir), "--out", str(run16), "--steps", "1", "--set", "model.dim=8",
                 "--set", "model.dim_mults=[1]", "--set", "model.attn_resolutions=[]", "--set", "model.image_size=16",
                 "--batch-size", "2", "--set", "sample.every=0", "--timesteps", "1000", "--schedule", "cosine",
                 "--compile", "off"]) == 0
    gan = tmp_path / "gan"
    assert main(["train", "--data", str(faces_dir), "--out", str(gan), "--preset", "boss", "--steps", "1",
                 *[arg for k, v in SMALL_GAN.items() for arg in ("--set", f"{k}={v}")]]) == 0
    model = TrainedModel.load(None, "cpu")
    for guide, words in [(run16, r"draws \(3, 16, 16\) images"), (gan, "a StyleGAN2 checkpoint"),
                         (tmp_path / "nothing", "no such file or folder"), ("step-0000001", "no checkpoint or snapshot")]:
        with pytest.raises(UserError, match=words) as err:
            model.with_guide(guide, 2.0)
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="no guide ships with this model"):
        TrainedModel.load(run16, "cpu").with_guide(None, 2.0)
    with pytest.raises(UserError, match="from 1"):
        model.with_guide(None, 0.5)


def test_a_guide_is_found_by_name_in_the_models_run(tmp_path, faces_dir):
    from animegen.cli import main

    run = tmp_path / "R"
    assert main(["train", "--data", str(faces_dir), "--out", str(run), "--steps", "4", "--save-every", "2",
                 "--set", "model.dim=8", "--set", "model.dim_mults=[1,2]", "--set", "model.attn_resolutions=[]",
                 "--batch-size", "4", "--set", "sample.every=0", "--set", "ema.snapshot_every=2",
                 "--compile", "off"]) == 0
    model = TrainedModel.load(run, "cpu")
    assert model.with_guide("step-0000002", 2.0).guide_name.endswith("checkpoints/step-0000002")
    assert model.with_guide("step-0000002-std-0.050", 2.0).guide_name.endswith("phema/step-0000002-std-0.050.safetensors")
    # a smaller model's snapshot guides it too: the snapshot is read as its own run's network
    small = tmp_path / "small"
    assert main(["train", "--data", str(faces_dir), "--out", str(small), "--steps", "2", "--set", "model.dim=4",
                 "--set", "model.dim_mults=[1,2]", "--set", "model.attn_resolutions=[]", "--batch-size", "4",
                 "--set", "sample.every=0", "--set", "ema.snapshot_every=2", "--compile", "off"]) == 0
    assert model.with_guide(small / "phema" / "step-0000002-std-0.100.safetensors", 2.0).guide.net.cfg.dim == 4
    out = tmp_path / "S"
    assert main(["generate", "--checkpoint", str(run), "--guide", "step-0000002", "--guidance", "2", "--num", "2",
                 "--sampler", "ddim", "--steps", "3", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.jpg")) == ["1.jpg", "2.jpg"]


def test_export_ships_the_guide_and_its_weight_and_the_model_samples_guided_by_default(tmp_path):
    spec = SamplerSpec("dpmpp", 3).resolve(1000)
    shipped = TrainedModel.load(None, "cpu", precision="fp32", compile="off")
    by_hand = torch.cat(list(shipped.with_guide(SHIPPED_STUDENT, 1.5).images([0, 1], spec)))
    out = export_model(str(shipped.checkpoint), tmp_path / "M", guide=str(SHIPPED_STUDENT), guidance=1.5)
    exported = TrainedModel.load(out, "cpu", precision="fp32", compile="off")
    assert exported.guidance == 1.5 and (out / "guide" / "model.json").is_file()
    assert torch.equal(torch.cat(list(exported.images([0, 1], spec))), by_hand)
    alone = TrainedModel.load(None, "cpu", precision="fp32", compile="off").with_guide(None, 1.0)
    assert torch.equal(torch.cat(list(exported.with_guide(None, 1.0).images([0, 1], spec))),
                       torch.cat(list(alone.images([0, 1], spec))))
