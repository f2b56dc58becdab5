"""`animegen serve`: a local web page to draw faces, walk between seeds, watch a face being made, follow the runs
under a folder while they train, score images and write the hand-in (docs/serve.md).

Needs the `serve` extra (`pip install 'animegen[serve]'`: Starlette and uvicorn); the CLI imports this package
only when the command runs, so `animegen --help` stays quick."""

from __future__ import annotations

import errno
import socket
import sys
from pathlib import Path

from animegen.core.errors import UserError


def serve(checkpoint: str | None = None, runs: Path = Path("."), host: str = "127.0.0.1", port: int = 8765,
          out: Path = Path("handin"), real: Path | None = None, device: str = "auto") -> None:
    """Serve the page on host:port until Ctrl-C (port 0: a free port, printed)."""
    try:
        import uvicorn

        from animegen.serve.app import LOOPBACK, ServeConfig, create_app
    except ImportError as err:
        raise UserError(f"serve needs its web server ({err.name} is missing): pip install 'animegen[serve]'") from None
    app = create_app(ServeConfig(checkpoint, Path(runs), Path(out), real, device, host))
    sock = listen(host, port)
    shown = f"[{host}]" if ":" in host else host
    if host not in LOOPBACK:
        print(f"animegen: warning: serving on {host}: anyone who can reach port {sock.getsockname()[1]} can draw "
              f"with the models, read the runs under {Path(runs).resolve()} and write {Path(out).resolve()}",
              file=sys.stderr)
    print(f"animegen: serving http://{shown}:{sock.getsockname()[1]}/ (runs under {Path(runs).resolve()}, hand-in "
          f"into {Path(out).resolve()}; Ctrl-C to stop)", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3))
    server.run(sockets=[sock])


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one line saying why not (port taken, unknown host)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as err:
        reason = "in use; choose another --port" if err.errno == errno.EADDRINUSE else err.strerror or str(err)
        raise UserError(f"{host}:{port}: cannot listen there ({reason})") from None
