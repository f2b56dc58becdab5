"""The web app: routes that check a request, hand its work to the worker (or start a long job) and answer with
a picture or JSON. Errors are JSON {"error": "..."} with a 4xx status; an unexpected one is a 500 with one line
(the traceback goes to the server's log), never a traceback page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from animegen.core.errors import UserError
from animegen.core.limits import POSITIVE, at_least
from animegen.serve import handin, pictures
from animegen.serve.params import MAX_FRAMES, MAX_GRID, MAX_HANDIN, BadRequest, Params, check_work, limits, sampling
from animegen.serve.pool import ModelPool
from animegen.serve.runs import RunsReader
from animegen.serve.samplers import sampler_options
from animegen.serve.worker import Gate, LongJobs, Worker

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
TRUSTED_HOSTS = ["127.0.0.1", "localhost"]  # Host headers a loopback server answers (IPv4 and its name)
MAX_BODY = 16_384  # bytes of a JSON request
# the page loads nothing from elsewhere; pictures arrive as blob: and data: URLs
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'",
                "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


@dataclass(frozen=True)
class ServeConfig:
    """`animegen serve`'s options: what it reads (checkpoint, runs, real) and the one folder it writes (out)."""

    checkpoint: str | None = None
    runs: Path = Path(".")
    out: Path = Path("handin")
    real: Path | None = None
    device: str = "auto"
    host: str = "127.0.0.1"


class Server:
    """The pieces the routes share: models, runs, the worker, the long job, and the config."""

    def __init__(self, config: ServeConfig):
        if config.real is not None and not Path(config.real).is_dir():
            raise UserError(f"{config.real}: not a folder of real faces (give --real the folder SWD compares with)")
        self.config = config
        self.runs = RunsReader(config.runs)
        self.pool = ModelPool(config.checkpoint, self.runs, config.device)
        self.gate = Gate()
        self.worker = Worker(self.gate)
        self.jobs = LongJobs()

    # --- the page's pictures: one worker call each (load the model, check the request, draw)

    async def draw(self, request: Request) -> Response:
        p = Params(request.query_params)
        model_id, seed = p.text("model", self.pool.default()), p.seed()
        num = p.number("num", POSITIVE, 16, high=MAX_GRID)

        def work() -> bytes:
            model = self.pool.get(model_id)
            model, spec, psi = sampling(p, model)
            p.done()
            check_work(num, spec)
            return pictures.draw_grid(model, seed, num, spec, psi)

        return picture(*await self.worker.run(work))

    async def explore(self, request: Request) -> Response:
        p = Params(request.query_params)
        model_id, seed_a, seed_b = p.text("model", self.pool.default()), p.seed("a", 0), p.seed("b", 1)
        t = p.number("t", at_least(0.0, float), 0.5, high=1.0)

        def work() -> bytes:
            model = self.pool.get(model_id)
            model, spec, psi = sampling(p, model)
            p.done()
            check_work(1, spec)
            return pictures.explore_frame(model, seed_a, seed_b, t, spec, psi)

        return picture(*await self.worker.run(work))

    async def watch(self, request: Request) -> Response:
        p = Params(request.query_params)
        model_id, seed = p.text("model", self.pool.default()), p.seed()
        frames = p.number("frames", at_least(2), 20, high=MAX_FRAMES)

        def work() -> dict:
            model = self.pool.get(model_id)
            if model.kind != "diffusion":
                raise BadRequest("Watch shows a diffusion model's denoising steps; a StyleGAN2 draws in one pass")
            model, spec, _psi = sampling(p, model)
            p.done()
            check_work(1, spec)
            return pictures.watch_frames(model, seed, frames, spec)

        frames_json, seconds = await self.worker.run(work)
        return JSONResponse(frames_json, headers=timing(seconds))

    # --- runs, read only

    async def runs_list(self, request: Request) -> Response:
        Params(request.query_params).done()

        def summary(name: str) -> dict:
            try:
                return self.runs.summary(name)
            except BadRequest as err:  # e.g. a log linked from outside --runs: named, not read
                return {"name": name, "error": str(err)}

        def read() -> dict:
            return {"root": str(self.runs.root), "runs": [summary(n) for n in self.runs.names()]}

        return JSONResponse(await run_in_threadpool(read), headers={"Cache-Control": "no-store"})

    async def run_sample(self, request: Request) -> Response:
        p = Params(request.query_params)
        name, file = p.text("name", ""), p.text("file", "")
        p.done()
        path = await run_in_threadpool(self.runs.sample, name, file)
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})

    # --- long jobs: the hand-in and scores

    async def download(self, request: Request) -> Response:
        p = Params(await json_body(request))
        model_id, seed = p.text("model", self.pool.default()), p.seed()
        num = p.number("num", POSITIVE, MAX_HANDIN, high=MAX_HANDIN)
        model, _ = await self.worker.run(self.pool.get, model_id)
        model, spec, psi = sampling(p, model)
        p.done()
        out, gate = self.config.out, self.gate
        return JSONResponse(self.jobs.start("download", num, lambda progress: handin.write_handin(
            model, out, num, seed, spec, psi, gate, progress)), status_code=202)

    async def score(self, request: Request) -> Response:
        p = Params(await json_body(request))
        source = p.choice("source", ("handin", "folder", "model"), "handin")
        real, device, gate, out = self.config.real, self.config.device, self.gate, self.config.out
        if source == "model":
            num = p.number("num", POSITIVE, MAX_HANDIN, high=MAX_HANDIN)
            model, _ = await self.worker.run(self.pool.get, p.text("model", self.pool.default()))
            model, spec, psi = sampling(p, model)
            p.done()
            return JSONResponse(self.jobs.start("score", num, lambda progress: handin.score_model(
                model, out, num, spec, psi, real, device, gate, progress)), status_code=202)
        if source == "folder":
            folder = await run_in_threadpool(self.runs.path, p.text("folder", ""), "folder")
        else:
            folder = out / "images"
            if not folder.is_dir():
                raise BadRequest(f"{folder}: no hand-in yet; press Download first", 404)
        p.done()
        return JSONResponse(self.jobs.start("score", 0, lambda progress: handin.score(
            folder, real, device, gate, progress)), status_code=202)

    async def job(self, request: Request) -> Response:
        Params(request.query_params).done()
        return JSONResponse(self.jobs.status(), headers={"Cache-Control": "no-store"})

    async def archive(self, request: Request) -> Response:
        Params(request.query_params).done()
        tgz = self.config.out / "images.tgz"
        if not tgz.is_file():
            raise BadRequest(f"{tgz}: not written yet; press Download first", 404)
        return FileResponse(tgz, media_type="application/gzip", filename="images.tgz")

    async def settings(self, request: Request) -> Response:
        Params(request.query_params).done()
        return JSONResponse({
            "models": self.pool.choices(), "default_model": self.pool.default(), "samplers": sampler_options(),
            "limits": limits(), "runs_root": str(self.runs.root), "out": str(self.config.out.resolve()),
            "real": str(self.config.real) if self.config.real else None,
        })


def picture(data: bytes, seconds: float) -> Response:
    return Response(data, media_type="image/png", headers=timing(seconds))


def timing(seconds: float) -> dict:
    """Server-Timing (shown by the browser's developer tools, read by benchmarks/serve_speed.py)."""
    return {"Server-Timing": f"compute;dur={seconds * 1000:.1f}", "Cache-Control": "no-store"}


async def json_body(request: Request) -> dict:
    """A small JSON object. Only JSON is taken, so a form on another web site cannot start a job here."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadRequest("send the parameters as JSON (Content-Type: application/json)", 415)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BadRequest(f"request body over {MAX_BODY} bytes", 413)
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object of parameters")
    return data


async def refused(request: Request, err: Exception) -> Response:
    if isinstance(err, BadRequest):
        return JSONResponse({"error": str(err)}, status_code=err.status)
    if isinstance(err, HTTPException):
        return JSONResponse({"error": f"{request.url.path}: {err.detail}"}, status_code=err.status_code)
    return JSONResponse({"error": str(err)}, status_code=400)  # UserError: the CLI's one line


async def crashed(request: Request, err: Exception) -> Response:
    """A bug, not the user's mistake: one line for the page; Starlette logs the traceback on the server."""
    first = str(err).splitlines()[0][:200] if str(err) else ""
    return JSONResponse({"error": f"internal error ({type(err).__name__}: {first}); see the server's log"},
                        status_code=500)


def create_app(config: ServeConfig) -> Starlette:
    """The Starlette app for `config` (the model pool and runs reader are made now; models load on first use,
    the default one in the background at start)."""
    server = Server(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        warm = asyncio.create_task(server.worker.run(server.pool.get, server.pool.default()))
        warm.add_done_callback(lambda task: task.cancelled() or task.exception())  # a failure shows on first use
        yield
        server.worker.close()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    routes = [
        Route("/", index), Route("/api/config", server.settings), Route("/api/draw", server.draw),
        Route("/api/explore", server.explore), Route("/api/watch", server.watch),
        Route("/api/runs", server.runs_list), Route("/api/runs/sample", server.run_sample),
        Route("/api/download", server.download, methods=["POST"]), Route("/api/score", server.score, methods=["POST"]),
        Route("/api/job", server.job), Route("/api/download/images.tgz", server.archive),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = []
    if config.host in TRUSTED_HOSTS:  # a web page elsewhere cannot reach it through a DNS name of its own (rebinding)
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=TRUSTED_HOSTS))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={BadRequest: refused, UserError: refused, HTTPException: refused,
                                        Exception: crashed})
    app.state.server = server
    return app
