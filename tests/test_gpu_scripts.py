"""The prepared GPU scripts (benchmarks/gpu/sweep.sh, homework.sh) run their whole plan on this CPU with --dry: tiny
models, a few steps, the real commands, processes side by side, scoring, summary.json and what comes back in $OUT."""

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = ["name", "preset", "minutes", "gpu", "precision", "img_per_s", "tflops", "afd", "swd"]


@pytest.fixture(scope="module")
def gpu_data(tmp_path_factory, faces_dir):
    """A training zip and a yardstick folder, disjoint (the real scripts train on the 48k set without faces-1k)."""
    root = tmp_path_factory.mktemp("gpu-data")
    faces = sorted(faces_dir.glob("*.jpg"), key=lambda p: int(p.stem))
    with zipfile.ZipFile(root / "faces.zip", "w") as archive:
        for path in faces[:200]:
            archive.write(path, f"faces/{path.name}")
    (root / "real").mkdir()
    for path in faces[200:264]:
        shutil.copy(path, root / "real" / path.name)
    return root


def dry(script: str, tmp_path: Path, data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "WORK": str(tmp_path / script), "OUT": str(tmp_path / "out"),
           "RESULTS": str(tmp_path / "results")}
    (tmp_path / "out").mkdir(exist_ok=True)
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / f"{script}.sh"), "--dry", "--data",
                           str(data / "faces.zip"), "--real", str(data / "real"), *args],
                          capture_output=True, text=True, env=env, timeout=1200, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.first
@pytest.mark.slow
def test_the_sweep_and_the_homework_run_dry_and_write_their_summary(tmp_path, gpu_data):
    dry("sweep", tmp_path, gpu_data, "--alone", "base")
    rows = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert [r["name"] for r in rows] == ["base", "dim96", "dim128", "base-alone"]
    for row in rows:
        assert list(row) == ROW_KEYS
        assert row["preset"] == "gpu" and row["img_per_s"] > 0 and row["tflops"] > 0
        assert 0 <= row["afd"] <= 1 and row["swd"] > 0  # scored against the yardstick
    sweep = json.loads((tmp_path / "results" / "details.json").read_text())["sweep"]
    assert sweep["failed"] == [] and sorted(sweep["ranking"]) == ["base", "dim128", "dim96"]
    assert set(sweep["sharing"]["same_order"]) == {"afd", "swd", "images_seen"}

    dry("homework", tmp_path, gpu_data)
    rows = json.loads((tmp_path / "results" / "summary.json").read_text())
    names = [r["name"] for r in rows]
    assert names[:4] == ["base", "dim96", "dim128", "base-alone"]  # the sweep's rows of the same day stay
    assert names[4:] == ["gpu", "boss", "check-bf16-seed0", "check-bf16-seed1", "check-fp16-seed0",
                         "check-nccl-ws1"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["boss"]["preset"] == "boss" and by_name["boss"]["precision"] == "fp32"
    assert by_name["check-fp16-seed0"]["precision"] == "fp32"  # fp16 on a CPU trains in fp32
    assert all(list(r) == ROW_KEYS for r in rows) and by_name["gpu"]["afd"] is not None
    homework = json.loads((tmp_path / "results" / "details.json").read_text())["homework"]
    checks = homework["checks"]
    assert homework["failed"] == [] and checks["nccl_world_size_1"]["exit_status"] == 0
    # one process under torchrun trains exactly as one process alone (the same seeds, the sum over one rank)
    assert checks["nccl_world_size_1"]["max_rel_loss_diff_vs_single_process"] <= 1e-6
    assert any("training on cpu in fp32" in line for line in checks["decisions"]["check-fp16-seed0"])
    assert homework["utilisation"]["gpu_run"]["pct_of_matmul"] > 0
    graphed = checks["graph_fp16"]  # check.py, dry: eager on a CPU, but every check ran and passed
    assert graphed["exit_status"] == 0 and len(graphed["checks"]) == 3 and all(c["ok"] for c in graphed["checks"])
    # what comes back from the device: at most 8 files, the summary among them
    out = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(out) <= 8 and {"summary.json", "details.json", "session.log", "results.tgz", "gpu.tgz",
                              "boss.tgz"} <= set(out)
