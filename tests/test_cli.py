"""The command line as a user runs it: real processes, real files, one-line errors."""

import json
import os

import numpy as np
from PIL import Image

from conftest import FAST, cli


def test_dry_run_prints_the_resolved_preset():
    out = json.loads(cli("train", "--preset", "strong", "--dry-run", "--lr", "2e-4").stdout)
    assert out["model"]["dim"] == 32 and out["model"]["dim_mults"] == [1, 2, 4, 8]
    assert out["diffusion"] == {"timesteps": 1000, "schedule": "cosine", "objective": "pred_noise", "min_snr_gamma": None,
                                "t_sampling": "uniform", "p_mean": -1.2, "p_std": 1.2}
    assert (out["optim"]["lr_schedule"], out["ema"]["kind"]) == ("constant", "homework")  # the homework's, kept
    assert out["augment"]["rotate_deg"] == 10.0 and out["optim"]["lr"] == 2e-4


def test_user_mistakes_get_one_line_and_no_traceback(tmp_path):
    cases = [
        (["train", "--preset", "huge", "--data", str(tmp_path)], "unknown preset 'huge'"),
        (["train", "--data", str(tmp_path / "nope")], "no such folder or archive"),
        (["train", "--set", "model.width=3", "--dry-run"], "no such setting"),
        (["train", "--set", "sample.threshold=soft", "--dry-run"], "sample: unknown threshold 'soft'"),
        (["generate", "--checkpoint", str(tmp_path)], "no checkpoint here"),
        (["generate", "--eta", "2"], "--eta: must be from 0 to 1"),
        (["evaluate", "--images", str(tmp_path), "--metrics", "is"], "unknown metric"),
    ]
    for args, message in cases:
        proc = cli(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_train_generate_round_trip_is_deterministic(tmp_path, faces_dir):
    run = tmp_path / "R"
    proc = cli("train", "--data", str(faces_dir), "--out", str(run), "--steps", "4", *FAST, "--bf16", "off")
    assert (run / "latest").is_file() and "training on cpu in fp32" in proc.stderr
    a, b, c = tmp_path / "S1", tmp_path / "S2", tmp_path / "S3"
    common = ["--checkpoint", str(run), "--num", "24", "--sampler", "ddim", "--steps", "3"]
    cli("generate", *common, "--out", str(a), "--tgz", str(tmp_path / "images.tgz"))
    cli("generate", *common, "--out", str(b))
    cli("generate", *common, "--out", str(c), "--batch-size", "5")
    names = sorted((n for n in os.listdir(a) if not n.startswith(".")), key=lambda n: int(n.split(".")[0]))
    assert names == [f"{k}.jpg" for k in range(1, 25)]
    for name in names:
        with Image.open(a / name) as im:
            assert im.size == (64, 64) and im.mode == "RGB" and im.format == "JPEG"
        assert (a / name).read_bytes() == (b / name).read_bytes()
        pa = np.asarray(Image.open(a / name), dtype=np.int16)
        pc = np.asarray(Image.open(c / name), dtype=np.int16)
        assert np.abs(pa - pc).max() <= 2  # batch size changes float rounding only
    import tarfile

    with tarfile.open(tmp_path / "images.tgz") as t:
        assert sorted(t.getnames(), key=lambda n: int(n.split(".")[0])) == names
    refused = cli("generate", *common, "--out", str(a), check=False)
    assert refused.returncode == 2 and "--force" in refused.stderr


def test_generate_without_a_sampler_uses_the_models_sample_settings(tmp_path, faces_dir):
    run = tmp_path / "R"
    cli("train", "--data", str(faces_dir), "--out", str(run), "--steps", "2", *FAST, "--set", "sample.sampler=dpmpp",
        "--set", "sample.eta=1", "--set", "sample.threshold=dynamic")
    common = ["--checkpoint", str(run), "--num", "3"]
    cli("generate", *common, "--out", str(tmp_path / "own"))
    cli("generate", *common, "--out", str(tmp_path / "said"), "--sampler", "dpmpp", "--steps", "2", "--eta", "1",
        "--threshold", "dynamic")
    cli("generate", *common, "--out", str(tmp_path / "clamp"), "--sampler", "dpmpp", "--steps", "2", "--eta", "1",
        "--threshold", "static")
    for k in range(1, 4):
        own = (tmp_path / "own" / f"{k}.jpg").read_bytes()
        assert own == (tmp_path / "said" / f"{k}.jpg").read_bytes()
        # an untrained eps model over-shoots x0: the clamp and the rescale give different pictures
        assert own != (tmp_path / "clamp" / f"{k}.jpg").read_bytes()


def test_progress_figure_has_num_by_frames_panels(tmp_path, faces_dir):
    run = tmp_path / "R"
    cli("train", "--data", str(faces_dir), "--out", str(run), "--steps", "2", "--timesteps", "30", *FAST)
    cli("progress", "--checkpoint", str(run), "--num", "3", "--frames", "6", "--out", str(tmp_path / "q1.png"))
    for name in ("q1.png", "q1-x0.png"):
        with Image.open(tmp_path / name) as im:
            assert im.width > im.height > 100
    assert (tmp_path / "q1.png").read_bytes() != (tmp_path / "q1-x0.png").read_bytes()


def test_progress_panels_and_frame_choice(tmp_path):
    import torch

    from animegen.viz.progress import pick_frames, save_progress_figure

    frames = pick_frames(30, 20)
    assert len(frames) == 20 and frames[0] == 0 and frames[-1] == 30  # from pure noise to the final image
    assert pick_frames(5, 20) == [0, 1, 2, 3, 4, 5]
    columns = [torch.randint(0, 255, (5, 3, 16, 16), dtype=torch.uint8) for _ in range(20)]
    panels = save_progress_figure(columns, [f"t={t}" for t in range(20)], tmp_path / "f.png", "x")
    assert panels == 5 * 20 and (tmp_path / "f.png").stat().st_size > 1000


def test_export_halves_the_weights_and_generates_nearly_the_same_images(tmp_path, faces_dir):
    run = tmp_path / "R"
    cli("train", "--data", str(faces_dir), "--out", str(run), "--steps", "2", *FAST)
    cli("export", "--checkpoint", str(run), "--out", str(tmp_path / "M"))
    full = next((run / "checkpoints").glob("step-*")) / "ema.safetensors"
    half = tmp_path / "M" / "ema.safetensors"
    assert 0.4 < half.stat().st_size / full.stat().st_size < 0.6
    for name, ckpt in (("A", run), ("B", tmp_path / "M")):
        cli("generate", "--checkpoint", str(ckpt), "--num", "2", "--steps", "3", "--out", str(tmp_path / name),
            "--bf16", "off")  # fp32 sampling on both sides (auto is bf16 where the CPU has it): only the weights differ
    a, b = (np.asarray(Image.open(tmp_path / n / "1.jpg"), dtype=np.float32) for n in ("A", "B"))
    assert np.abs(a - b).mean() < 2.0  # fp16 weights, fp32 sampling: the same picture
    refused = cli("export", "--checkpoint", str(run), "--out", str(tmp_path / "M"), check=False)
    assert refused.returncode == 2 and "not empty" in refused.stderr
