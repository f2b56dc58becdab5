"""The models a page may draw with, each loaded once per checkpoint and shared by every request.

Ids: "served" (--checkpoint, or the model shipped with animegen), "student" (the few-step student that ships
with the served model, where one does) and "run:NAME" (the newest complete checkpoint of a run under --runs; a newer checkpoint is a new
model). At most `keep` models stay loaded; the least recently used goes first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from animegen.api import Model, load
from animegen.assets import shipped_model
from animegen.core.errors import UserError
from animegen.runs.checkpoint import is_model_folder, resolve_checkpoint
from animegen.runs.model_file import GUIDE_DIR, STUDENT_DIR, read_model_file
from animegen.serve.params import BadRequest
from animegen.serve.runs import RunsReader

SERVED, STUDENT, RUN = "served", "student", "run:"


class ModelPool:
    """Checkpoint folder -> loaded Model (EMA weights, bf16 and compile as `generate`'s defaults: auto)."""

    def __init__(self, checkpoint: str | None, runs: RunsReader, device: str = "auto", keep: int = 3):
        self.served = resolve_checkpoint(checkpoint) if checkpoint else shipped_model()
        # the student that ships with the served model (the shipped model's, or an export's): the default model
        self.student = self.served / STUDENT_DIR if is_model_folder(self.served / STUDENT_DIR) else None
        self.runs, self.device, self.keep = runs, device, keep
        self._models: OrderedDict[Path, Model] = OrderedDict()
        self._lock = threading.Lock()

    def default(self) -> str:
        """The model the page draws with first: the served model's student where one ships with it, so the grid
        follows typing."""
        return STUDENT if self.student is not None else SERVED

    def choices(self) -> list[dict]:
        """[{"id", "label"}] for the page's model menu (runs are added by the page from the Runs list), with
        "guidance", the weight it samples with, for a model that ships with a guide."""
        found = [{"id": SERVED, "label": f"{self.served.parent.name}/{self.served.name}"
                  if self.served.name.startswith("step-") else self.served.name}]
        if is_model_folder(self.served / GUIDE_DIR):
            found[0]["guidance"] = read_model_file(self.served).guidance
        if self.student is not None:
            found.insert(0, {"id": STUDENT, "label": f"{found[0]['label']} student (few steps)"})
        return found

    def checkpoint(self, model_id: str) -> Path:
        """The checkpoint folder an id names; a run's is found (and checked to lie under --runs) now."""
        if model_id == SERVED:
            return self.served
        if model_id == STUDENT and self.student is not None:
            return self.student
        if model_id.startswith(RUN):
            return self.runs.checkpoint(model_id[len(RUN):])
        raise BadRequest(f"model {model_id[:80]!r}: unknown; choose {', '.join(c['id'] for c in self.choices())} "
                         f"or run:NAME for a run under --runs")

    def get(self, model_id: str) -> Model:
        """The loaded model (loading it on first use); call from the worker, loading takes a second or two."""
        folder = self.checkpoint(model_id)
        with self._lock:
            if folder in self._models:
                self._models.move_to_end(folder)
                return self._models[folder]
        try:
            model = load(folder, self.device, "auto", "auto")
        except UserError as err:  # e.g. a run's trainer replaced the checkpoint while it loaded
            raise BadRequest(str(err), 409) from None
        with self._lock:
            self._models[folder] = model
            while len(self._models) > self.keep:
                self._models.popitem(last=False)
        return model
