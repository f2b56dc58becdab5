"""Where animegen keeps caches: $ANIMEGEN_CACHE, else $XDG_CACHE_HOME/animegen, else ~/.cache/animegen."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """The per-user cache folder (created on first use)."""
    if os.environ.get("ANIMEGEN_CACHE"):
        root = Path(os.environ["ANIMEGEN_CACHE"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "animegen"
    root.mkdir(parents=True, exist_ok=True)
    return root
