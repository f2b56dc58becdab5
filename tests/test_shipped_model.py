"""The model shipped in the package: `animegen generate` uses it without --checkpoint and it reproduces the
scores its model card states (same seeds, same sampler, same N as the card's CI row)."""

import json

import pytest
import torch

from conftest import cli

from animegen.assets import SHIPPED_MODEL, shipped_model
from animegen.runs.load import load_denoiser

CARD = json.loads((SHIPPED_MODEL / "card.json").read_text())


def test_shipped_model_is_small_fp16_safetensors_with_its_card():
    from safetensors import safe_open

    weights = shipped_model() / "ema.safetensors"
    assert weights.stat().st_size <= 8 * 2**20
    with safe_open(str(weights), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    denoiser, cfg, _ = load_denoiser(shipped_model())
    assert cfg.preset == "cpu" and next(denoiser.net.parameters()).dtype == torch.float32
    card = (SHIPPED_MODEL / "MODEL_CARD.md").read_text()
    for fact in ("animegen train", "AFD", "SWD", CARD["training"]["hardware"]):
        assert fact in card


@pytest.mark.slow
def test_shipped_model_reproduces_its_card(tmp_path, faces_dir):
    row = CARD["scores"]["ci"]
    out = tmp_path / "S"
    cli("generate", "--num", str(row["num"]), "--out", str(out))  # no --checkpoint: the shipped model
    assert len(list(out.glob("*.jpg"))) == row["num"]
    cli("evaluate", "--images", str(out), "--real", str(faces_dir), "--metrics", "afd,swd",
        "--json", str(tmp_path / "s.json"))
    scores = json.loads((tmp_path / "s.json").read_text())["metrics"]
    assert abs(scores["afd"] - row["afd"]) <= 0.03
    assert abs(scores["swd"] - row["swd"]) <= 0.05 * row["swd"]
