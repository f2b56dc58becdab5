"""Who computes when: one thread draws the page's pictures in arrival order from a bounded queue, one long job
(a Download or a Score) runs beside it, and a gate lets only one of them use the CPU at a time — the page's
requests first, between the long job's batches — so concurrent users neither crash nor starve the machine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

from animegen.core.errors import UserError
from animegen.serve.params import BadRequest

log = logging.getLogger(__name__)
MAX_PENDING = 32  # page requests waiting at once; more are told to come back (status 503)


class Gate:
    """One user of the CPU at a time; an urgent user (a page request) goes before a waiting long job."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._busy = False
        self._urgent = 0

    @contextlib.contextmanager
    def use(self, urgent: bool) -> Iterator[None]:
        with self._cv:
            self._urgent += urgent
            while self._busy or (not urgent and self._urgent):
                self._cv.wait()
            self._urgent -= urgent
            self._busy = True
        try:
            yield
        finally:
            with self._cv:
                self._busy = False
                self._cv.notify_all()


class Worker:
    """The page's requests, one at a time on one thread, at most MAX_PENDING waiting."""

    def __init__(self, gate: Gate, max_pending: int = MAX_PENDING):
        self.gate, self.max_pending = gate, max_pending
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="animegen-serve")
        self._pending = 0
        self._lock = threading.Lock()

    async def run(self, fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
        """fn(*args) on the worker thread: (its result, seconds it computed, queueing not counted)."""
        with self._lock:
            if self._pending >= self.max_pending:
                raise BadRequest(f"the server is busy ({self._pending} requests waiting); try again in a moment", 503)
            self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._timed, fn, args)
        finally:
            with self._lock:
                self._pending -= 1

    def _timed(self, fn: Callable[..., Any], args: tuple) -> tuple[Any, float]:
        with self.gate.use(urgent=True):
            start = time.perf_counter()
            return fn(*args), time.perf_counter() - start

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class JobState:
    """What the page's progress bar shows: kind (download | score), state (running | done | error), images done
    of total, a phase line, and the result or the error message."""

    kind: str = ""
    state: str = "idle"
    done: int = 0
    total: int = 0
    phase: str = ""
    result: dict = field(default_factory=dict)
    error: str = ""
    started: float = 0.0
    seconds: float = 0.0


class LongJobs:
    """At most one Download or Score at a time, on its own thread; a second is refused until it ends."""

    def __init__(self) -> None:
        self.state = JobState()
        self._lock = threading.Lock()

    def status(self) -> dict:
        with self._lock:
            return asdict(self.state)

    def start(self, kind: str, total: int, fn: Callable[[Callable[..., None]], dict]) -> dict:
        """Run fn(progress) in a thread; progress(done=..., phase=...) moves the bar; fn returns the result."""
        with self._lock:
            if self.state.state == "running":
                raise BadRequest(f"a {self.state.kind} is running ({self.state.done}/{self.state.total}); wait for "
                                 f"it to finish", 409)
            self.state = JobState(kind, "running", 0, total, "starting", started=time.time())
        threading.Thread(target=self._run, args=(fn,), name=f"animegen-{kind}", daemon=True).start()
        return self.status()

    def _progress(self, done: int | None = None, phase: str | None = None) -> None:
        with self._lock:
            self.state.done = self.state.done if done is None else done
            self.state.phase = self.state.phase if phase is None else phase

    def _run(self, fn: Callable[[Callable[..., None]], dict]) -> None:
        try:
            result, error = fn(self._progress), ""
        except (UserError, BadRequest) as err:
            result, error = {}, str(err)
        except Exception as err:  # noqa: BLE001 - the page gets one line; the server's log gets the traceback
            log.error("%s failed:\n%s", self.state.kind, traceback.format_exc())
            result, error = {}, f"internal error ({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
        with self._lock:
            self.state.state = "error" if error else "done"
            self.state.result, self.state.error = result, error
            self.state.phase = error or "done"
            self.state.seconds = round(time.time() - self.state.started, 1)
