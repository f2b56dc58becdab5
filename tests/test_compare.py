"""`animegen compare` (report Q2): the sampler list, and a real run whose rows share the seeds of `generate`."""

import json

import pytest
from PIL import Image

from conftest import FAST, cli

from animegen.core.errors import UserError
from animegen.runs.model import TrainedModel
from animegen.workflows.compare import markdown_table, parse_samplers


@pytest.fixture(scope="module")
def shipped() -> TrainedModel:
    return TrainedModel.load(None, "cpu")  # T = 1000


def specs_of(text: str, model: TrainedModel):
    return [spec for _, spec in parse_samplers(text, model)]


def test_sampler_specs_and_their_mistakes(shipped):
    specs = specs_of("ddpm, ddim:50,dpmpp:20", shipped)
    assert [(s.name, s.steps, s.label) for s in specs] == [
        ("ddpm", 1000, "ddpm-1000"), ("ddim", 50, "ddim-50"), ("dpmpp", 20, "dpmpp-20")]
    for bad, words in [("ddpm:10", "all T = 1000"), ("euler:10", "unknown sampler"), ("ddim:x", "whole number"),
                       ("ddim:0", ">= 1"), ("ddim:2000", "only T = 1000"), (" , ", "empty")]:
        with pytest.raises(UserError, match=words):
            parse_samplers(bad, shipped)


def test_sampler_options_name_their_folder_and_refuse_what_the_sampler_ignores(shipped):
    spec, plain = specs_of("ddim:50:eta=1:spacing=trailing,dpmpp:20:spacing=logsnr", shipped)
    assert (spec.eta, spec.spacing, spec.label, spec.variant) == (1.0, "trailing", "ddim-50-eta1-trailing",
                                                                 "ddim eta=1 trailing")
    assert (plain.label, plain.variant) == ("dpmpp-20-logsnr", "dpmpp logsnr")
    (dyn,) = specs_of("ddpm::threshold=dynamic", shipped)
    assert (dyn.steps, dyn.threshold, dyn.label) == (1000, "dynamic", "ddpm-1000-dynamic")
    for bad, words in [("ddim:50:eta=2", "eta must be"), ("ddim:50:eta=x", "eta must be"),
                       ("dpmpp:20:seed=1", "unknown option"), ("ddim:50:spacing=cubic", "unknown spacing"),
                       ("ddpm:1000:spacing=trailing", "unknown option"),
                       ("ddim:50:threshold=soft", "unknown threshold")]:
        with pytest.raises(UserError, match=words):
            parse_samplers(bad, shipped)


def test_table_ratios_are_against_the_most_expensive_row():
    rows = [{"sampler": "ddpm", "steps": 100, "nfe": 100, "seconds": 50.0, "img_per_s": 2.0, "swd": 40.0},
            {"sampler": "ddim", "steps": 10, "nfe": 10, "seconds": 5.0, "img_per_s": 20.0, "swd": 44.0}]
    lines = markdown_table(rows, ("swd",)).splitlines()
    assert len(lines) == 4 and "| 10.0x |" in lines[3] and "44.000 (+10.0%)" in lines[3]


@pytest.mark.slow
def test_compare_run_writes_table_json_figures_and_the_same_images_as_generate(tmp_path, faces_dir):
    run = tmp_path / "R"
    cli("train", "--data", str(faces_dir), "--out", str(run), "--steps", "2", "--timesteps", "30", *FAST)
    out = tmp_path / "report"
    proc = cli("compare", "--checkpoint", str(run), "--real", str(faces_dir), "--samplers", "ddpm,ddim:5,dpmpp:4",
               "--num", "6", "--metrics", "swd", "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    assert [(r["sampler"], r["nfe"]) for r in report["rows"]] == [("ddpm", 30), ("ddim", 5), ("dpmpp", 4)]
    assert all(r["num"] == 6 and r["swd"] > 0 and r["img_per_s"] > 0 for r in report["rows"])
    assert (out / "report.md").read_text() in proc.stdout
    for figure in ("metrics-vs-nfe.png", "samplers.png"):
        with Image.open(out / figure) as im:
            assert im.width > 200 and im.height > 100
    # the DDIM row is exactly what `generate` writes for the same seeds
    cli("generate", "--checkpoint", str(run), "--sampler", "ddim", "--steps", "5", "--num", "6",
        "--out", str(tmp_path / "G"))
    for k in range(1, 7):
        assert (out / "samples" / "ddim-5" / f"{k}.jpg").read_bytes() == (tmp_path / "G" / f"{k}.jpg").read_bytes()
    refused = cli("compare", "--checkpoint", str(run), "--samplers", "ddim:5", "--num", "2", check=False)
    assert refused.returncode == 2 and "--real" in refused.stderr

    # --resume keeps finished rows (images and wall time) and runs only the new sampler
    before = {p.name: p.stat().st_mtime_ns for p in (out / "samples" / "ddpm-30").iterdir()}
    cli("compare", "--checkpoint", str(run), "--real", str(faces_dir), "--samplers", "ddpm,ddim:5:eta=1",
        "--num", "6", "--metrics", "swd", "--out", str(out), "--resume")
    resumed = json.loads((out / "report.json").read_text())["rows"]
    assert resumed[0] == report["rows"][0]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "samples" / "ddpm-30").iterdir()} == before
    assert resumed[1]["name"] == "ddim-5-eta1" and len(list((out / "samples" / "ddim-5-eta1").glob("*.jpg"))) == 6
    # stochastic DDIM draws other images than deterministic DDIM from the same seeds
    assert (out / "samples" / "ddim-5-eta1" / "1.jpg").read_bytes() != (out / "samples" / "ddim-5" / "1.jpg").read_bytes()
