"""Output paths: one place that turns "cannot write here" into one line naming the path and what to do."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator

from animegen.core.errors import UserError

_REASONS = {
    errno.ENOSPC: "no space left on the device; free some space and run again",
    errno.EDQUOT: "disk quota exceeded; free some space and run again",
    errno.EFBIG: "file too large for this file system or limit; choose another place",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "not permitted; choose a folder you can write to",
    errno.EROFS: "read-only file system; choose a folder you can write to",
    errno.EISDIR: "is a folder; give a file name",
    errno.ENOTDIR: "a part of this path is a file, not a folder; choose another path",
    errno.EEXIST: "exists and is not a folder; choose another path",
}


def describe(err: OSError, path: str | os.PathLike) -> str:
    """One line for an OSError met while writing `path`."""
    where = err.filename or path
    return f"{where}: {_REASONS.get(err.errno, err.strerror or str(err))}"


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError raised inside into a UserError naming `path` (or the file the OS names)."""
    try:
        yield
    except OSError as err:
        raise UserError(describe(err, path)) from None


def output_dir(path: str | os.PathLike) -> Path:
    """Make folder `path` (and its parents) or say in one line why it cannot be."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder; choose another path")
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
    return path


def output_file(path: str | os.PathLike) -> Path:
    """Check that file `path` can be written (its folder made if needed) before minutes of work go into it."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give a file name")
    output_dir(path.parent if str(path.parent) else Path("."))
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{path}: permission denied; choose a file you can write to")
    return path
