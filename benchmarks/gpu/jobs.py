"""What the GPU scripts (benchmarks/gpu/sweep.py, homework.py) share: `animegen` commands as processes, several at
once on one GPU; scoring on the machine's CPU cores (generate on the device, `animegen evaluate` AFD + SWD against
the yardstick); and summary.json, one row a run.

Every command is the real `python -m animegen ...`, as a student would type it. `--dry` runs the same plan on a
CPU with tiny models and a few steps, so the scripts are tested before a GPU is at hand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROW_KEYS = ("name", "preset", "minutes", "gpu", "precision", "img_per_s", "tflops", "afd", "swd")
# --dry: models small enough for a CPU to take a few steps in seconds (64 px, as the real runs)
DRY_DIFFUSION = {"model.dim": 8, "model.dim_mults": [1, 2], "model.attn_resolutions": [], "optim.batch_size": 8,
                 "optim.warmup_steps": 0, "sample.steps": 2, "log_every": 1}
DRY_GAN = {"model.z_dim": 32, "model.w_dim": 32, "model.channels": 32, "model.max_channels": 32,
           "model.mapping_layers": 2, "optim.batch_size": 8, "optim.r1_every": 2, "log_every": 1}
DRY_STEPS = 3


@dataclass
class Session:
    """Where things are, and how big: `dry` = tiny sizes on a CPU; `num` faces scored per run."""

    data: Path
    real: Path
    work: Path
    results: Path
    dry: bool = False
    num: int = 1000
    started: float = field(default_factory=time.monotonic)

    @property
    def device(self) -> str:
        return "cpu" if self.dry else "cuda"

    def say(self, text: str) -> None:
        """One timestamped line (the lead reads where the minutes went)."""
        print(f"[{time.monotonic() - self.started:6.0f} s] {text}", flush=True)

    def prepare_data(self, image_size: int = 64) -> None:
        """Decode the training set into the runs' shared cache once, before several runs would each do it."""
        os.environ["ANIMEGEN_CACHE"] = str(self.work / "cache")
        from animegen.data.dataset import load_images

        self.say(f"{len(load_images(self.data, image_size, progress=False))} training faces decoded from {self.data}")

    def env(self, threads: int = 2) -> dict:
        """A child's environment: few CPU threads each (16 cores shared by several runs), unbuffered output."""
        return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
                "ANIMEGEN_CACHE": str(self.work / "cache")}


@dataclass
class Run:
    """One `animegen train` process: `name`, its preset and budget, the --set overrides and flags it adds."""

    name: str
    preset: str
    minutes: float | None  # the --max-minutes budget; None: the flags give --steps
    overrides: dict = field(default_factory=dict)
    flags: list = field(default_factory=list)
    launcher: list = field(default_factory=list)  # e.g. torchrun's arguments, before `-m animegen`
    proc: subprocess.Popen | None = None
    returncode: int | None = None
    scores: dict = field(default_factory=dict)

    def dir(self, session: Session) -> Path:
        return session.work / "runs" / self.name

    def command(self, session: Session) -> list[str]:
        gan = self.preset == "boss"
        sets = {**self.overrides, **((DRY_GAN if gan else DRY_DIFFUSION) if session.dry else {}),
                "sample.every": 0, "save_every": 10**6, "save_minutes": 10**6}
        budget = ["--steps", str(DRY_STEPS)] if session.dry else \
            ["--max-minutes", str(self.minutes)] if self.minutes else []
        python = [sys.executable, *self.launcher] if self.launcher else [sys.executable]
        return [*python, "-m", "animegen", "train", "--data", str(session.data), "--preset", self.preset,
                "--out", str(self.dir(session)), "--device", session.device, *budget, *self.flags,
                *[x for key, value in sets.items() for x in ("--set", f"{key}={json.dumps(value)}")]]

    def start(self, session: Session, threads: int = 2) -> None:
        out = self.dir(session)
        out.parent.mkdir(parents=True, exist_ok=True)
        log = open(session.work / f"{self.name}.log", "w")
        self.proc = subprocess.Popen(self.command(session), stdout=log, stderr=subprocess.STDOUT,
                                     env=session.env(threads), cwd=session.work)
        session.say(f"started {self.name}: {' '.join(self.command(session)[1:])}")

    def wait(self, session: Session, timeout: float) -> int:
        """The exit status; a run past `timeout` seconds is stopped with SIGTERM (it saves) and then killed."""
        try:
            self.returncode = self.proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.returncode = self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.returncode = self.proc.wait()
        session.say(f"{self.name} ended with status {self.returncode}")
        return self.returncode

    def log_rows(self, session: Session) -> list[dict]:
        path = self.dir(session) / "log.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_together(session: Session, runs: list[Run], threads: int = 2) -> None:
    """Start `runs` at once on the one device and wait for all; each may take its budget plus start-up time."""
    for run in runs:
        run.start(session, threads)
    deadline = time.monotonic() + max(r.minutes or 0 for r in runs) * 60 * 1.15 + 240
    for run in runs:
        run.wait(session, deadline - time.monotonic())


def rate(rows: list[dict]) -> tuple[float | None, float | None]:
    """Median img/s and TFLOP/s over the log rows after the first (which holds compiling or capturing)."""
    rows = [r for r in rows if "img_per_s" in r]
    rows = rows[1:] or rows
    if not rows:
        return None, None
    tflops = [r["tflops"] for r in rows if "tflops" in r]
    return statistics.median(r["img_per_s"] for r in rows), statistics.median(tflops) if tflops else None


def images_seen(session: Session, run: Run) -> int | None:
    """Optimizer steps x the global batch: the images the run saw in its budget (its last log row, its config)."""
    rows, config = run.log_rows(session), run.dir(session) / "config.json"
    if not rows or not config.exists():
        return None
    return rows[-1]["step"] * json.loads(config.read_text())["optim"]["batch_size"]


def score(session: Session, runs: list[Run], parallel: int = 6) -> None:
    """For every run that finished, `parallel` at a time: `session.num` faces (seeds 0..num-1, the model's own
    sampler) generated on the device (with the hand-in archive and a grid), then scored by `animegen evaluate
    --metrics afd,swd` against the yardstick on the CPU cores."""
    def one(run: Run) -> None:
        faces, folder = session.work / "faces" / run.name, session.work / "faces"
        steps = [["generate", "--checkpoint", str(run.dir(session)), "--num", str(session.num), "--out", str(faces),
                  "--force", "--device", session.device, "--tgz", str(folder / f"{run.name}.tgz")],
                 ["evaluate", "--images", str(faces), "--real", str(session.real), "--metrics", "afd,swd",
                  "--json", str(folder / f"{run.name}.json"), "--workers", "2", "--device", "cpu"]]
        for args in steps:
            result = subprocess.run([sys.executable, "-m", "animegen", *args], capture_output=True, text=True,
                                    env=session.env(2))
            if result.returncode != 0:
                run.scores = {"error": f"{args[0]}: {result.stderr[-500:]}"}
                return
            if args[0] == "generate":
                grid(faces, folder / f"{run.name}-grid.jpg")
        metrics = json.loads((folder / f"{run.name}.json").read_text())["metrics"]
        run.scores = {"afd": round(metrics["afd"], 4), "swd": round(metrics["swd"], 2)}

    with ThreadPoolExecutor(2 if session.dry else parallel) as pool:
        list(pool.map(one, [r for r in runs if r.returncode == 0]))
    session.say("scored " + ", ".join(f"{r.name} {r.scores}" for r in runs))


def grid(folder: Path, out: Path, n: int = 64) -> None:
    """The first n faces of a generation (seeds 0..n-1) as one JPEG grid, to look at beside the scores."""
    import torch

    from animegen.core.imagefiles import read_rgb, save_jpeg
    from animegen.viz.grid import make_grid

    files = [folder / f"{k}.jpg" for k in range(1, n + 1) if (folder / f"{k}.jpg").exists()]
    images = torch.stack([torch.from_numpy(read_rgb(f).copy()).permute(2, 0, 1) for f in files])
    save_jpeg(make_grid(images), out, quality=90)


def device_name(session: Session) -> str:
    if session.dry:
        return "cpu (--dry)"
    import torch

    return torch.cuda.get_device_name(0)


def precision_of(session: Session, run: Run) -> str:
    """The precision the run trained in on this machine: its config's setting resolved for the device (a
    StyleGAN2 run trains in fp32)."""
    from animegen.core.precision import device_precision

    config = json.loads((run.dir(session) / "config.json").read_text())
    if config.get("kind") == "stylegan2":
        return "fp32"
    return device_precision(config.get("precision", "auto"), session.device).name


def summary_row(session: Session, run: Run, gpu: str) -> dict:
    """One summary.json row: the run's budget, device, precision, median rates and scores (None where missing)."""
    rows = run.log_rows(session)
    img_s, tflops = rate(rows)
    precision = precision_of(session, run) if (run.dir(session) / "config.json").exists() else None
    # a run budgeted in steps (the checks) reports the minutes it trained
    minutes = run.minutes or (round(rows[-1]["elapsed_s"] / 60, 2) if rows else None)
    row = {"name": run.name, "preset": run.preset, "minutes": minutes, "gpu": gpu, "precision": precision,
           "img_per_s": None if img_s is None else round(img_s, 1),
           "tflops": None if tflops is None else round(tflops, 3),
           "afd": run.scores.get("afd"), "swd": run.scores.get("swd")}
    return {key: row[key] for key in ROW_KEYS}


def write_results(session: Session, rows: list[dict], details: dict, plan: str) -> Path:
    """summary.json (one row a run) and details.json (what else plan `plan` measured) in session.results. Rows of
    an earlier plan of the same day (the sweep, then the homework) stay; a row of the same name is replaced."""
    session.results.mkdir(parents=True, exist_ok=True)
    summary, more = session.results / "summary.json", session.results / "details.json"
    names = {row["name"] for row in rows}
    earlier = [row for row in json.loads(summary.read_text()) if row["name"] not in names] if summary.exists() else []
    summary.write_text(json.dumps(earlier + rows, indent=1) + "\n")
    more.write_text(json.dumps({**(json.loads(more.read_text()) if more.exists() else {}), plan: details},
                               indent=1) + "\n")
    session.say(f"wrote {summary} ({len(rows)} rows of {plan}, {len(earlier)} earlier) and {more.name}")
    return summary


def occasion_parser(description: str, work: str, minutes: float, minutes_help: str) -> argparse.ArgumentParser:
    """The arguments every prepared GPU occasion takes: its data, the yardstick, where it works and writes, its
    budget, how many faces it scores, and --dry (tiny models on a CPU, for the tests)."""
    import argparse

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(".gpu-data/faces.zip"))
    parser.add_argument("--real", type=Path, default=Path(".gpu-data/faces-1k"), help="the yardstick (scoring only)")
    parser.add_argument("--work", type=Path, default=Path(work))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/gpu") / time.strftime("%Y-%m-%d"))
    parser.add_argument("--minutes", type=float, default=minutes, help=minutes_help)
    parser.add_argument("--num", type=int, default=1000, help="faces scored per run")
    parser.add_argument("--dry", action="store_true", help="tiny models, a few steps, on the CPU (a test)")
    return parser
