"""Post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models", sec. 3
and appendix C.3): power-function EMA profiles, their inner products in closed form, the least-squares solve that
turns a run's stored snapshots into the EMA of another width, and the snapshot files (run/phema/).

Time is counted in EMA updates. After update t (the first one copies the initial weights) a power-function EMA of
exponent gamma gives the weights of update k exactly the mass over (k - 1, k] of the profile

    p_t(tau) = (gamma + 1) tau^gamma / t^(gamma + 1),    0 < tau <= t,

since prod_{j > k} beta_j = (k / t)^(gamma + 1) for beta_j = (1 - 1/j)^(gamma + 1) (training/ema.py). A weighted sum
of snapshots is therefore the EMA whose profile is the same sum of profiles, and the best stand-in for a profile
that was never tracked is the least-squares fit of it by the stored ones.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from animegen.core.atomic import atomic_path
from animegen.core.errors import UserError

FORMAT = "animegen-phema-v1"
FOLDER = "phema"             # inside the run directory
MAX_STD = 0.28               # sigma_rel = 0.2887 is gamma = 0 (a flat average); wider has no gamma > -1
_NAME = re.compile(r"step-(\d+)-std-(\d+\.\d+)\.safetensors")


def power_exponent(std: float) -> float:
    """gamma of the power-function profile with relative std sigma_rel = `std` (eq. 3): the largest real root of
    sigma_rel^2 = (gamma + 1) / ((gamma + 2)^2 (gamma + 3))."""
    inv = std ** -2
    return float(np.roots([1, 7, 16 - inv, 12 - inv]).real.max())


def relative_std(gamma: float) -> float:
    """sigma_rel of the profile tau^gamma over [0, t], as a share of t (the inverse of `power_exponent`)."""
    return float(np.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3))))


def profile_inner(t_a, gamma_a, t_b, gamma_b) -> np.ndarray:
    """<p_a, p_b> = integral of the two profiles' product, for profiles ending at t_a and t_b (broadcast arrays).
    For t_a <= t_b: (gamma_a + 1)(gamma_b + 1) / (gamma_a + gamma_b + 1) * (t_a / t_b)^gamma_b / t_b."""
    t_a, gamma_a, t_b, gamma_b = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (t_a, gamma_a, t_b, gamma_b)))
    t_early, t_late = np.minimum(t_a, t_b), np.maximum(t_a, t_b)
    gamma_late = np.where(t_a <= t_b, gamma_b, gamma_a)  # the later profile's exponent sets the overlap
    scale = (gamma_a + 1) * (gamma_b + 1) / (gamma_a + gamma_b + 1)
    return scale * (t_early / t_late) ** gamma_late / t_late


def solve(times: np.ndarray, gammas: np.ndarray, t: float, gamma: float) -> tuple[np.ndarray, float]:
    """Coefficients x (summing to 1) of the stored profiles (times[i], gammas[i]) whose sum is nearest, in L2, to
    the profile (t, gamma); and the fit's relative error ||sum x_i p_i - p|| / ||p||."""
    times, gammas = np.asarray(times, np.float64), np.asarray(gammas, np.float64)
    gram = profile_inner(times[:, None], gammas[:, None], times[None, :], gammas[None, :])
    target = profile_inner(times, gammas, t, gamma)
    # lstsq, not solve: snapshots close in time make the Gram matrix nearly singular, and the least-norm answer
    # keeps the coefficients (which multiply fp16 rounding) small
    x = np.linalg.lstsq(gram, target, rcond=None)[0]
    x = x / x.sum()  # a constant weight stays that constant
    norm2 = float(profile_inner(t, gamma, t, gamma))
    err2 = float(x @ gram @ x - 2 * x @ target + norm2)
    return x, float(np.sqrt(max(err2, 0.0) / norm2))


# -- the snapshot files ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """One stored profile: the tracked EMA of relative width `std` after `updates` EMA updates, at `step`."""

    path: Path
    step: int
    updates: int
    std: float

    @property
    def gamma(self) -> float:
        return power_exponent(self.std)


def snapshot_path(run_dir: Path, step: int, std: float) -> Path:
    return Path(run_dir) / FOLDER / f"step-{step:07d}-std-{std:.3f}.safetensors"


def write_snapshot(run_dir: Path, step: int, updates: int, std: float, tensors: dict[str, torch.Tensor]) -> Path:
    """run/phema/step-N-std-S.safetensors in fp16 (half the size; EDM2 stores its snapshots so), written crash-safely:
    a kill leaves the whole file or none."""
    path = snapshot_path(run_dir, step, std)
    half = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
            for k, v in tensors.items()}
    meta = {"format": FORMAT, "step": str(step), "updates": str(updates), "std": repr(float(std)),
            "gamma": repr(power_exponent(std))}
    with atomic_path(path) as tmp:
        save_file(half, tmp, metadata=meta)
    return path


def list_snapshots(run_dir: Path) -> list[Snapshot]:
    """The run's snapshots, by step then std (their metadata read, their tensors not)."""
    found = []
    for path in sorted((Path(run_dir) / FOLDER).glob("step-*-std-*.safetensors")):
        if not _NAME.fullmatch(path.name):
            continue
        try:
            with safe_open(str(path), "pt") as handle:
                meta = handle.metadata() or {}
        except (SafetensorError, OSError) as err:
            raise UserError(f"{path}: unreadable snapshot ({err}); delete it and reconstruct again") from None
        if meta.get("format") != FORMAT:
            raise UserError(f"{path}: not an animegen post-hoc EMA snapshot (format {meta.get('format')!r})")
        found.append(Snapshot(path, int(meta["step"]), int(meta["updates"]), float(meta["std"])))
    return sorted(found, key=lambda s: (s.step, s.std))


def remove_snapshots_after(run_dir: Path, step: int) -> None:
    """Delete snapshots later than `step`: a resumed run writes them again from the state it resumes."""
    for path in (Path(run_dir) / FOLDER).glob("step-*-std-*.safetensors"):
        match = _NAME.fullmatch(path.name)
        if match and int(match.group(1)) > step:
            os.unlink(path)
