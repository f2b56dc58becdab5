"""Shared test fixtures: the real faces beside the checkout, tiny configs that train in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces-1k"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own cache dir, so tests never see a developer's caches."""
    monkeypatch.setenv("ANIMEGEN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not FACES.is_dir():
        pytest.fail(f"real test images missing: {FACES} (the ../shared folder beside the checkout)")
    return FACES


TINY = {  # a UNet small enough to train a few steps in well under a second each
    "model.dim": 8, "model.dim_mults": [1, 2], "model.attn_resolutions": [8], "model.image_size": 16,
    "optim.batch_size": 8, "sample.num": 4, "sample.steps": 3, "log_every": 1,
}


# a 64 px model small enough that a CLI round trip takes seconds
FAST = ["--set", "model.dim=8", "--set", "model.dim_mults=[1,2]", "--set", "model.attn_resolutions=[]",
        "--batch-size", "8", "--set", "sample.num=4", "--set", "sample.steps=2", "--set", "log_every=1"]


SMALL_GAN = {  # a StyleGAN2 at 32 px small enough for a few steps a second
    "model.image_size": 32, "model.z_dim": 32, "model.w_dim": 32, "model.channels": 32, "model.max_channels": 32,
    "model.mapping_layers": 2, "optim.batch_size": 8, "optim.r1_every": 2, "sample.num": 4, "sample.every": 0,
    "log_every": 1,
}


def cli(*args: str, env: dict | None = None, timeout: float = 300, check: bool = True):
    """Run the real `python -m animegen` in a subprocess (as a user would)."""
    import subprocess
    import sys

    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "animegen", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"animegen {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc
