"""One animegen process per output at a time: an OS lock (flock) on a small file, held while it writes.

A run directory is locked through `.lock` inside it, for the whole run. A `generate` output folder is locked
through `.NAME.lock` beside it: the folder itself is swapped whole for its staging folder, so a lock file inside
would be swapped away, and it would make the folder "not empty". That one is removed again when released.

The kernel drops the lock when its process ends, however it ends (kill -9 included), so a stale lock never
blocks; the file holds the holder's PID only to name it in the refusal.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from animegen.core.errors import UserError
from animegen.core.outputs import writing

try:
    import fcntl
except ImportError:  # Windows: no flock; outputs there are not protected against a second writer
    fcntl = None

LOCK_NAME = ".lock"
PID_WAIT_S = 1.0  # how long a refused process waits for the holder to write its PID (it does so right after locking)


class FileLock:
    """An exclusive lock through the file `path` on the output `guarded`; `release()` (or the process ending)
    frees it. remove=True deletes the file on release (a lock file beside an output, not inside it)."""

    def __init__(self, path: Path, guarded: Path, remove: bool = False):
        self.path, self.guarded, self.remove = Path(path), Path(guarded), remove
        self.fd: int | None = None
        if fcntl is None:
            return
        for _ in range(100):
            with writing(self.path):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise UserError(f"{guarded} is in use by another animegen process (PID {holder}); wait for it to "
                                f"end or choose another --out") from None
            if _still_there(fd, self.path):
                break
            os.close(fd)  # the last holder removed this file while we opened it: lock the one that is there now
        else:
            raise UserError(f"{self.path}: could not be locked (it keeps being replaced); run again")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        if self.remove:  # removed while still held, so whoever opens it next finds a new file (see _still_there)
            self.path.unlink(missing_ok=True)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def run_lock(run_dir: Path) -> FileLock:
    """The lock of a run directory: `.lock` inside it, kept (it also marks the folder as a run)."""
    return FileLock(Path(run_dir) / LOCK_NAME, run_dir)


def folder_lock(out: Path) -> FileLock:
    """The lock of an output folder that is replaced whole: `.NAME.lock` beside it, removed on release."""
    out = Path(out)
    return FileLock(out.parent / f".{out.name}.lock", out, remove=True)


def _holder(fd: int) -> str:
    """The PID written in a lock file; the holder writes it just after locking, so an empty file is waited on."""
    deadline = time.monotonic() + PID_WAIT_S
    while True:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text or time.monotonic() > deadline:
            return text or "?"
        time.sleep(0.01)


def _still_there(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open as `fd` (a releasing holder may have removed it meanwhile)."""
    try:
        here, held = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)
