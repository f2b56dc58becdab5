"""Runs get killed and disks fill up: what was saved stays loadable, and the run goes on from it. Generates race
and get killed too: one per folder at a time, and what a killed one left is cleared by the next."""

import json
import logging
import os
import random
import resource
import signal
import subprocess
import sys
import time

import pytest

from conftest import FAST, cli

from animegen.cli import main

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


@pytest.mark.slow
def test_five_kill_9_at_random_moments_each_resumed(tmp_path, faces_dir):
    run, every = tmp_path / "R", 3
    # eager: a run this long would compile its first step on a CPU with native bf16, and the kills would all
    # land in the compiler instead of at random moments of training
    cmd = [sys.executable, "-m", "animegen", "train", "--data", str(faces_dir), "--out", str(run),
           "--steps", "100000", "--save-every", str(every), "--sample-every", "0", "--compile", "off", *FAST]
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


@pytest.mark.slow
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


GEN = ["generate", "--sampler", "ddim", "--steps", "2"]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "animegen", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def contents(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.slow
def test_two_generates_racing_into_one_new_folder(tmp_path):
    out = tmp_path / "two"
    # started together, each samples for seconds (300 faces): the second reaches the lock while the first holds it
    procs = {start(*GEN, "--num", "300", "--seed", str(seed), "--out", str(out)): seed for seed in (0, 1000)}
    done = {proc: proc.communicate(timeout=600) for proc in procs}
    won = [proc for proc in procs if proc.returncode == 0]
    lost = [proc for proc in procs if proc.returncode != 0]
    assert len(won) == 1 and len(lost) == 1, [err[-800:] for _, err in done.values()]
    err = done[lost[0]][1]
    assert lost[0].returncode == 2 and "Traceback" not in err, err
    assert err.strip().splitlines() == [f"animegen: error: {out} is in use by another animegen process (PID "
                                        f"{won[0].pid}); wait for it to end or choose another --out"], err
    # the folder holds the winner's generation, whole; nothing is left beside it (staging folder, lock file)
    manifest = json.loads((out / ".animegen-generate.json").read_text())
    assert manifest["seed"] == procs[won[0]] and manifest["num"] == 300
    assert sorted(contents(out)) == sorted([*manifest["files"], ".animegen-generate.json"])
    assert all(len(data) > 1000 and data[:2] == b"\xff\xd8" for name, data in contents(out).items()
               if name.endswith(".jpg"))
    assert [p.name for p in tmp_path.iterdir()] == ["two"]


@pytest.mark.slow
def test_kill_9_mid_generate_keeps_the_images_and_the_next_generate_clears_its_staging_folder(tmp_path):
    out = tmp_path / "keep"
    cli(*GEN, "--num", "3", "--out", str(out))
    before = contents(out)
    proc = start(*GEN, "--num", "1000", "--seed", "5", "--force", "--out", str(out))
    staging = tmp_path / f".keep.tmp-{proc.pid}"
    deadline = time.time() + 240
    while not staging.is_dir():  # made once the lock is held and the checks passed, just before sampling
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.02)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert contents(out) == before  # the previous images, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keep.lock", f".keep.tmp-{proc.pid}", "keep"]
    # the dead holder's lock does not block; its staging folder goes, in one line; the new images go in
    again = cli(*GEN, "--num", "2", "--seed", "9", "--force", "--out", str(out))
    notes = [line for line in again.stderr.splitlines() if "staging" in line]
    assert notes == [f"animegen: {tmp_path}: removed 1 staging folder of killed generates: .keep.tmp-{proc.pid} "
                     f"(PID {proc.pid} is gone)"], again.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]
    assert json.loads((out / ".animegen-generate.json").read_text())["seed"] == 9


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_staging_folders_of_live_processes_stay_and_a_kill_mid_swap_puts_the_images_back(tmp_path, capsys,
                                                                                           caplog):
    out = tmp_path / "S"
    assert main([*GEN, "--num", "2", "--out", str(out)]) == 0
    before = contents(out)
    # a kill between the swap's two renames: no S, the previous images parked in .S.old-PID, the new in .S.tmp-PID
    os.replace(out, tmp_path / f".S.old-{dead_pid()}")
    (tmp_path / f".S.tmp-{dead_pid()}").mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (tmp_path / f".S.tmp-{live.pid}").mkdir()  # a process that still runs: never touched
        capsys.readouterr()
        with caplog.at_level(logging.WARNING):
            assert main([*GEN, "--num", "1", "--out", str(out)]) == 2  # the previous images are back: not empty
        assert "not empty" in capsys.readouterr().err
        notes = [r.getMessage() for r in caplog.records]
        assert any("put back the previous images" in n for n in notes), notes
        assert any("removed 1 staging folder" in n for n in notes), notes
        assert contents(out) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".S.tmp-{live.pid}", "S"]
    finally:
        live.kill()
        live.wait()
