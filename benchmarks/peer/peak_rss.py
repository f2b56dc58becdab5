"""Run a command and report the peak resident memory of its whole process tree (workers included).

    python benchmarks/peer/peak_rss.py --json out.json -- animegen generate --num 256 --out /tmp/x

Polls /proc every 0.2 s and sums VmRSS over the command and all its descendants (a DataLoader's worker
processes count: they are memory the user's machine must have). Linux only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write {command, peak_rss_mib, seconds, returncode} here")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(rss_kib(p) for p in tree(proc.pid)))
        time.sleep(0.2)
    result = {"command": command, "peak_rss_mib": round(peak / 1024, 1),
              "seconds": round(time.perf_counter() - start, 1), "returncode": proc.returncode}
    print(json.dumps(result), file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
