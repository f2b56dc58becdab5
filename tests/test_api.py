"""The Python API and the notebook: the same pixels as the CLI, the shipped model offline, a Run that loads, the
homework's notebook executed top to bottom, a hand-in that fits under 2 MB, TensorBoard scalars."""

import io
import json
import os
import socket
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import animegen
from conftest import FAST, cli
from animegen.core.errors import UserError
from animegen.workflows.generate import HOMEWORK_TGZ_LIMIT, encode_jpeg, fit_quality, tgz_bytes

ROOT = Path(__file__).resolve().parents[1]
# FAST's 64 px model as Python keyword arguments
SMALL = {"dim": 8, "dim_mults": [1, 2], "model__attn_resolutions": [], "batch_size": 8, "sample__num": 4,
         "sample__steps": 2, "log_every": 1}


def test_api_writes_the_same_bytes_as_the_cli(tmp_path):
    animegen.load().save(tmp_path / "api", num=6, seed=3, sampler="ddim", steps=3, batch_size=4)
    # the same batch size on both sides: another one may change float rounding (tests/test_cli.py bounds that)
    cli("generate", "--num", "6", "--seed", "3", "--sampler", "ddim", "--steps", "3", "--batch-size", "4",
        "--out", str(tmp_path / "cli"))
    for k in range(1, 7):
        assert (tmp_path / "api" / f"{k}.jpg").read_bytes() == (tmp_path / "cli" / f"{k}.jpg").read_bytes()


def test_the_shipped_model_loads_and_draws_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "socket", no_network)
    model = animegen.load()
    assert model.kind == "diffusion" and model.config.preset == "cpu"
    faces = model.generate(3, seed=0, steps=4)
    assert [im.size for im in faces] == [(64, 64)] * 3
    a, b = (np.asarray(im, dtype=np.int16) for im in faces[:2])
    assert np.abs(a - b).mean() > 5  # two seeds, two pictures
    as_tensor = torch.from_numpy(np.asarray(faces[1]).copy()).permute(2, 0, 1)
    assert torch.equal(model.tensor(3, seed=0, steps=4)[1], as_tensor)
    alone = model.tensor(1, seed=1, steps=4)[0].int()  # image 2 alone: the same picture, up to float rounding
    assert (alone - as_tensor.int()).abs().max() <= 2


@pytest.mark.slow
def test_train_returns_a_run_that_load_reads(tmp_path, faces_dir):
    run = animegen.train(faces_dir, out=tmp_path / "R", steps=3, **SMALL)
    assert isinstance(run, animegen.Run) and [r["step"] for r in run.log()] == [1, 2, 3]
    assert run.config["model"]["dim"] == 8 and run.samples().size[0] > 64
    model = run.load()
    assert model.checkpoint.name == "step-0000003" and model.config.network.dim == 8
    assert len(model.generate(2, steps=2)) == 2
    with pytest.raises(animegen.api.UserError, match="no such setting"):
        animegen.train(faces_dir, out=tmp_path / "S", steps=1, model__width=3)


@pytest.mark.slow
def test_train_inside_its_data_folder_needs_allow_out_in_data(tmp_path, faces_dir):
    data = tmp_path / "d"
    data.mkdir()
    for src in sorted(faces_dir.glob("*.jpg"))[:8]:
        (data / src.name).write_bytes(src.read_bytes())
    with pytest.raises(UserError, match="--allow-out-in-data"):
        animegen.train(data, out=data / "R", steps=1, **SMALL)
    assert sorted(p.name for p in data.iterdir()) == sorted(p.name for p in faces_dir.glob("*.jpg"))[:8]
    run = animegen.train(data, out=data / "R", steps=1, allow_out_in_data=True, **SMALL)
    assert [r["step"] for r in run.log()] == [1]


def test_the_hand_in_fits_under_2mb_at_the_highest_quality_that_fits(tmp_path, faces_dir):
    # 1000 real faces at 64x64 are as hard to compress as generated ones
    paths = sorted(faces_dir.glob("*.jpg"))[:1000]
    images = [torch.from_numpy(np.asarray(Image.open(p).convert("RGB").resize((64, 64), Image.BICUBIC)).copy())
              .permute(2, 0, 1) for p in paths]
    quality, files, archive = fit_quality(images)
    assert len(archive) <= HOMEWORK_TGZ_LIMIT
    if quality < 95:  # one step higher would not fit
        assert len(tgz_bytes([encode_jpeg(im, quality + 1) for im in images])) > HOMEWORK_TGZ_LIMIT
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
        assert names == [f"{k}.jpg" for k in range(1, 1001)]  # at the archive root, in order
        assert tar.extractfile("17.jpg").read() == files[16]
    assert archive[4:8] == bytes(4)  # no time in the gzip header: the same faces always give the same archive


def test_generate_tgz_holds_the_folders_bytes(tmp_path):
    done = animegen.load().save(tmp_path / "S", num=5, tgz=tmp_path / "images.tgz", steps=3)
    assert done.tgz_bytes == (tmp_path / "images.tgz").stat().st_size <= HOMEWORK_TGZ_LIMIT
    with tarfile.open(tmp_path / "images.tgz") as tar:
        for k in range(1, 6):
            assert tar.extractfile(f"{k}.jpg").read() == (tmp_path / "S" / f"{k}.jpg").read_bytes()


def test_tensorboard_event_file_holds_the_scalars(tmp_path, faces_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "R"
    cli("train", "--data", str(faces_dir), "--out", str(run), "--steps", "3", "--sample-every", "3",
        "--log", "tensorboard", *FAST)
    events = EventAccumulator(str(run / "tensorboard")).Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]
    logged = [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(logged, rel=1e-6)
    assert "train/lr" in events.Tags()["scalars"] and events.Tags()["images"] == ["samples"]


@pytest.mark.slow
def test_the_homework_notebook_runs_top_to_bottom(tmp_path, faces_dir):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "hw6.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")  # stripped in git
    out = tmp_path / "hw6"
    overrides = {**SMALL, "timesteps": 30, "sample__steps": 3, "sample__every": 2}
    env = {"HW6_DATA": str(faces_dir), "HW6_OUT": str(out), "HW6_STEPS": "2", "HW6_NUM": "16",
           "HW6_COMPARE_NUM": "4", "HW6_SAMPLERS": "ddpm,ddim:3", "HW6_OVERRIDES": json.dumps(overrides)}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                       ).execute()
    finally:
        for key in env:
            os.environ.pop(key)
    assert (out / "run" / "latest").is_file()
    assert (out / "q1.png").is_file() and (out / "q1-x0.png").is_file()
    report = json.loads((out / "report" / "report.json").read_text())
    assert [r["name"] for r in report["rows"]] == ["ddpm-30", "ddim-3"]
    assert sorted(int(p.stem) for p in (out / "submission").glob("*.jpg")) == list(range(1, 17))
    assert (out / "images.tgz").stat().st_size <= HOMEWORK_TGZ_LIMIT
    shown = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert sum("image/png" in o.get("data", {}) for o in shown) >= 3  # grids and figures display inline
    assert any("afd" in str(o.get("data", {}).get("text/plain", "")) for o in shown)
