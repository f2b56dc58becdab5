"""Where training images come from: a folder (searched recursively) or a .zip / .tar / .tar.gz archive.

A source lists its members and hands out their raw bytes; decoding happens elsewhere. Each source also has a
fingerprint (names, sizes, mtimes) that keys the decoded-tensor cache.
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
from animegen.core.imagefiles import IMAGE_SUFFIXES, list_images, natural_key

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


def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.lower().endswith(IMAGE_SUFFIXES) and not base.startswith(".") and "__MACOSX" not in name


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
                infos = [i for i in archive.infolist() if not i.is_dir() and _is_image_name(i.filename)]
                rows = [(i.filename, i.file_size, i.date_time) for i in infos]
        elif lower.endswith(ARCHIVE_SUFFIXES):
            with tarfile.open(path) as archive:
                infos = [m for m in archive.getmembers() if m.isfile() and _is_image_name(m.name)]
                rows = [(m.name, m.size, m.mtime) for m in infos]
        else:
            raise UserError(f"{path}: not a folder or a .zip/.tar/.tar.gz archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise UserError(f"{path}: cannot read the archive ({err}); re-download it or unpack it into a folder") from None
    rows.sort(key=lambda r: natural_key(Path(r[0])))  # same order as a folder: 2.jpg before 10.jpg
    stat = path.stat()
    names = tuple(r[0] for r in rows)
    return Source(path, names, _digest([(str(path.resolve()), stat.st_size, stat.st_mtime_ns), *rows]))
