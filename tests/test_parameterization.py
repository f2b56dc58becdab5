"""For every parameterization, converting the ideal model output back to (x0, eps) recovers the truth."""

import pytest
import torch

from animegen.diffusion.loss import DiffusionLoss
from animegen.diffusion.parameterization import OBJECTIVES, Denoiser, model_target, threshold_x0, to_x0_eps, upper_quantile
from animegen.diffusion.schedules import alpha_bar


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("schedule", ["linear", "cosine", "sigmoid"])
def test_target_round_trip(objective, schedule):
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(6, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(6, 3, 8, 8, generator=g, dtype=torch.float64)
    ab = alpha_bar(schedule, 1000)
    t = torch.tensor([0, 1, 100, 500, 900, 998])
    abt = ab[t]
    x_t = abt.sqrt().view(-1, 1, 1, 1) * x0 + (1 - abt).sqrt().view(-1, 1, 1, 1) * eps
    out = model_target(objective, x0, eps, abt)
    x0_hat, eps_hat = to_x0_eps(objective, out, x_t, abt)
    torch.testing.assert_close(x0_hat, x0, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(eps_hat, eps, rtol=1e-6, atol=1e-6)


class Oracle(torch.nn.Module):
    """A 'network' that outputs a fixed tensor, to test the Denoiser wrapper without training."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x, noise_level):
        return self.out


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_denoiser_wrapper_and_loss_are_zero_for_a_perfect_net(objective):
    ab = alpha_bar("linear", 100)
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    eps = torch.randn(4, 3, 8, 8)
    t = torch.tensor([3, 30, 60, 99])
    abt = ab[t].float()
    x_t = abt.sqrt().view(-1, 1, 1, 1) * x0 + (1 - abt).sqrt().view(-1, 1, 1, 1) * eps
    den = Denoiser(Oracle(model_target(objective, x0, eps, abt)), ab, objective, image_shape=(3, 8, 8))
    x0_pred, eps_pred = den(x_t, t)
    torch.testing.assert_close(x0_pred, x0, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(eps_pred, eps, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_x0_loss_is_plain_mse_on_the_networks_output_and_min_snr_caps_its_weight(objective):
    # the loss only sees x0_pred, yet with the denoiser's own weight it is the MSE between the network's output
    # and the objective's target; min-SNR-gamma turns that weight into min(snr, gamma) per x0 squared error
    g = torch.Generator().manual_seed(0)
    ab = alpha_bar("cosine", 1000)
    t = torch.tensor([10, 300, 600, 900])
    x0 = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(4, 3, 8, 8, generator=g)
    out = torch.randn(4, 3, 8, 8, generator=g)  # a network's (wrong) output
    den = Denoiser(Oracle(out), ab, objective, image_shape=(3, 8, 8))
    abt = ab[t].float()
    plain = (out - model_target(objective, x0, eps, abt)).pow(2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(DiffusionLoss()(den, x0, t=t, eps=eps), plain, rtol=1e-4, atol=0)
    snr = abt / (1 - abt)
    capped = plain * snr.clamp(max=5.0) / OBJECTIVES[objective].x0_mse_scale(snr)
    torch.testing.assert_close(DiffusionLoss(min_snr_gamma=5.0)(den, x0, t=t, eps=eps), capped, rtol=1e-4, atol=0)


def test_thresholds_bring_x0_into_range_and_dynamic_rescales_instead_of_saturating():
    g = torch.Generator().manual_seed(0)
    inside = torch.rand(2, 3, 8, 8, generator=g) * 1.8 - 0.9
    wild = torch.randn(2, 3, 8, 8, generator=g) * 3  # an over-confident prediction, far outside [-1, 1]
    for name in ("static", "dynamic"):
        assert torch.equal(threshold_x0(inside, name), inside)  # in range: nothing to do
        assert threshold_x0(wild, name).abs().max() <= 1
    static, dynamic = threshold_x0(wild, "static"), threshold_x0(wild, "dynamic")
    # the clamp saturates many pixels at +-1; the rescale keeps them apart (only the top 0.5% reach +-1)
    assert (static.abs() == 1).float().mean() > 0.5
    assert (dynamic.abs() >= 1 - 1e-6).float().mean() < 0.02
    # per image: each is divided by its own 99.5th percentile of |x0|, so the order of values is kept
    s0 = wild[0].abs().flatten().quantile(0.995)
    torch.testing.assert_close(dynamic[0], wild[0].clamp(-s0, s0) / s0)
    assert torch.equal(threshold_x0(wild, "none"), wild)
    for n in (1, 2, 7, 12288):  # the fast quantile is torch.quantile, including tiny rows
        a = torch.rand(3, n, generator=g)
        for q in (0.5, 0.9, 0.995, 1.0):
            torch.testing.assert_close(upper_quantile(a, q), a.quantile(q, dim=1))
    with pytest.raises(ValueError, match="unknown threshold"):
        threshold_x0(wild, "soft")


def test_lognormal_timesteps_follow_edms_noise_distribution():
    from animegen.diffusion.loss import DiffusionLoss

    ab = alpha_bar("cosine", 1000)
    den = Denoiser(torch.nn.Identity(), ab, "edm", image_shape=(3, 8, 8))
    loss = DiffusionLoss(t_sampling="lognormal", p_mean=-1.2, p_std=1.2)
    t, _ = loss.draw(den, torch.zeros(20000, 3, 8, 8), torch.Generator().manual_seed(0))
    log_sigma = 0.5 * ((1 - ab[t]) / ab[t]).log()
    assert abs(float(log_sigma.median()) + 1.2) < 0.05 and abs(float(log_sigma.std()) - 1.2) < 0.05
    uniform, _ = DiffusionLoss().draw(den, torch.zeros(20000, 3, 8, 8), torch.Generator().manual_seed(0))
    assert abs(float(uniform.float().mean()) - 499.5) < 10  # the default stays DDPM's uniform t


def test_the_clis_objective_names_are_the_implemented_ones():
    from animegen.core.names import OBJECTIVE_NAMES

    assert OBJECTIVE_NAMES == tuple(OBJECTIVES)
