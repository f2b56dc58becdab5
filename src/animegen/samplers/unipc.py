"""UniPC (Zhao et al. 2023, arXiv:2302.04867): a multistep predictor (UniP) plus a corrector (UniC) on the data
prediction x0, B(h) = e^h - 1 ("bh2"), order 2.

With alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t), lambda_t = log(alpha_t / sigma_t), a step from s
to t of h = lambda_t - lambda_s starts from the DDIM step x_t' = (sigma_t / sigma_s) x_s + alpha_t (1 - e^{-h}) m_s
and adds B(-h) times a combination of differences of earlier x0 predictions D_k (Alg. 2/3 of the paper). The
corrector reuses the model evaluation at the new point, which the next step needs anyway, so it costs no NFE.
The last step (to alpha_bar = 1) returns the data prediction itself, as sample_dpmpp_2m does: S steps = S NFE.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from animegen.diffusion.parameterization import Denoiser
from animegen.diffusion.schedules import log_sigma
from animegen.samplers.ddpm import Callback, NoiseFn
from animegen.samplers.spec import SamplerSpec
from animegen.samplers.timesteps import respaced_timesteps

ORDER = 2


def _lambda(alpha_bar: float) -> float:
    """lambda = ln(alpha / sigma) = -ln sigma: the time DPM-Solver steps in."""
    return -log_sigma(alpha_bar)


def unipc_coefficients(h: float, rks: Sequence[float]) -> tuple[float, list[float], list[float]]:
    """(B(h), predictor weights rho_p, corrector weights rho_c) for a step of log-SNR length h whose earlier
    points sit at r_k h (r_k < 0), from the order conditions R rho = b (paper eq. 9; order = len(rks) + 1)."""
    hh = -h  # data prediction: the exponential integrator runs in -h
    h_phi_1 = math.expm1(hh)
    b_h = math.expm1(hh)  # bh2
    order = len(rks) + 1
    nodes = torch.tensor([*rks, 1.0], dtype=torch.float64)
    rows, b = [], []
    h_phi_k, factorial = h_phi_1 / hh - 1, 1
    for i in range(1, order + 1):
        rows.append(nodes ** (i - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    R, b = torch.stack(rows), torch.tensor(b, dtype=torch.float64)
    rhos_p = [0.5] if order == 2 else (torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist() if order > 2 else [])
    rhos_c = [0.5] if order == 1 else torch.linalg.solve(R, b).tolist()
    return b_h, rhos_p, rhos_c


@torch.inference_mode()
def sample_unipc(denoiser: Denoiser, x: torch.Tensor, timesteps: Sequence[int], noise: NoiseFn | None = None,
                 callback: Callback | None = None, threshold: str = "static", order: int = ORDER) -> torch.Tensor:
    """x: (B, C, H, W) pure noise -> x_0 in [-1, 1], visiting `timesteps` (descending); deterministic (`noise`
    is accepted for a uniform signature and never drawn)."""
    alpha_bar = denoiser.alpha_bar
    ms: list[torch.Tensor] = []       # x0 predictions at the points visited so far
    lambdas: list[float] = []
    pending = None                    # what the corrector needs from the last predictor step
    for i, t in enumerate(timesteps):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x0_pred, _eps = denoiser(x, t_batch, threshold)
        if pending is not None and i < len(timesteps) - 1:
            # UniC: the same step again, now knowing the x0 prediction at its end point
            x_base, scale, diffs, rhos_c = pending
            corr = sum((r * d for r, d in zip(rhos_c[:-1], diffs)), torch.zeros_like(x))
            x = x_base - scale * (corr + rhos_c[-1] * (x0_pred - ms[-1]))
        ab = float(alpha_bar[t])
        ms.append(x0_pred)
        lambdas.append(_lambda(ab))
        del ms[:-order], lambdas[:-order]  # the last `order` points are all a step uses
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "x0_pred": x0_pred})
        if i == len(timesteps) - 1:
            return x0_pred  # sigma_next = 0: the solution is the data prediction itself
        ab_next = float(alpha_bar[timesteps[i + 1]])
        h = _lambda(ab_next) - lambdas[-1]
        # lower order at the start (no history yet) and at the last steps (fewer than `order` to go)
        k = min(len(ms), order, len(timesteps) - 1 - i)
        rks = [(lambdas[-1 - j] - lambdas[-1]) / h for j in range(1, k)]
        diffs = [(ms[-1 - j] - ms[-1]) / r for j, r in zip(range(1, k), rks)]
        b_h, rhos_p, rhos_c = unipc_coefficients(h, rks)
        alpha_next, sigma_next, sigma = ab_next ** 0.5, (1 - ab_next) ** 0.5, (1 - ab) ** 0.5
        # UniP: the DDIM step plus B(h) times the extrapolated higher-order terms
        x_base = (sigma_next / sigma) * x - alpha_next * math.expm1(-h) * ms[-1]
        scale = alpha_next * b_h
        x = x_base - scale * sum((r * d for r, d in zip(rhos_p, diffs)), torch.zeros_like(x))
        pending = (x_base, scale, diffs, rhos_c)
    return x


def run(denoiser: Denoiser, x: torch.Tensor, spec: SamplerSpec, noise: NoiseFn, callback: Callback | None
        ) -> torch.Tensor:
    """The samplers' table entry (samplers/table.py): spec.steps timesteps at spec.spacing."""
    ts = respaced_timesteps(denoiser.timesteps, spec.steps, spec.spacing, denoiser.alpha_bar)
    return sample_unipc(denoiser, x, ts, noise, callback, spec.threshold)
