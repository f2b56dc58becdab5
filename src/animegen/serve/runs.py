"""The runs under `--runs`, read only: their configs, logs, sample grids and newest complete checkpoints.

Every path a request names is a name relative to the runs folder; each file is opened only after its real path
(symlinks followed) is found inside that folder, so `../`, absolute paths and links out of it read nothing."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from animegen.core.errors import UserError
from animegen.runs.checkpoint import resolve_checkpoint
from animegen.runs.model_file import MODEL_FILE
from animegen.serve.params import BadRequest
from animegen.viz.curves import read_log

SAMPLE_NAME = re.compile(r"step-\d{1,12}\.png")
SKIP = {"checkpoints", "samples", "tensorboard", "node_modules", "__pycache__"}
MAX_DEPTH = 3          # runs/<group>/<run> at most: the walk stays short even when --runs is a home folder
MAX_FOLDERS = 2000     # folders looked at per listing, for the same reason
MAX_RUNS = 50
CURVE_POINTS = 300     # points per curve sent to the page
STOPPED_AFTER_S = 120  # a run whose log has not grown this long (and at least 10 log steps) is not training


class RunsReader:
    """Read-only access to the runs below `root`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise UserError(f"{root}: not a folder; give --runs the folder your runs are in")

    def inside(self, path: Path) -> Path:
        """`path` with symlinks resolved, if that is in the runs folder; otherwise the request is refused."""
        if not self.contains(path):
            raise BadRequest(f"{self._shown(path)}: outside the runs folder; only what is under --runs is read", 403)
        return Path(os.path.realpath(path))

    def contains(self, path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return real == self.root or self.root in real.parents

    def _shown(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return path.name

    def path(self, name: str, what: str = "run") -> Path:
        """A folder named relative to the runs folder: no absolute paths, no '..', nothing outside."""
        if not name or "\x00" in name or name.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", name):
            raise BadRequest(f"{what} {name[:80]!r}: give a name relative to the runs folder", 400)
        if ".." in Path(name).parts:
            raise BadRequest(f"{what} {name[:80]!r}: '..' is not allowed; only what is under --runs is read", 403)
        folder = self.inside(self.root / name)
        if not folder.is_dir():
            raise BadRequest(f"{what} {name!r}: no such folder under the runs folder", 404)
        return folder

    def run(self, name: str) -> Path:
        folder = self.path(name)
        if not self._is_run(folder):
            raise BadRequest(f"run {name!r}: not a run (no config.json and log.jsonl or checkpoints)", 404)
        return folder

    def _is_run(self, folder: Path) -> bool:
        config = folder / "config.json"
        if not config.is_file():
            return False
        self.inside(config)
        return (folder / "log.jsonl").is_file() or (folder / "latest").is_file()

    def names(self) -> list[str]:
        """Runs below the root (the root itself may be one), shortest names first; links are not followed."""
        found, seen = [], 0
        for dirpath, dirs, _files in os.walk(self.root, followlinks=False):
            depth = len(Path(dirpath).relative_to(self.root).parts)
            dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith(".") and depth < MAX_DEPTH)
            seen += 1
            try:
                if self._is_run(Path(dirpath)):
                    found.append(str(Path(dirpath).relative_to(self.root)))
            except BadRequest:  # a config.json linked from outside: not listed, not read
                continue
            if seen >= MAX_FOLDERS or len(found) >= MAX_RUNS:
                break
        return sorted(found, key=lambda n: (n.count("/"), n))

    def checkpoint(self, name: str) -> Path:
        """The run's newest complete checkpoint folder (as `generate --checkpoint` finds it), all inside."""
        folder = self.run(name)
        if (folder / "latest").exists():
            self.inside(folder / "latest")  # resolve_checkpoint reads it
        ckpt = self.inside(resolve_checkpoint(folder))
        for part in (MODEL_FILE, "config.json", "ema.safetensors"):  # what loading reads (config.json: a v1's)
            if (ckpt / part).exists() or part == "ema.safetensors":
                self.inside(ckpt / part)
        return ckpt

    def sample(self, name: str, file: str) -> Path:
        """One of the run's sample grids, samples/step-N.png."""
        if not SAMPLE_NAME.fullmatch(file or ""):
            raise BadRequest(f"file {file[:80]!r}: a sample grid is named step-N.png", 400)
        path = self.inside(self.run(name) / "samples" / file)
        if not path.is_file():
            raise BadRequest(f"{name}/samples/{file}: no such sample grid", 404)
        return path

    def summary(self, name: str, now: float | None = None) -> dict:
        """What the Runs part shows: recipe, newest step, img/s, planned end, curves, newest sample grids."""
        folder = self.run(name)
        config = self._json(folder / "config.json")
        log_file = self.inside(folder / "log.jsonl")
        rows = read_log(log_file) if log_file.is_file() else []
        last = rows[-1] if rows else {}
        planned = last.get("planned_steps") or config.get("steps")
        updated = log_file.stat().st_mtime if log_file.is_file() else None
        grids = self.inside(folder / "samples")
        samples = sorted(p.name for p in grids.glob("step-*.png") if self.contains(p)) if grids.is_dir() else []
        return {
            "name": name, "preset": config.get("preset"), "kind": config.get("kind", "diffusion"),
            "step": last.get("step"), "planned_steps": planned, "loss": last.get("loss"), "lr": last.get("lr"),
            "img_per_s": last.get("img_per_s"), "elapsed_s": last.get("elapsed_s"),
            "checkpoint": self._latest(folder), "updated": updated,
            **plan(rows, planned, updated, time.time() if now is None else now),
            "curve": curve(rows), "samples": samples[-4:],
        }

    def _json(self, path: Path) -> dict:
        try:
            data = json.loads(self.inside(path).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _latest(self, folder: Path) -> str | None:
        """The newest complete checkpoint's name, from `latest` (written only after the checkpoint is)."""
        latest = folder / "latest"
        if not latest.is_file():
            return None
        try:
            return Path(self.inside(latest).read_text().strip()).name
        except (OSError, BadRequest):
            return None


def plan(rows: list[dict], planned: int | None, updated: float | None, now: float) -> dict:
    """{"state": training | done | stopped, "planned_end": epoch seconds or None} from the log's pace."""
    if not rows or updated is None:
        return {"state": "starting", "planned_end": None}
    step = rows[-1]["step"]
    if planned and step >= planned:
        return {"state": "done", "planned_end": updated}
    back = rows[max(0, len(rows) - 11)]  # seconds a step over the last ten log steps
    pace = ((rows[-1].get("elapsed_s", 0) - back.get("elapsed_s", 0)) / (step - back["step"])
            if step > back["step"] else None)
    log_every = step - rows[-2]["step"] if len(rows) > 1 else 1
    if now - updated > max(STOPPED_AFTER_S, 10 * log_every * (pace or 0)):  # ten log steps late: not training
        return {"state": "stopped", "planned_end": None}
    end = updated + (planned - step) * pace if planned and pace else None
    return {"state": "training", "planned_end": end}


def curve(rows: list[dict], points: int = CURVE_POINTS) -> dict:
    """step, loss and lr of at most `points` evenly spaced log rows (the last always among them)."""
    if len(rows) > points:
        stride = len(rows) / points
        rows = [rows[int(k * stride)] for k in range(points - 1)] + [rows[-1]]
    return {"step": [r["step"] for r in rows], "loss": [r.get("loss") for r in rows],
            "lr": [r.get("lr") for r in rows]}
