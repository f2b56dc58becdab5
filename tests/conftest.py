"""Shared test fixtures: the real faces beside the checkout, tiny configs that train in seconds."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# pytest-xdist runs the suite in N worker processes (pyproject: -n auto): each worker, and every process its tests
# start, gets its share of the cores instead of all of them, so N workers do not fight over the same cores. Set
# before torch is imported, which reads it once.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))

import torch  # noqa: E402

from animegen.core.device import cpu_has_native_bf16  # noqa: E402

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces-1k"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# tests of what differs between the precisions run in fp32 everywhere and in bf16 where the CPU has it in hardware
# (AVX512-BF16, AMX), where `--bf16 auto` picks it; emulated bf16 (AVX2-only CPUs) is never picked by default
NATIVE_BF16 = pytest.mark.skipif(not cpu_has_native_bf16(), reason="bf16 is emulated on this CPU (no AVX512-BF16 "
                                                                   "or AMX): auto never picks it here")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules holding a test marked `first` run first (the rest keep their order): under pytest-xdist a long test
    that starts last leaves every other worker idle while it ends."""
    first = {item.path for item in items if item.get_closest_marker("first")}
    items.sort(key=lambda item: item.path not in first)


STARTED_IN = Path.cwd()  # the folder pytest was started from: no test may read or write it
_SKIP = {".git", "__pycache__", ".pytest_cache"}  # pytest's and git's own files, ignored by .gitignore


def folder_state(top: Path, depth: int = 3) -> dict[str, tuple[int, int]]:
    """Every entry down to `depth` levels below `top`, with (mtime_ns, size) for files: a file made, removed or
    rewritten there, or a folder made or removed, changes this. (Folders' own mtimes are left out: Python's
    bytecode caches appear in them as code is first imported.)"""
    state = {}
    stack = [(top, 0)]
    while stack:
        folder, level = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name in _SKIP:
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            st = entry.stat(follow_symlinks=False)
            state[os.path.relpath(entry.path, top)] = (0, 0) if is_dir else (st.st_mtime_ns, st.st_size)
            if level < depth and is_dir:
                stack.append((Path(entry.path), level + 1))
    return state


@pytest.fixture(scope="session")
def _start_folder_state() -> dict:
    return folder_state(STARTED_IN)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch, _start_folder_state):
    """Each test runs in a fresh empty folder with its own cache dir, so it never sees a developer's caches or
    the folder the suite was started from (where a user may have run `animegen generate` first, which writes
    ./submission); and a test that still writes there fails."""
    monkeypatch.setenv("ANIMEGEN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    torch.manual_seed(0)
    yield
    if STARTED_IN == Path(tempfile.gettempdir()):  # every process on the machine writes there: nothing to learn
        return
    changed = sorted(set(folder_state(STARTED_IN).items()) ^ set(_start_folder_state.items()))
    if changed:
        _start_folder_state.clear()
        _start_folder_state.update(folder_state(STARTED_IN))  # one failure per change, not one per later test
        pytest.fail(f"the test changed the folder the suite was started from ({STARTED_IN}): "
                    f"{sorted({name for name, _ in changed})[:5]}")


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if not FACES.is_dir():
        pytest.fail(f"real test images missing: {FACES} (the ../shared folder beside the checkout)")
    return FACES


TINY = {  # a UNet small enough to train a few steps in well under a second each
    "model.dim": 8, "model.dim_mults": [1, 2], "model.attn_resolutions": [8], "model.image_size": 16,
    "optim.batch_size": 8, "sample.num": 4, "sample.steps": 3, "log_every": 1,
}


# a 64 px model small enough that a CLI round trip takes seconds
FAST = ["--set", "model.dim=8", "--set", "model.dim_mults=[1,2]", "--set", "model.attn_resolutions=[]",
        "--batch-size", "8", "--set", "sample.num=4", "--set", "sample.steps=2", "--set", "log_every=1"]


SMALL_GAN = {  # a StyleGAN2 at 32 px small enough for a few steps a second
    "model.image_size": 32, "model.z_dim": 32, "model.w_dim": 32, "model.channels": 32, "model.max_channels": 32,
    "model.mapping_layers": 2, "optim.batch_size": 8, "optim.r1_every": 2, "sample.num": 4, "sample.every": 0,
    "log_every": 1,
}


def cli(*args: str, env: dict | None = None, timeout: float = 300, check: bool = True, process: bool = False):
    """Run `animegen ARGS` as a user would and return a CompletedProcess (returncode, stdout, stderr): in this
    process through the CLI's entry function (no second torch start-up), or as a real `python -m animegen` process
    when the test is about what only a process shows (`process=True`, or an environment of its own)."""
    import subprocess
    import sys

    if env is not None or process:
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run([sys.executable, "-m", "animegen", *args], capture_output=True, text=True,
                              timeout=timeout, env=full_env)
    else:
        proc = _in_process(list(args))
    if check and proc.returncode != 0:
        raise AssertionError(f"animegen {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def _in_process(args: list[str]):
    """animegen.cli.main(args) with its stdout, stderr and log lines captured as a process would print them."""
    import contextlib
    import io
    import logging
    import subprocess

    from animegen.cli import main

    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("animegen: %(message)s"))
    logger = logging.getLogger("animegen")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if "-v" in args or "--verbose" in args else logging.INFO)
    logger.propagate = False  # pytest's capture still sees it through our handler's stream, once
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as stop:  # argparse's errors and --help
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    return subprocess.CompletedProcess(["animegen", *args], code, out.getvalue(), err.getvalue())
