"""What a careless or unlucky user meets: generate never loses images it did not write, one writer per run,
every bad argument and unwritable path gets one line, an interrupted run says it saved and exits 130/143."""

import json
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest

from animegen.assets import SHIPPED_MODEL
from conftest import FAST, cli


def one_line_refusal(proc, words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_force_never_deletes_files_animegen_did_not_write(tmp_path, faces_dir):
    mine = tmp_path / "mine"
    mine.mkdir()
    for k in range(1, 4):  # the user's own faces, named like a generation
        shutil.copy(sorted(faces_dir.glob("*.jpg"))[k], mine / f"{k}.jpg")
    (mine / "README").write_text("my notes")
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    one_line_refusal(cli("generate", "--num", "2", "--force", "--out", str(mine), check=False),
                     "did not write")
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before


def test_force_replaces_an_earlier_generation_whole(tmp_path):
    out = tmp_path / "S"
    cli("generate", "--num", "3", "--out", str(out), "--sampler", "ddim", "--steps", "2")
    first = (out / "1.jpg").read_bytes()
    one_line_refusal(cli("generate", "--num", "2", "--out", str(out), check=False), "--force")
    cli("generate", "--num", "2", "--seed", "7", "--force", "--out", str(out), "--sampler", "ddim", "--steps", "2")
    assert sorted(p.name for p in out.glob("*.jpg")) == ["1.jpg", "2.jpg"]  # 3.jpg was ours: replaced with the rest
    assert (out / "1.jpg").read_bytes() != first
    assert json.loads((out / ".animegen-generate.json").read_text())["seed"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["S"]  # no temporary folder left beside it


def test_a_full_disk_during_generate_keeps_the_previous_images(tmp_path):
    out = tmp_path / "S"
    cli("generate", "--num", "3", "--out", str(out), "--sampler", "ddim", "--steps", "2")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def small_files():  # the kernel refuses writes past 1 kB: JPEGs of 64x64 faces are larger
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    proc = subprocess.run([sys.executable, "-m", "animegen", "generate", "--num", "3", "--seed", "5", "--force",
                           "--out", str(out), "--sampler", "ddim", "--steps", "2"],
                          capture_output=True, text=True, preexec_fn=small_files, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "too large" in proc.stderr or "no space" in proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["S"]


@pytest.mark.parametrize("args,words", [
    (["generate", "--batch-size", "-1"], "--batch-size: must be at least 1"),
    (["generate", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["generate", "--steps", "0"], "--steps: must be at least 1"),
    (["generate", "--steps", "5000", "--num", "1"], "only T = 1000"),
    (["generate", "--sampler", "ddpm", "--eta", "1"], "ddpm does not use eta"),
    (["generate", "--jpeg-quality", "0"], "--jpeg-quality: must be at least 1"),
    (["generate", "--jpeg-quality", "101"], "--jpeg-quality: must be from 1 to 100"),
    (["generate", "--num", "0"], "--num: must be at least 1"),
    (["train", "--steps", "0", "--data", "x"], "--steps: must be at least 1"),
    (["train", "--steps", "-5", "--data", "x"], "--steps: must be at least 1"),
    (["train", "--save-every", "0", "--data", "x"], "--save-every: must be at least 1"),
    (["train", "--lr", "-1", "--data", "x"], "--lr: must be above 0"),
    (["train", "--set", "optim.lr=0", "--dry-run"], "optim.lr"),
    (["train", "--set", "steps=0", "--dry-run"], "steps"),
    (["train", "--timesteps", "10", "--dry-run"], "reach 1 below T = 21"),
    (["progress", "--num", "0"], "--num: must be at least 1"),
    (["compare", "--num", "0"], "--num: must be at least 1"),
])
def test_every_bad_argument_gets_one_line(args, words):
    one_line_refusal(cli(*args, check=False), words)


def test_unwritable_outputs_get_one_line(tmp_path, faces_dir):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [
        (["generate", "--num", "1", "--out", str(a_file)], "not a folder"),
        (["generate", "--num", "1", "--out", str(a_file / "sub")], "not a folder"),
        (["generate", "--num", "1", "--out", str(tmp_path / "S"), "--tgz", str(tmp_path)], "is a folder"),
        (["generate", "--num", "1", "--out", "/proc/animegen-S"], "/proc"),
        (["train", "--data", str(faces_dir), "--out", str(a_file)], "not a folder"),
        (["evaluate", "--images", str(faces_dir), "--metrics", "afd", "--json", str(a_file / "s.json")],
         "not a folder"),
        (["export", "--checkpoint", str(SHIPPED_MODEL), "--out", "/proc/animegen-E"], "/proc"),
        (["progress", "--out", str(a_file / "q1.png")], "not a folder"),
    ]
    for args, words in cases:
        one_line_refusal(cli(*args, check=False), words)
    assert a_file.read_text() == "x"


@pytest.fixture
def start_train(faces_dir):
    """Start endless training runs as real processes; each is killed when the test ends, pass or fail.
    --compile off: a run this long would compile its first step on a CPU with native bf16 (minutes, not steps)."""
    procs = []

    def start(run, *extra):
        procs.append(subprocess.Popen([sys.executable, "-m", "animegen", "train", "--data", str(faces_dir),
                                       "--out", str(run), "--steps", "100000", "--compile", "off", *FAST, *extra],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def wait_for_steps(run, proc, timeout=120):
    deadline = time.time() + timeout
    while not (run / "log.jsonl").is_file() or not (run / "log.jsonl").read_text().strip():
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.2)


@pytest.mark.slow
def test_one_writer_per_run_directory(tmp_path, faces_dir, start_train):
    run = tmp_path / "R"
    first = start_train(run)
    try:
        wait_for_steps(run, first)
        second = cli("train", "--data", str(faces_dir), "--out", str(run), "--resume", check=False)
        one_line_refusal(second, f"in use by another animegen process (PID {first.pid})")
        fresh = cli("train", "--data", str(faces_dir), "--out", str(run), check=False)
        assert fresh.returncode == 2 and "Traceback" not in fresh.stderr
    finally:
        first.kill()
        first.wait()
    # the kernel dropped the killed process's lock: the same run resumes (or starts, if it saved nothing yet)
    resumed = cli("train", "--data", str(faces_dir), "--out", str(run), "--resume", "--steps", "2")
    assert "in use" not in resumed.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_saves_and_exits_with_the_signal(tmp_path, faces_dir, start_train, signum, code):
    run = tmp_path / "R"
    proc = start_train(run)
    wait_for_steps(run, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    saved = int((run / "latest").read_text().strip().split("-")[-1])
    assert saved > 0 and f"saved step {saved}" in err and "--resume" in err


def test_resume_of_a_run_with_nothing_saved_starts_it(tmp_path, faces_dir):
    run = tmp_path / "R"
    proc = cli("train", "--data", str(faces_dir), "--out", str(run), "--resume", "--steps", "2", *FAST)
    assert "nothing saved yet" in proc.stderr and (run / "latest").is_file()


@pytest.mark.slow
def test_a_second_ctrl_c_aborts_at_once_without_saving(tmp_path, faces_dir, start_train):
    run = tmp_path / "R"
    # a person's second Ctrl-C comes some tens of milliseconds after the first (two signals sent back to back may
    # merge into one in the kernel): the first lands early in a step of batch 256 (seconds on any CPU, so it is
    # still running 50 ms later), and the second must abort before the first one's save can start
    proc = start_train(run, "--save-every", "100000", "--batch-size", "256")
    wait_for_steps(run, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "saved step" not in err, err
    assert not (run / "latest").exists()


def test_skipped_files_are_named(tmp_path, faces_dir):
    data = tmp_path / "data"
    data.mkdir()
    for src in sorted(faces_dir.glob("*.jpg"))[:8]:
        shutil.copy(src, data / src.name)
    (data / "broken.jpg").write_bytes(b"not a jpeg")
    proc = cli("train", "--data", str(data), "--out", str(tmp_path / "R"), "--steps", "1", *FAST)
    assert "skipped 1 of 9 files" in proc.stderr and "broken.jpg" in proc.stderr


def image_files(folder) -> int:
    return sum(p.suffix in (".jpg", ".png") for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_run_inside_its_data_folder_is_refused_unless_insisted_and_never_trained_on(tmp_path, faces_dir):
    data = tmp_path / "d"
    data.mkdir()
    for src in sorted(faces_dir.glob("*.jpg"))[:24]:
        shutil.copy(src, data / src.name)
    run = data / "run"
    one_line_refusal(cli("train", "--data", str(data), "--out", str(run), "--steps", "2", *FAST, check=False),
                     "--out lies inside --data")
    assert not run.exists()
    one_line_refusal(cli("train", "--data", str(data), "--out", str(data), "--allow-out-in-data", "--steps", "2",
                         *FAST, check=False), "is the --data folder itself")
    cli("train", "--data", str(data), "--out", str(run), "--allow-out-in-data", "--steps", "2", "--sample-every", "1",
        *FAST)
    cli("generate", "--checkpoint", str(run), "--num", "3", "--sampler", "ddim", "--steps", "2", "--out",
        str(data / "gen"))
    ours = image_files(run) + 3  # sample grids, loss.png, and the generated faces
    assert image_files(run) >= 3
    again = cli("train", "--data", str(data), "--out", str(tmp_path / "R"), "--steps", "1", *FAST)
    assert f"left out {ours} image files that animegen wrote itself" in again.stderr, again.stderr
    assert "a run directory (run)" in again.stderr and "a generation folder (gen)" in again.stderr
    assert f"24 training images from {data}" in again.stderr
