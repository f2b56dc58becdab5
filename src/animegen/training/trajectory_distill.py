"""Consistency distillation along the teacher's own ODE solution: the student learns to jump from a point of the
teacher's ODE trajectory straight to that trajectory's end.

For the consistency function f(x_t, t) = the end of the probability-flow ODE through x_t, the teacher's solver
gives the target directly: one UniPC solve from pure noise (10 steps: close to the teacher's DPM-Solver++ 20 on
AFD and SWD at half the evaluations, so its end is very nearly the teacher's own sample for that noise) passes
through every timestep a consistency sampler starts from, and each of those points gets the same target. This is
consistency distillation (Song et al. 2023) with r = 0 and a multistep solver for the ODE in place of one Euler
step: no bootstrapped target to drift, and every pair a student step sees is exact, which is what a budget of a
few thousand CPU steps needs (docs/q2-ddpm-vs-ddim.md compares it with consistency tuning on real data, ECT). The
data set is not used.

Trajectories are drawn in pools of `trajectories` noises, each pool from its own seeds (far from the seeds
`generate` uses, so no evaluated face was seen in training) and shuffled by them, so pair k of the run is a pure
function of k: a resumed run regenerates the pool it stopped in and continues bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from animegen.core.names import TEACHER_SOLVERS
from animegen.core.rng import StackedRandomGenerator
from animegen.diffusion.consistency import consistency_x0, pseudo_huber
from animegen.diffusion.parameterization import Denoiser
from animegen.samplers.consistency import student_timesteps
from animegen.samplers.dpmpp import sample_dpmpp_2m
from animegen.samplers.timesteps import respaced_timesteps
from animegen.samplers.unipc import sample_unipc

# trajectory seeds start here: generate's seeds (0, 1, ...) never reach it
SEED0 = 1 << 40


class Pool(NamedTuple):
    """The pairs of `trajectories` teacher solves: x_t (P, C, H, W) at t (P,), each with its solve's end x0
    (P, C, H, W), and the order (P,) of each pass over them."""

    k: int
    x_t: Tensor
    t: Tensor
    x0: Tensor
    orders: list[Tensor]


class TrajectoryDistillLoss:
    """The student's f(x_t, t) against the end of the teacher's ODE solve through x_t, for the next pairs of the
    run (`student_and_target`, then `distance_between`: the pseudo-Huber distance); no real image is read."""

    def __init__(self, teacher: Denoiser, solver: str, teacher_steps: int, huber_c: float, seed: int, reuse: int,
                 trajectories: int = 64):
        if solver not in TEACHER_SOLVERS:
            raise ValueError(f"unknown teacher solver {solver!r}; choose from {', '.join(TEACHER_SOLVERS)}")
        self.teacher = teacher.eval().requires_grad_(False)
        self.solver = solver
        # the student is asked at the timesteps its 1-4 step sampler starts from; the solve visits those too
        self.targets_at = student_timesteps(teacher.alpha_bar)
        uniform = respaced_timesteps(teacher.timesteps, teacher_steps)
        self.grid = sorted(set(uniform) | set(self.targets_at), reverse=True)
        self.huber_c = huber_c
        self.seed = seed
        self.trajectories = trajectories
        self.reuse = reuse  # passes over each pool, each in its own order: fewer teacher solves per step
        self.drawn = 0  # pairs handed out so far (the trainer sets it from its step count, so resumes land)
        self._pool: Pool | None = None

    @property
    def pool_size(self) -> int:
        return self.trajectories * len(self.targets_at)

    def _make_pool(self, k: int, device: torch.device) -> Pool:
        """Pool k of the run, P = pool_size pairs from its own seeds."""
        first = SEED0 + (self.seed << 24) + k * self.trajectories
        rng = StackedRandomGenerator(range(first, first + self.trajectories), device)
        x_T = rng.randn((self.trajectories, *self.teacher.image_shape))
        points = {self.grid[0]: x_T}
        # DPM-Solver++ reports x after step i (at grid[i + 1]); UniPC the corrected x at grid[i] itself
        shift = 1 if self.solver == "dpmpp" else 0

        def keep(state: dict) -> None:
            at = state["i"] + shift
            if at < len(self.grid) and self.grid[at] in self.targets_at:
                points[self.grid[at]] = state["x"].clone()

        solve = sample_dpmpp_2m if self.solver == "dpmpp" else sample_unipc
        x0 = solve(self.teacher, x_T, self.grid, callback=keep, threshold="static")
        x_t = torch.cat([points[t] for t in self.targets_at])
        t = torch.tensor(self.targets_at, device=device).repeat_interleave(self.trajectories)
        shuffle = torch.Generator().manual_seed(first)
        orders = [torch.randperm(len(t), generator=shuffle).to(device) for _ in range(self.reuse)]
        return Pool(k, x_t, t, x0.repeat(len(self.targets_at), 1, 1, 1), orders)

    def take(self, n: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """The next n pairs (x_t, t, x0_teacher), across pools when a pool runs out."""
        parts = []
        while n > 0:
            k, at = divmod(self.drawn, self.pool_size * self.reuse)
            if self._pool is None or self._pool.k != k:
                self._pool = self._make_pool(k, device)
            pool = self._pool
            npass, offset = divmod(at, self.pool_size)
            m = min(n, self.pool_size - offset)
            index = pool.orders[npass][offset : offset + m]
            # indexing outside inference mode gives ordinary tensors the student's backward may save
            parts.append([pool.x_t[index], pool.t[index], pool.x0[index]])
            self.drawn += m
            n -= m
        return tuple(torch.cat(column) for column in zip(*parts))  # type: ignore[return-value]

    def student_and_target(self, student: Denoiser, n: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """The student's f(x_t, t) (n, C, H, W), with its graph, for the next n pairs; their targets; their t."""
        x_t, t, target = self.take(n, device)
        return consistency_x0(student, x_t, t), target, t

    def distance_between(self, pred: Tensor, target: Tensor) -> Tensor:
        """(B,) the pseudo-Huber distance between the student's images and their targets."""
        return pseudo_huber(pred, target, self.huber_c)
