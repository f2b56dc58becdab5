"""What animegen wrote, recognised by its own files, so that looking for images never finds animegen's outputs.

A run directory (config.json beside log.jsonl, checkpoints/, `latest` or the run's .lock) holds sample grids and a
loss plot; a generation folder (its manifest) holds generated faces; a comparison report (report.json and
report.md) holds both; a staging folder (`.NAME.tmp-PID` / `.NAME.old-PID` beside a generation, `.tmp-step-N-PID`
in checkpoints/) holds half of one. Training on a folder that holds any of these would learn from animegen's own
images, so data discovery leaves them out and says so in one line.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterable

from animegen.core.lock import LOCK_NAME

log = logging.getLogger(__name__)

GENERATION_MANIFEST = ".animegen-generate.json"  # written last into a generation folder; lists its files
RUN_FILES = ("log.jsonl", "checkpoints", "latest", LOCK_NAME)  # any one of them beside config.json: a run
REPORT_FILES = ("report.json", "report.md")  # `animegen compare`'s report folder
_STAGING = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)")
_CHECKPOINT_STAGING = re.compile(r"\.tmp-step-\d+-\d+")
SHOWN = 3  # folders named per kind in the note


def kind_of(name: str, entries: Collection[str]) -> str | None:
    """What animegen folder `name` (holding the file and folder names `entries`) is, or None for anyone else's."""
    if _STAGING.fullmatch(name) or _CHECKPOINT_STAGING.fullmatch(name):
        return "staging folder"
    if GENERATION_MANIFEST in entries:
        return "generation folder"
    if "config.json" in entries and any(f in entries for f in RUN_FILES):
        return "run directory"
    if all(f in entries for f in REPORT_FILES):
        return "comparison report"
    return None


def staging_folder(out: Path, kind: str, pid: int | None = None) -> Path:
    """Where a generation into `out` stages its images (kind "tmp") or parks the previous ones ("old")."""
    return out.parent / f".{out.name}.{kind}-{os.getpid() if pid is None else pid}"


def staging_folders(out: Path) -> list[tuple[Path, str, int]]:
    """(folder, "tmp" | "old", PID) of every staging folder beside `out` of a generation into `out`."""
    found = []
    if out.parent.is_dir():
        for entry in out.parent.iterdir():
            match = _STAGING.fullmatch(entry.name)
            if match and match["name"] == out.name and entry.is_dir() and not entry.is_symlink():
                found.append((entry, match["kind"], int(match["pid"])))
    return sorted(found)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:  # past any PID this system can have
        return False
    return True


@dataclass
class Skipped:
    """Image files left out because animegen wrote them, by the kind of folder they were in."""

    folders: dict[str, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, folder: str, images: int) -> None:
        self.folders[kind].append((folder, images))

    @property
    def total(self) -> int:
        return sum(n for rows in self.folders.values() for _, n in rows)

    def note(self, root: str | os.PathLike) -> None:
        """One log line saying how many image files were left out, where, and why (nothing if none were)."""
        if not self.total:
            return
        parts = []
        for kind, rows in sorted(self.folders.items()):
            rows = sorted(rows)
            names = ", ".join(name for name, _ in rows[:SHOWN]) + (", ..." if len(rows) > SHOWN else "")
            where = f"{len(rows)} {kind}s" if len(rows) > 1 else f"a {kind}"
            parts.append(f"{sum(n for _, n in rows)} in {where} ({names})")
        log.warning("%s: left out %d image files that animegen wrote itself: %s", root, self.total, "; ".join(parts))


def skip_written(names: Iterable[str], is_image) -> tuple[list[str], Skipped]:
    """Member names of an archive ("a/b/1.jpg") less those inside animegen's folders: (kept names, Skipped).

    `is_image(name)` says which names count. A lone top-level folder holding every member is the archive's root
    (a zipped folder), never left out, as the folder given to `list_images` is not."""
    names = list(names)
    split = {name: [p for p in name.split("/") if p not in ("", ".")] for name in names}
    entries: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for parts in split.values():
        for i, part in enumerate(parts):
            entries[tuple(parts[:i])].add(part)
    root_depth = 1 if len(entries[()]) == 1 and all(len(p) > 1 for p in split.values()) else 0
    marked = {folder: kind for folder, inside in entries.items()
              if len(folder) > root_depth and (kind := kind_of(folder[-1], inside))}
    kept, skipped = [], defaultdict(int)
    for name, parts in split.items():
        if not is_image(name):
            continue
        # the outermost of animegen's folders around it, if any (the root excepted)
        outer = next((tuple(parts[:i]) for i in range(root_depth + 1, len(parts)) if tuple(parts[:i]) in marked),
                     None)
        if outer is None:
            kept.append(name)
        else:
            skipped[outer] += 1
    result = Skipped()
    for folder, count in sorted(skipped.items()):
        result.add(marked[folder], "/".join(folder), count)
    return kept, result
