"""The models shipped in the package: `animegen generate` uses them without --checkpoint (the few-step student
with --sampler consistency) and each reproduces the scores its model card states (same seeds, same sampler, same
N as the card's row): the model through the README's first command itself."""

import json
import shlex
from pathlib import Path

import pytest
import torch

import animegen
from conftest import NATIVE_BF16, cli

from animegen.assets import SHIPPED, SHIPPED_MODEL, SHIPPED_STUDENT, shipped_model
from animegen.runs.load import load_denoiser
from animegen.runs.model_file import STUDENT_DIR

CARD = json.loads((SHIPPED_MODEL / "card.json").read_text())
STUDENT_CARD = json.loads((SHIPPED_STUDENT / "card.json").read_text())
ROOT = Path(__file__).resolve().parents[1]


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


def test_the_student_ships_beside_it_as_its_student_within_the_size_budget():
    from safetensors import safe_open

    with safe_open(str(SHIPPED_STUDENT / "ema.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    _, student, _ = load_denoiser(SHIPPED_STUDENT)
    _, teacher, _ = load_denoiser(shipped_model())
    assert student.is_student and student.teacher == SHIPPED  # no path of the machine it came from
    assert student.network == teacher.network and student.sample.name == "consistency"
    assert SHIPPED_STUDENT == SHIPPED_MODEL / STUDENT_DIR  # where a model folder carries its student
    assets = [p for p in SHIPPED_MODEL.parent.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in assets) <= 10 * 2**20
    assert "animegen distill" in (SHIPPED_STUDENT / "MODEL_CARD.md").read_text()


def test_the_shipped_model_samples_guided_by_its_small_guide_by_default():
    # the README's first command: autoguidance with the guide and weight its card states, the guide 4x smaller;
    # --guidance 1 draws the model alone
    from animegen.runs.model import TrainedModel
    from animegen.samplers.spec import SamplerSpec

    model = TrainedModel.load(None, "cpu", precision="fp32", compile="off")
    assert model.guidance == CARD["guide"]["guidance"] == CARD["scores"]["full"]["guidance"] > 1
    assert model.guide_name == str(SHIPPED_MODEL / "guide") and model.guide.net.cfg.dim == CARD["guide"]["dim"]
    assert sum(p.numel() for p in model.guide.net.parameters()) == CARD["guide"]["params"] < CARD["params"] / 3
    spec = SamplerSpec("dpmpp", 3).resolve(1000)
    guided = torch.cat(list(model.images([0, 1], spec)))
    alone = torch.cat(list(model.with_guide(None, 1.0).images([0, 1], spec)))
    assert not torch.equal(guided, alone)


# the card's rows were measured in fp32; where the CPU has bf16, generate samples in it by default, and the same
# seeds must score as well: the tolerances are N = 100's sampling noise, far above bf16's effect on the same faces
PRECISIONS = ["off", pytest.param("on", marks=NATIVE_BF16)]


def scores_match(folder: Path, faces_dir: Path, row: dict) -> None:
    """The faces in `folder` score as the card's `row` says (AFD and SWD against faces-1k, the same seeds)."""
    assert len(list(folder.glob("*.jpg"))) == row["num"]
    scores = animegen.evaluate(folder, real=faces_dir)
    assert abs(scores["afd"] - row["afd"]) <= 0.03, scores
    assert abs(scores["swd"] - row["swd"]) <= 0.05 * row["swd"], scores


def card_row_reproduces(tmp_path, faces_dir, row: dict, bf16: str, *sampler: str) -> None:
    cli("generate", "--num", str(row["num"]), "--out", str(tmp_path / "S"), "--bf16", bf16, *sampler)
    scores_match(tmp_path / "S", faces_dir, row)


def readme_first_command() -> list[str]:
    """The arguments of `animegen` in the README's first set-up command (`pip install ... && animegen ...`)."""
    line = next(line for line in (ROOT / "README.md").read_text().splitlines()
                if line.startswith("pip install") and "&& animegen " in line)
    return shlex.split(line.split("&& animegen ", 1)[1])


@pytest.mark.first
@pytest.mark.slow
def test_the_readme_first_command_hands_in_the_cards_faces_under_2mb(faces_dir):
    # the README's own words, in a fresh folder, at the default precision (bf16 where the CPU has it): 1000 faces,
    # images.tgz under 2 MB, and they score as the card's full row says (the same seeds, sampler and guide)
    args = readme_first_command()
    assert args[0] == "generate" and "--checkpoint" not in args and "--num" in args
    proc = cli(*args, timeout=900)
    size = Path(args[args.index("--tgz") + 1]).stat().st_size
    assert size <= 2_000_000 and f"({size:,} bytes)" in proc.stdout
    scores_match(Path(args[args.index("--out") + 1]), faces_dir, CARD["scores"]["full"])


@pytest.mark.slow
@NATIVE_BF16
def test_shipped_model_reproduces_its_card_in_fp32(tmp_path, faces_dir):
    # the README's command above scores the default precision, bf16 here; the card's CI row checks fp32 beside it
    card_row_reproduces(tmp_path, faces_dir, CARD["scores"]["ci"], "off")


@pytest.mark.slow
@pytest.mark.parametrize("bf16", PRECISIONS)
def test_shipped_student_reproduces_its_card(tmp_path, faces_dir, bf16):
    # two network evaluations per face: fast enough for every test run
    row = STUDENT_CARD["scores"]["ci"]
    card_row_reproduces(tmp_path, faces_dir, row, bf16, "--sampler", "consistency", "--steps", str(row["steps"]))
