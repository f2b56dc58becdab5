"""Runs get killed and disks fill up: what was saved stays loadable, and the run goes on from it."""

import json
import random
import resource
import signal
import subprocess
import sys
import time

from conftest import FAST, cli

from animegen.runs.load import load_denoiser


def latest_step(run) -> int:
    return int((run / "latest").read_text().strip().rsplit("-", 1)[1]) if (run / "latest").exists() else 0


def logged_steps(run) -> list[int]:
    steps = []
    for line in (run / "log.jsonl").read_text().splitlines() if (run / "log.jsonl").exists() else []:
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):  # a line torn by the kill
            pass
    return steps


def test_five_kill_9_at_random_moments_each_resumed(tmp_path, faces_dir):
    run, every = tmp_path / "R", 3
    cmd = [sys.executable, "-m", "animegen", "train", "--data", str(faces_dir), "--out", str(run),
           "--steps", "100000", "--save-every", str(every), "--sample-every", "0", *FAST]
    rng = random.Random(7)
    saved_before = 0
    for kill in range(5):
        proc = subprocess.Popen(cmd + (["--resume"] if kill else []), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        start, deadline = time.time(), time.time() + 240
        if kill == 0:  # the first kill comes after the first checkpoint, so there is something to resume
            while time.time() < deadline and latest_step(run) < every:
                time.sleep(0.05)
        delay = rng.uniform(0.5, 6.0)  # sometimes during start-up, sometimes mid-step or mid-save
        while time.time() < start + delay or (kill == 0 and latest_step(run) < every):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        saved = latest_step(run)
        reached = max(logged_steps(run), default=0)
        assert saved >= saved_before  # the step never goes back past a finished checkpoint
        assert reached - saved <= every  # nor loses more than one checkpoint interval of work
        for ckpt in sorted((run / "checkpoints").glob("step-*")):
            load_denoiser(ckpt)  # every checkpoint on disk is complete and loads
        saved_before = saved
    target = saved_before + 2
    cli("train", "--data", str(faces_dir), "--out", str(run), "--resume", "--steps", str(target))
    assert latest_step(run) == target
    steps = logged_steps(run)
    assert steps[-2:] == [target - 1, target]
    cli("generate", "--checkpoint", str(run), "--num", "2", "--steps", "2", "--out", str(tmp_path / "S"))
    assert len(list((tmp_path / "S").glob("*.jpg"))) == 2
    refused = cli("train", "--data", str(faces_dir), "--out", str(run), *FAST, check=False)
    assert refused.returncode == 2 and "--resume" in refused.stderr


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, faces_dir):
    run = tmp_path / "R"
    common = ["train", "--data", str(faces_dir), "--out", str(run), "--save-every", "2", "--sample-every", "0", *FAST]
    cli(*common, "--steps", "2")
    weights = (run / "checkpoints" / "step-0000002" / "model.safetensors").stat().st_size

    def small_disk():  # the kernel refuses writes past this size with EFBIG, as a full disk refuses them
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (weights // 2, weights // 2))

    proc = subprocess.run([sys.executable, "-m", "animegen", *common, "--resume", "--steps", "4"],
                          capture_output=True, text=True, preexec_fn=small_disk, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    message = proc.stderr.strip().splitlines()[-1]
    assert "could not save checkpoint" in message and "intact" in message and "Traceback" not in proc.stderr
    assert latest_step(run) == 2 and sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-0000002"]
    load_denoiser(run)  # the previous checkpoint is still whole
    cli(*common, "--resume", "--steps", "4")  # and with room on the disk again the run goes on
    assert latest_step(run) == 4
