"""The model file apart from the recipe: inference reads model.json alone, and checkpoints written before it
existed (the v1 layout: the whole recipe in config.json) load through the one migration and sample as before."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from animegen.core.errors import UserError
from animegen.models.unet import UNet, UNetConfig
from animegen.runs.load import load_model
from animegen.runs.model import TrainedModel
from animegen.runs.model_file import MODEL_FILE, from_json, read_model_file, to_json
from animegen.workflows.export import export_model
from conftest import FIXTURES


def v1_checkpoint(folder):
    """tests/fixtures/v1-model as a v1 checkpoint: its config.json (written by the code before model.json) and the
    weights its expected.npz was drawn from (seed 0, N(0, 0.05) everywhere: made here, so no weights are
    committed; scripts/make_v1_fixture.py made the images with that code)."""
    config = json.loads((FIXTURES / "v1-model" / "config.json").read_text())
    torch.manual_seed(0)
    net = UNet(UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["model"].items()}))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    folder.mkdir()
    shutil.copy(FIXTURES / "v1-model" / "config.json", folder / "config.json")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / "ema.safetensors")
    return folder


def drawn(path) -> np.ndarray:
    return torch.cat(list(TrainedModel.load(path, "cpu", precision="fp32", compile="off").images([0, 1, 2, 3]))).numpy()


def test_a_v1_checkpoint_loads_through_the_migration_and_samples_as_before(tmp_path):
    old = v1_checkpoint(tmp_path / "v1")
    model = read_model_file(old)
    assert (model.kind, model.preset, model.timesteps, model.sample.name, model.is_student) == (
        "diffusion", "simple", 100, "ddim", False)
    expected = np.load(FIXTURES / "v1-model" / "expected.npz")["images"]
    now = drawn(old)
    assert np.abs(now[0].astype(int) - now[1]).mean() > 5  # the seeds draw different pictures
    # the same fp32 arithmetic as the code that drew them; another CPU's kernels may round a pixel differently
    diff = np.abs(now.astype(int) - expected)
    assert diff.max() <= 2 and diff.mean() < 0.05, (diff.max(), diff.mean())
    # export writes the new layout, which draws the very same pixels
    new = export_model(str(old), tmp_path / "new", half=False)
    assert (new / MODEL_FILE).is_file() and not (new / "config.json").exists()
    assert read_model_file(new) == model and np.array_equal(drawn(new), now)


def test_inference_never_reads_the_recipe(tmp_path, faces_dir):
    from animegen.cli import main

    run = tmp_path / "R"
    assert main(["train", "--data", str(faces_dir), "--out", str(run), "--steps", "1", "--set", "model.dim=8",
                 "--set", "model.dim_mults=[1,2]", "--set", "model.attn_resolutions=[]", "--set",
                 "model.image_size=16", "--batch-size", "4", "--set", "sample.every=0", "--timesteps", "30"]) == 0
    ckpt = next((run / "checkpoints").iterdir())
    before = drawn(ckpt)
    # a recipe written by some other version (a renamed training field) or lost altogether: the model still loads
    (ckpt / "config.json").write_text(json.dumps({"format": "animegen-checkpoint-v9", "optim": {"renamed": 1}}))
    assert np.array_equal(drawn(ckpt), before)
    (ckpt / "config.json").unlink()
    assert np.array_equal(drawn(ckpt), before)


def test_a_model_file_of_another_format_or_shape_is_refused_in_one_line(tmp_path):
    net, model, ckpt = load_model(None)
    data = to_json(model)
    assert from_json(json.loads(json.dumps(data)), ckpt / MODEL_FILE) == model  # the JSON round trip
    for bad, words in [({**data, "format": "animegen-model-v7"}, "newer animegen"),
                       ({**data, "network": {**data["network"], "width": 3}}, "invalid model file"),
                       ({**data, "sample": {**data["sample"], "name": "euler"}}, "unknown sampler"),
                       ([1, 2], "not an animegen model file")]:
        with pytest.raises(UserError, match=words) as err:
            from_json(bad, tmp_path / MODEL_FILE)
        assert str(tmp_path / MODEL_FILE) in str(err.value) and "\n" not in str(err.value)
