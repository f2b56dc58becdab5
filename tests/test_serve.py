"""`animegen serve` over HTTP: the real server in a subprocess, on a free port of 127.0.0.1.

Safety first: bad numbers get a message, paths that lead out of --runs read nothing (checked by the files' access
times, which the kernel moves on any read), concurrent users are all answered in bounded memory."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import urllib.parse
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install -e '.[test]'")

from serving import start_server  # noqa: E402

MARKER = b"TOPSECRET-31"


def make_run(folder: Path, steps: int = 5, marker: bytes = b"") -> None:
    """A run directory as `train` leaves it (config, log, sample grids), without weights."""
    (folder / "samples").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"preset": "cpu", "steps": 10, "note": marker.decode()}))
    rows = [{"step": s, "loss": 1.0 / s, "lr": 1e-3, "planned_steps": 10, "img_per_s": 50.0, "elapsed_s": 2.0 * s,
             "note": marker.decode()} for s in range(1, steps + 1)]
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for s in range(1, steps + 1):
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (10 * s, 0, 0)).save(buf, format="PNG")
        (folder / "samples" / f"step-{s:07d}.png").write_bytes(buf.getvalue() + marker)


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """runs/ with good runs and every kind of way out; outside/ beside it holds a run, a checkpoint and a marker."""
    base = tmp_path_factory.mktemp("serve")
    runs, outside = base / "runs", base / "outside"
    make_run(runs / "good")
    make_run(outside / "secret-run", marker=MARKER)
    from animegen.assets import SHIPPED_STUDENT

    (outside / "ckpt").mkdir()
    for name in ("model.json", "ema.safetensors"):  # a loadable checkpoint, outside
        (outside / "ckpt" / name).write_bytes((SHIPPED_STUDENT / name).read_bytes())
    (runs / "linked").symlink_to(outside / "secret-run")                      # a run folder linked from outside
    (runs / "good" / "samples" / "step-0000009.png").symlink_to(outside / "secret-run" / "samples" / "step-0000001.png")
    make_run(runs / "leaky", 1)
    (runs / "leaky" / "log.jsonl").unlink()
    (runs / "leaky" / "log.jsonl").symlink_to(outside / "secret-run" / "log.jsonl")  # a log linked from outside
    make_run(runs / "grids", 1)
    (runs / "grids" / "samples" / "step-0000001.png").unlink()
    (runs / "grids" / "samples").rmdir()
    (runs / "grids" / "samples").symlink_to(outside / "secret-run" / "samples")     # sample grids from outside
    make_run(runs / "escape", 1)
    (runs / "escape" / "latest").write_text("../../outside/ckpt\n")                  # `latest` pointing out
    (runs / "confless").mkdir()
    (runs / "confless" / "log.jsonl").write_text("")
    (runs / "confless" / "config.json").symlink_to(outside / "secret-run" / "config.json")
    return base


def outside_atimes(base: Path) -> dict[Path, float]:
    """Every file and folder outside --runs, its access time set before its modification time: under relatime
    (and strictatime) the kernel moves it on the next read, so an unchanged atime means nobody read it."""
    times = {}
    for path in [base / "outside", *sorted((base / "outside").rglob("*"))]:
        st = path.stat()
        os.utime(path, (st.st_mtime - 3600, st.st_mtime))
        times[path] = path.stat().st_atime
    return times


@pytest.fixture(scope="module")
def server(layout, faces_dir):
    served = start_server(layout / "serve.log", "--runs", str(layout / "runs"), "--out", str(layout / "handin"),
                          "--real", str(faces_dir))
    yield served
    served.stop()


def error_of(status: int, headers: dict, body: bytes) -> str:
    assert 400 <= status < 500, (status, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert b"Traceback" not in body and b'File "' not in body
    return json.loads(body)["error"]


@pytest.mark.parametrize("path,says", [
    ("/api/draw?num=65", "num: must be at most 64"),
    ("/api/draw?num=0", "num: must be at least 1"),
    ("/api/draw?seed=-1", "seed: must be at least 0"),
    ("/api/draw?seed=2147483648", "seed: must be at most"),
    ("/api/draw?seed=abc", "seed: expected a whole number"),
    ("/api/draw?steps=0", "steps: must be at least 1"),
    ("/api/draw?sampler=ddim&eta=1.5", "eta: must be from 0 to 1"),
    ("/api/draw?sampler=ddim&eta=nan", "eta: expected a finite number"),
    ("/api/draw?sampler=warp", "sampler: unknown value"),
    ("/api/draw?model=served&sampler=ddim&steps=5000", "only T = 1000"),
    ("/api/draw?model=served&sampler=ddim&steps=1000", "network evaluations"),
    ("/api/draw?sampler=unipc&eta=0.5", "does not use eta"),
    ("/api/draw?psi=0.5", "psi: truncation is for StyleGAN2"),
    ("/api/draw?model=student&guidance=2", "no guide ships with this model"),
    ("/api/draw?model=served&guidance=0.5", "guidance: must be at least 1"),
    ("/api/draw?model=served&guidance=11", "guidance: must be at most 10"),
    ("/api/draw?colour=red", "unknown parameter 'colour'"),
    ("/api/draw?model=nobody", "model 'nobody': unknown"),
    ("/api/explore?t=1.5", "t: must be at most 1"),
    ("/api/watch?frames=61", "frames: must be at most 60"),
    ("/api/watch?frames=1", "frames: must be at least 2"),
    ("/api/nothing/here", "Not Found"),
    ("/api/download", "Method Not Allowed"),
])
def test_a_bad_request_gets_its_message_not_a_traceback(server, path, says):
    assert says in error_of(*server.get(path))


def test_the_served_model_draws_guided_and_a_page_may_change_the_weight(server):
    # the shipped model samples guided by its guide (its card's weight, which the page is told); guidance=1 draws
    # it alone, and asking for the weight it has draws what asking for nothing draws
    from animegen.assets import SHIPPED_MODEL

    weight = json.loads((SHIPPED_MODEL / "card.json").read_text())["guide"]["guidance"]
    config = json.loads(server.get("/api/config")[2])
    assert {m["id"]: m.get("guidance") for m in config["models"]} == {"student": None, "served": weight}
    ask = "/api/draw?model=served&sampler=dpmpp&steps=2&num=2&seed=3"
    own, same, alone = (server.get(ask + extra) for extra in ("", f"&guidance={weight}", "&guidance=1"))
    assert own[0] == same[0] == alone[0] == 200
    assert own[2] == same[2] != alone[2]


def test_bad_long_jobs_are_refused_before_they_start(server):
    for body, says in [({"num": 1001}, "num: must be at most 1000"), ({"num": [1]}, "num: expected a single value"),
                       ({"source": "disk"}, "source: unknown value")]:
        status, answer = server.post("/api/score" if "source" in body else "/api/download", body)
        assert status == 400 and says in answer["error"]
    # only JSON starts a job, so a form on another web site cannot
    assert "Content-Type: application/json" in error_of(*server.get("/api/download", {"Content-Type":
                                                                    "application/x-www-form-urlencoded"}, b"num=1"))
    assert "JSON object" in error_of(*server.get("/api/download", {"Content-Type": "application/json"}, b"[1]"))
    assert json.loads(server.get("/api/job")[2])["state"] == "idle"


def test_paths_out_of_the_runs_folder_read_nothing(server, layout):
    before = outside_atimes(layout)
    secret = str(layout / "outside" / "secret-run")
    q = urllib.parse.quote
    refused = [
        "/api/runs/sample?name=linked&file=step-0000001.png",
        f"/api/runs/sample?name={q('../outside/secret-run')}&file=step-0000001.png",
        f"/api/runs/sample?name={q(secret)}&file=step-0000001.png",
        f"/api/runs/sample?name=good&file={q('../../outside/secret-run/samples/step-0000001.png')}",
        f"/api/runs/sample?name=good&file={q('/' + secret + '/samples/step-0000001.png')}",
        "/api/runs/sample?name=good&file=step-0000009.png",             # a grid linked from outside
        "/api/runs/sample?name=good%2F..%2F..%2Foutside%2Fsecret-run&file=step-0000001.png",
        "/api/runs/sample?name=grids&file=step-0000001.png",            # a samples folder linked from outside
        "/api/runs/sample?name=confless&file=step-0000001.png",         # a config linked from outside
        "/api/draw?model=run:linked", f"/api/draw?model=run:{q('../outside/secret-run')}",
        f"/api/draw?model=run:{q(secret)}", "/api/draw?model=run:escape",  # `latest` pointing outside
        f"/api/explore?model=run:{q('../outside/ckpt')}", "/api/watch?model=run:confless",
    ]
    for path in refused:
        status, headers, body = server.get(path)
        assert MARKER not in body, path
        error_of(status, headers, body)
    for body in [{"source": "folder", "folder": "../outside"}, {"source": "folder", "folder": secret},
                 {"source": "folder", "folder": "linked"}, {"source": "model", "model": "run:escape"}]:
        status, answer = server.post("/api/score", body)
        assert status in (400, 403) and ("outside" in answer["error"] or "'..'" in answer["error"]), (body, answer)
    status, answer = server.post("/api/download", {"model": "run:escape"})
    assert status == 403 and "outside the runs folder" in answer["error"]
    listing = server.get("/api/runs")[2]
    assert MARKER not in listing
    runs = {r["name"]: r for r in json.loads(listing)["runs"]}
    assert "linked" not in runs and "confless" not in runs  # links out are not followed, not listed
    assert "outside the runs folder" in runs["leaky"]["error"] and "outside" in runs["grids"]["error"]
    after = {path: path.stat().st_atime for path in before}
    assert [p for p in before if after[p] != before[p]] == []  # no file or folder outside was read or listed


def test_the_runs_part_reads_a_run(server, layout):
    runs = {r["name"]: r for r in json.loads(server.get("/api/runs")[2])["runs"]}
    good = runs["good"]
    assert (good["step"], good["planned_steps"], good["img_per_s"], good["preset"]) == (5, 10, 50.0, "cpu")
    assert good["curve"]["step"] == [1, 2, 3, 4, 5] and good["samples"][-1] == "step-0000005.png"  # not the link
    assert good["state"] == "training" and good["planned_end"] == pytest.approx(good["updated"] + 5 * 2.0)
    status, headers, body = server.get("/api/runs/sample?name=good&file=step-0000003.png")
    assert status == 200 and body == (layout / "runs" / "good" / "samples" / "step-0000003.png").read_bytes()


@pytest.mark.slow
def test_score_prints_what_evaluate_prints(server, layout, faces_dir):
    from animegen.api import evaluate

    folder = layout / "runs" / "good" / "S"
    folder.mkdir()
    for path in sorted(faces_dir.glob("*.jpg"))[:48]:  # a small folder of real faces
        (folder / path.name).write_bytes(path.read_bytes())
    status, job = server.post("/api/score", {"source": "folder", "folder": "good/S"})
    assert status == 202 and job["state"] == "running"
    job = server.wait_job(300)
    assert job["state"] == "done", job["error"]
    expected = evaluate(folder, real=faces_dir, metrics=("afd", "swd"))
    assert {k: job["result"]["metrics"][k] for k in expected} == expected  # the same numbers as `evaluate`
    assert job["result"]["table"].splitlines()[0].split() == ["metric", "value"] and "swd " in job["result"]["table"]
    status, answer = server.post("/api/score", {"source": "handin"})
    assert status == 404 and "press Download first" in answer["error"]


def test_twenty_concurrent_draws_are_all_answered_in_bounded_memory(server):
    assert server.get("/api/draw?num=1&seed=99")[0] == 200  # the model is loaded before memory is measured
    rss = server.rss_bytes()
    answers: dict[int, tuple] = {}

    def ask(seed: int) -> None:
        answers[seed] = server.get(f"/api/draw?num=1&seed={seed}", timeout=300)

    threads = [threading.Thread(target=ask, args=(seed,)) for seed in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert sorted(answers) == list(range(20))
    assert [a[0] for a in answers.values()] == [200] * 20
    assert len({a[2] for a in answers.values()}) == 20  # twenty seeds, twenty faces
    assert all("compute;dur=" in a[1]["server-timing"] for a in answers.values())
    assert server.rss_bytes() - rss < 300 * 2**20


def test_the_page_loads_nothing_from_elsewhere(server):
    status, headers, page = server.get("/")
    assert status == 200 and "default-src 'self'" in headers["content-security-policy"]
    for path in ("/", "/static/app.js", "/static/style.css"):
        text = server.get(path)[2].decode()
        assert "http://" not in text and "https://" not in text, path


def test_a_page_elsewhere_cannot_reach_it_through_its_own_name(server):
    status, _, _ = server.get("/api/config", {"Host": "attacker.example"})  # DNS rebinding
    assert status == 400


def test_it_listens_on_this_machine_only_unless_told(server):
    assert server.url.startswith("http://127.0.0.1:") and "warning" not in server.log.read_text()


def test_a_taken_port_or_a_missing_folder_gets_one_line(tmp_path, capsys):
    from animegen.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--runs", str(tmp_path)]) == 2
    assert f"127.0.0.1:{port}: cannot listen there (in use; choose another --port)" in capsys.readouterr().err
    assert main(["serve", "--runs", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: not a folder; give --runs" in capsys.readouterr().err


@pytest.mark.slow
def test_another_host_is_announced_with_a_warning(tmp_path):
    served = start_server(tmp_path / "log", "--host", "127.0.0.2", "--runs", str(tmp_path))
    try:
        assert served.url.startswith("http://127.0.0.2:") and served.get("/api/config")[0] == 200
        assert "warning: serving on 127.0.0.2: anyone who can reach port" in served.log.read_text()
    finally:
        served.stop()


def test_the_command_line_stays_torch_free_with_serve_in_it():
    import subprocess
    import sys

    code = ("import sys, animegen.cli as c; c.build_parser().parse_args(['serve', '--port', '0']); "
            "print(sorted(m for m in ('torch', 'starlette', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # the server is imported only when `serve` runs
