"""One writer per run directory: an OS lock (flock) held for the whole run.

The kernel drops the lock when its process ends, however it ends (kill -9 included), so a stale lock never
blocks; the file holds the holder's PID only to name it in the refusal.
"""

from __future__ import annotations

import os
from pathlib import Path

from animegen.core.errors import UserError
from animegen.core.outputs import writing

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not protected against a second writer
    fcntl = None

LOCK_NAME = ".lock"


class RunLock:
    """An exclusive lock on `run_dir`; `release()` (or the process ending) frees it."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.fd: int | None = None
        if fcntl is None:
            return
        with writing(self.path):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(f"{run_dir} is in use by another animegen process (PID {holder}); wait for it to end "
                            f"or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
