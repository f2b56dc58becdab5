"""Where training images come from: a folder (searched recursively) or a .zip / .tar / .tar.gz archive.

A source lists its members and hands out their raw bytes; decoding happens elsewhere. Each source also has a
fingerprint (names, sizes, mtimes) that keys the decoded-tensor cache. What animegen wrote itself (run
directories, generation folders, ...) is left out of both, folders and archives alike (core/written.py).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from animegen.core.errors import UserError
from animegen.core.imagefiles import is_image_name, list_images, natural_key
from animegen.core.written import skip_written

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


@dataclass(frozen=True)
class Source:
    """A set of image files: `path` is a folder or an archive."""

    path: Path
    names: tuple[str, ...]      # member names (relative paths inside the folder or archive)
    fingerprint: str            # hash of names, sizes and mtimes: changes when any file changes

    def iter_bytes(self) -> Iterator[tuple[str, bytes | None]]:
        """(name, raw bytes) for each member, in `names` order; bytes is None if the member cannot be read."""
        if self.path.is_dir():
            for name in self.names:
                try:
                    yield name, (self.path / name).read_bytes()
                except OSError:
                    yield name, None
        elif self.path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(self.path) as archive:
                for name in self.names:
                    yield name, _safe_read(lambda: archive.read(name))
        else:
            with tarfile.open(self.path) as archive:
                members = {m.name: m for m in archive.getmembers() if m.isfile()}
                for name in self.names:
                    yield name, _safe_read(lambda: archive.extractfile(members[name]).read())


def _safe_read(read) -> bytes | None:
    try:
        return read()
    except (OSError, KeyError, zipfile.BadZipFile, tarfile.TarError, EOFError):
        return None


def _digest(rows: list[tuple]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(repr(row).encode())
    return h.hexdigest()[:20]


def open_source(path: str | os.PathLike) -> Source:
    """Index the images at `path` (folder or archive) without decoding them."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path}: no such folder or archive (give --data a folder of images or a .zip/.tar.gz)")
    if path.is_dir():
        files = list_images(path)
        rows = []
        for f in files:
            try:
                st = f.stat()
                rows.append((str(f.relative_to(path)), st.st_size, st.st_mtime_ns))
            except OSError:  # a dangling symlink: skipped like any unreadable file
                continue
        names = tuple(r[0] for r in rows)
        return Source(path, names, _digest(rows))
    lower = path.name.lower()
    try:
        if lower.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                members = {i.filename: (i.file_size, i.date_time) for i in archive.infolist() if not i.is_dir()}
        elif lower.endswith(ARCHIVE_SUFFIXES):
            with tarfile.open(path) as archive:
                members = {m.name: (m.size, m.mtime) for m in archive.getmembers() if m.isfile()}
        else:
            raise UserError(f"{path}: not a folder or a .zip/.tar/.tar.gz archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise UserError(f"{path}: cannot read the archive ({err}); re-download it or unpack it into a folder") from None
    # macOS's resource forks are not images, and would hide that a zipped folder is the archive's one root
    kept, skipped = skip_written((n for n in members if "__MACOSX" not in n.split("/")), is_image_name)
    skipped.note(path)
    rows = [(name, *members[name]) for name in kept]
    rows.sort(key=lambda r: natural_key(Path(r[0])))  # same order as a folder: 2.jpg before 10.jpg
    stat = path.stat()
    names = tuple(r[0] for r in rows)
    return Source(path, names, _digest([(str(path.resolve()), stat.st_size, stat.st_mtime_ns), *rows]))
