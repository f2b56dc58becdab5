"""What torch.compile needs from the machine, for training and sampling alike: inductor's CPU backend builds C++
kernels (so it needs a compiler), its GPU kernels are Triton's (so sm70 or newer), and its kernels are cached in
the user cache so a second run starts fast."""

from __future__ import annotations

import os
import shutil

from animegen.core.paths import user_cache_dir


def cxx_compiler() -> str | None:
    """The C++ compiler inductor's CPU backend would use ($CXX, else c++/g++/clang++ on PATH), or None."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["c++", "g++", "clang++"]
    return next((path for name in names if (path := shutil.which(name))), None)


def inductor_cache_dir() -> str:
    """Compiled kernels go to the user cache, so a second run of the same model starts fast."""
    return os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(user_cache_dir() / "inductor"))


TRITON_MIN_CAPABILITY = (7, 0)  # Triton, which writes inductor's GPU kernels, needs Volta (sm70) or newer


def triton_runs(cuda_capability: tuple[int, int]) -> bool:
    """Whether inductor can compile for a GPU of this compute capability (a P100, sm60, cannot)."""
    return tuple(cuda_capability) >= TRITON_MIN_CAPABILITY
