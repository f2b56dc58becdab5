"""Each beta schedule equals the homework seed's formula, written here independently in numpy."""

import math

import numpy as np
import pytest
import torch

from animegen.diffusion.schedules import alpha_bar, cosine_beta_schedule, linear_beta_schedule, sigmoid_beta_schedule


@pytest.mark.parametrize("T", [100, 1000])
def test_linear_is_ddpm_scaled_by_1000_over_T(T):
    betas = linear_beta_schedule(T).numpy()
    expected = np.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T)
    np.testing.assert_allclose(betas, expected, rtol=1e-12)


@pytest.mark.parametrize("T", [100, 1000])
def test_cosine_alpha_bar_is_squared_cosine(T):
    s = 0.008
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    expected_ab = np.array([f(t + 1) / f(0) for t in range(T)])
    betas = cosine_beta_schedule(T).numpy()
    # the seed clips betas at 0.999; only the last step (alpha_bar ~ 0) is affected
    np.testing.assert_allclose(np.cumprod(1 - betas)[:-1], expected_ab[:-1], rtol=1e-9)
    assert betas.max() <= 0.999


@pytest.mark.parametrize("T", [100, 1000])
def test_sigmoid_alpha_bar(T):
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    start, end, tau = -3, 3, 1
    g = lambda t: (-sig((t / T * (end - start) + start) / tau) + sig(end / tau)) / (sig(end / tau) - sig(start / tau))  # noqa: E731
    expected_ab = np.array([g(t + 1) / g(0) for t in range(T)])
    betas = sigmoid_beta_schedule(T).numpy()
    # the seed computes sigmoid(start/tau), sigmoid(end/tau) from float32 tensors: ~1e-8 off the float64 formula
    np.testing.assert_allclose(np.cumprod(1 - betas)[:-1], expected_ab[:-1], rtol=0, atol=5e-8)


def test_alpha_bar_is_decreasing_and_unknown_name_is_rejected():
    for name in ("linear", "cosine", "sigmoid"):
        ab = alpha_bar(name, 1000)
        assert ab.dtype == torch.float64 and (ab[1:] < ab[:-1]).all() and 0 < ab[0] < 1
    with pytest.raises(ValueError, match="unknown beta schedule"):
        alpha_bar("quadratic", 10)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "sigmoid"])
def test_sigma_and_its_inverse_on_the_grid(schedule):
    from animegen.diffusion.schedules import log_sigma, sigma, timestep_at_log_sigma

    ab = alpha_bar(schedule, 1000)
    s = sigma(ab)
    assert (s[1:] > s[:-1]).all()  # more noise at every later step
    # x_t / sqrt(ab) = x0 + sigma eps: the noise's share of x_t is sigma / sqrt(1 + sigma^2) = sqrt(1 - ab)
    torch.testing.assert_close(s / (1 + s**2).sqrt(), (1 - ab).sqrt())
    t = torch.arange(1000)
    assert torch.equal(timestep_at_log_sigma(ab, log_sigma(ab).float()), t)  # each level finds its own step
    assert int(timestep_at_log_sigma(ab, torch.tensor([100.0]))) == 999  # beyond the last level: the last step
    assert log_sigma(float(ab[500])) == pytest.approx(float(log_sigma(ab)[500]))
