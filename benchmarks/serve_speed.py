"""Server time of `animegen serve` for the page's two live pictures: a 16-face Draw grid and one Explore (slider)
frame, with the shipped student by default; and the frames a second the slider gets when a page keeps one
request in flight (what the page does: the newest slider position wins).

    python benchmarks/serve_speed.py [--model student|served] [--checkpoint RUN] [--reps 20] [--seconds 10]

Starts the real server on a free port of 127.0.0.1, warms it up, then reads the server's own compute time from
each answer's Server-Timing header (queueing and HTTP not counted) and the round trip the page sees.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from versions_speed import cpu_name


def start_server(args: argparse.Namespace, workdir: Path) -> tuple[subprocess.Popen, str]:
    log = workdir / "serve.log"
    cmd = [sys.executable, "-m", "animegen", "serve", "--port", "0", "--runs", str(workdir), "--out",
           str(workdir / "handin")] + (["--checkpoint", args.checkpoint] if args.checkpoint else [])
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    for _ in range(600):
        found = re.search(r"serving (http://\S+?)/ ", log.read_text())
        if found:
            return proc, found.group(1)
        if proc.poll() is not None:
            sys.exit(f"the server exited:\n{log.read_text()}")
        time.sleep(0.1)
    sys.exit("the server did not start in 60 s")


def ask(url: str) -> tuple[float, float]:
    """(server compute seconds, round-trip seconds) of one request."""
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        response.read()
        header = response.headers.get("Server-Timing", "")
    return float(re.search(r"dur=([\d.]+)", header).group(1)) / 1000, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="student (default where it ships) or served")
    parser.add_argument("--checkpoint", help="serve this checkpoint (then --model served)")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the slider moves")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_server(args, Path(tmp))
        try:
            model = f"&model={args.model}" if args.model else ""
            for _ in range(3):  # loads the model, warms the allocator and oneDNN's kernels
                ask(f"{base}/api/draw?num=16&seed=0{model}")
                ask(f"{base}/api/explore?a=0&b=1&t=0.5{model}")
            grid = [ask(f"{base}/api/draw?num=16&seed={k * 16}{model}") for k in range(args.reps)]
            frame = [ask(f"{base}/api/explore?a=0&b=1&t={k / args.reps:.3f}{model}") for k in range(args.reps)]
            frames, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds:  # one request in flight, as the page keeps
                ask(f"{base}/api/explore?a=0&b=1&t={(frames % 50) / 50:.2f}{model}")
                frames += 1
            fps = frames / (time.perf_counter() - start)
        finally:
            proc.terminate()
            proc.wait()
    print(f"{cpu_name()}; model: {args.model or 'the default'}; {args.reps} requests each, medians")
    print("| request | server s | round trip s |\n|---|---|---|")
    for name, rows in (("16-face Draw grid", grid), ("one Explore frame", frame)):
        print(f"| {name} | {statistics.median(r[0] for r in rows):.3f} | {statistics.median(r[1] for r in rows):.3f} |")
    print(f"slider: {fps:.1f} frames a second with one request in flight")


if __name__ == "__main__":
    main()
