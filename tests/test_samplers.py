"""Samplers: DDIM(eta=1, all T) is DDPM; every sampler lands on a single-point data set; seeds fix the images."""

import pytest
import torch

from animegen.diffusion.parameterization import Denoiser, model_target
from animegen.diffusion.schedules import alpha_bar
from animegen.models.unet import UNet, UNetConfig
from animegen.samplers.ddim import sample_ddim
from animegen.samplers.ddpm import sample_ddpm
from animegen.samplers.timesteps import respaced_timesteps
from animegen.samplers.ddim import ddim_sigma
from animegen.samplers.ddpm import posterior
from animegen.samplers.run import sample_batch
from animegen.samplers.spec import SamplerSpec


class PointOracle(torch.nn.Module):
    """The ideal eps-predictor for a data set holding one image x_star: eps = (x_t - sqrt(ab) x*) / sqrt(1-ab)."""

    def __init__(self, x_star, ab, T):
        super().__init__()
        self.x_star, self.ab, self.T = x_star, ab, T

    def forward(self, x, noise_level):
        t = (noise_level * self.T / 1000).round().long()
        abt = self.ab[t].float()
        eps = (x - abt.sqrt().view(-1, 1, 1, 1) * self.x_star) / (1 - abt).sqrt().view(-1, 1, 1, 1)
        return model_target("pred_noise", self.x_star.expand_as(x), eps, abt)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "sigmoid"])
def test_ddim_eta1_variance_is_the_ddpm_posterior_variance(schedule):
    ab = alpha_bar(schedule, 1000)
    for t in range(1, 1000):
        sigma = ddim_sigma(float(ab[t]), float(ab[t - 1]), eta=1.0)
        assert sigma**2 == pytest.approx(posterior(ab, t)[2], rel=1e-9, abs=1e-15)


def test_ddim_eta1_over_all_steps_is_the_ddpm_chain():
    T = 50
    ab = alpha_bar("linear", T)
    net = UNet(UNetConfig(image_size=8, dim=8, dim_mults=(1,), attn_resolutions=()))
    torch.nn.init.normal_(net.out.weight, std=0.02)  # a non-trivial (untrained) network
    den = Denoiser(net, ab).eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    g1, g2 = gen(), gen()
    a = sample_ddpm(den, x.clone(), noise=lambda y: torch.randn(y.shape, generator=g1))
    b = sample_ddim(den, x.clone(), list(range(T - 1, -1, -1)), eta=1.0, noise=lambda y: torch.randn(y.shape, generator=g2))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("sampler,steps,eta,threshold", [
    ("ddpm", None, 0.0, "static"), ("ddim", 10, 0.0, "static"), ("ddim", 25, 1.0, "static"),
    ("ddim", 10, 0.0, "dynamic"), ("dpmpp", 10, 1.0, "dynamic"), ("ddpm", None, 0.0, "dynamic"),
    ("unipc", 10, 0.0, "static"), ("unipc", 3, 0.0, "dynamic")])
def test_every_sampler_lands_on_a_single_point_data_set(sampler, steps, eta, threshold):
    T = 100
    ab = alpha_bar("cosine", T)
    x_star = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8
    den = Denoiser(PointOracle(x_star, ab, T), ab, image_shape=(3, 8, 8))
    out = sample_batch(den, [0, 1, 2], SamplerSpec(sampler, steps, eta, threshold=threshold).resolve(den.timesteps))
    torch.testing.assert_close(out, x_star.expand(3, -1, -1, -1), atol=1e-3, rtol=0)


def test_seeded_samples_are_deterministic_and_batch_invariant():
    torch.manual_seed(0)
    net = UNet(UNetConfig(image_size=16, dim=8, dim_mults=(1, 2), attn_resolutions=(8,)))
    for p in net.parameters():  # zero-initialised output layers would make every sample trivially equal
        torch.nn.init.normal_(p, std=0.05)
    den = Denoiser(net, alpha_bar("linear", 100)).eval()
    spec = SamplerSpec("ddim", 5, eta=1.0).resolve(den.timesteps)
    whole = sample_batch(den, [10, 11, 12, 13], spec)
    again = sample_batch(den, [10, 11, 12, 13], spec)
    parts = torch.cat([sample_batch(den, [10], spec), sample_batch(den, [11, 12, 13], spec)])
    assert torch.equal(whole, again)
    torch.testing.assert_close(whole, parts, atol=1e-5, rtol=0)
    assert (whole[0] - whole[1]).abs().mean() > 0.05  # different seeds, different pictures


def test_respaced_timesteps():
    for spacing in ("uniform", "trailing", "quadratic"):
        for steps in (1, 10, 50, 1000):
            ts = respaced_timesteps(1000, steps, spacing)
            assert ts == sorted(set(ts), reverse=True) and 0 <= ts[-1] and ts[0] <= 999
            assert len(ts) == steps
    assert respaced_timesteps(100, 100) == list(range(99, -1, -1))
    ts = respaced_timesteps(1000, 20, "logsnr", alpha_bar("cosine", 1000))
    assert len(ts) == 20 and ts[0] == 999 and ts[-1] == 0 and ts == sorted(ts, reverse=True)
    with pytest.raises(ValueError):
        respaced_timesteps(100, 101)


def random_denoiser(schedule: str, T: int) -> tuple[Denoiser, torch.Tensor]:
    """A non-trivial (random, untrained) 8 px denoiser and 3 starting noises: samplers disagree on it visibly."""
    torch.manual_seed(0)
    net = UNet(UNetConfig(image_size=8, dim=8, dim_mults=(1,), attn_resolutions=()))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    return Denoiser(net, alpha_bar(schedule, T)).eval(), x


def test_dpmpp_with_all_steps_agrees_with_ddim_and_lands_on_a_point():
    from animegen.samplers.dpmpp import sample_dpmpp_2m

    T = 100
    den, x = random_denoiser("linear", T)
    ts = list(range(T - 1, -1, -1))
    a = sample_dpmpp_2m(den, x.clone(), ts)
    b = sample_ddim(den, x.clone(), ts, eta=0.0)
    assert (a - b).abs().max() < 0.05 and (a - b).abs().mean() < 0.01
    ab = alpha_bar("cosine", T)
    x_star = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8
    point = Denoiser(PointOracle(x_star, ab, T), ab, image_shape=(3, 8, 8))
    for spacing in ("uniform", "logsnr"):
        out = sample_batch(point, [0, 1], SamplerSpec("dpmpp", 10, spacing=spacing).resolve(point.timesteps))
        torch.testing.assert_close(out, x_star.expand(2, -1, -1, -1), atol=1e-3, rtol=0)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_dpmpp_first_order_path_is_ddim_with_the_same_eta(eta):
    # a denoiser whose x0 prediction never changes makes DPM-Solver++'s second-order term vanish: what is left is
    # its first-order step, which must be DDIM's (eta = 0) or DDPM's posterior jump (eta = 1), noise draws included
    T = 100
    ab = alpha_bar("linear", T)
    x_star = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8
    point = Denoiser(PointOracle(x_star, ab, T), ab, image_shape=(3, 8, 8))
    paths = {}
    for sampler in ("ddim", "dpmpp"):
        paths[sampler] = []
        sample_batch(point, [0, 1], SamplerSpec(sampler, 12, eta).resolve(point.timesteps),
                     callback=lambda step: paths[sampler].append(step["x"].clone()))
    assert len(paths["ddim"]) == len(paths["dpmpp"]) == 12
    for a, b in zip(paths["ddim"], paths["dpmpp"]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # the noise is really drawn: the stochastic path differs from the deterministic one from the first step on
    if eta:
        ode = []
        sample_batch(point, [0, 1], SamplerSpec("dpmpp", 12).resolve(point.timesteps), callback=lambda step: ode.append(step["x"].clone()))
        assert (ode[0] - paths["dpmpp"][0]).abs().mean() > 0.01


def test_default_sampling_batch_keeps_the_first_level_the_same_size():
    from animegen.runs.model import BATCH_ACTIVATIONS, default_batch_size

    for cfg in [UNetConfig(dim=16), UNetConfig(dim=32), UNetConfig(dim=32, patch_size=2), UNetConfig(dim=8, image_size=32)]:
        b = default_batch_size(cfg)
        level = cfg.dim * (cfg.image_size // cfg.patch_size) ** 2
        assert b & (b - 1) == 0 and 16 <= b <= 256
        # the largest power of two whose first-level activations fit (unless clamped at 16 or 256)
        assert b * level <= BATCH_ACTIVATIONS or b == 16
        assert 2 * b * level > BATCH_ACTIVATIONS or b == 256
    assert default_batch_size(UNetConfig(dim=32)) == default_batch_size(UNetConfig(dim=16)) // 2


def test_unipc_with_all_steps_agrees_with_ddim_and_beats_dpmpp_at_few_steps():
    from animegen.samplers.dpmpp import sample_dpmpp_2m
    from animegen.samplers.unipc import sample_unipc, unipc_coefficients

    T = 100
    den, x = random_denoiser("cosine", T)
    every = list(range(T - 1, -1, -1))
    exact = sample_ddim(den, x.clone(), every, eta=0.0)  # the ODE solved with 100 small steps
    assert (sample_unipc(den, x.clone(), every) - exact).abs().max() < 0.05
    few = respaced_timesteps(T, 8, "uniform")
    err_unipc = (sample_unipc(den, x.clone(), few) - exact).pow(2).mean()
    err_dpmpp = (sample_dpmpp_2m(den, x.clone(), few) - exact).pow(2).mean()
    assert err_unipc < err_dpmpp  # the corrector buys accuracy at no extra network evaluation
    # first order: the corrector is the trapezoid rule (1/2), the predictor plain DDIM (no extra terms)
    assert unipc_coefficients(0.3, [])[1:] == ([], [0.5])


@pytest.mark.parametrize("sampler,steps,eta", [("ddim", 4, 1.0), ("consistency", 2, 0.0), ("dpmpp", 4, 0.0)])
def test_a_walk_between_two_seeds_starts_and_ends_on_their_faces(sampler, steps, eta):
    from animegen.core.rng import SlerpRandomGenerator

    torch.manual_seed(0)
    net = UNet(UNetConfig(image_size=16, dim=8, dim_mults=(1, 2), attn_resolutions=(8,)))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    den = Denoiser(net, alpha_bar("cosine", 100)).eval()
    spec = SamplerSpec(sampler, steps, eta).resolve(den.timesteps)
    ends = sample_batch(den, [3, 8], spec)
    walk = sample_batch(den, [3, 3, 3], spec, noise=SlerpRandomGenerator([3, 3, 3], [8, 8, 8], [0.0, 0.5, 1.0]))
    # every draw (x_T and the later noise of stochastic samplers) is the seed's own at the ends
    torch.testing.assert_close(walk[0], ends[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(walk[2], ends[1], atol=1e-5, rtol=0)
    assert (walk[1] - ends[0]).abs().mean() > 0.01 and (walk[1] - ends[1]).abs().mean() > 0.01


def test_slerp_keeps_the_norm_of_a_gaussian_draw():
    from animegen.core.rng import slerp

    a, b = torch.randn(2, 3 * 64 * 64, generator=torch.Generator().manual_seed(1))
    mid = slerp(a[None], b[None], torch.tensor([0.5]))[0]
    assert abs(mid.norm() / a.norm() - 1) < 0.02  # a straight line's midpoint would be ~0.71 of it
    assert abs((a + b).div(2).norm() / a.norm() - 0.71) < 0.03


def test_the_docs_and_the_cli_list_the_samplers_of_the_table():
    from pathlib import Path

    from animegen.cli import build_parser
    from animegen.samplers.table import SAMPLERS, markdown

    doc = (Path(__file__).resolve().parents[1] / "docs" / "samplers.md").read_text()
    assert doc.endswith(markdown())  # scripts/sampler_table.py writes it from the table
    generate = next(a for a in build_parser()._subparsers._group_actions[0].choices["generate"]._actions
                    if "--sampler" in a.option_strings)
    assert list(generate.choices) == list(SAMPLERS)
    for name, info in SAMPLERS.items():
        assert name in generate.help and info.summary in generate.help
        assert info.function().__module__ == f"animegen.samplers.{name}"  # every entry runs
