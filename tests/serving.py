"""Start the real `animegen serve` in a subprocess on a free port (tests of the server and of the page)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Served:
    proc: subprocess.Popen
    url: str
    log: Path

    def get(self, path: str, headers: dict | None = None, data: bytes | None = None, timeout: float = 120
            ) -> tuple[int, dict, bytes]:
        """(status, headers, body) of a request to the server; errors are answers too."""
        request = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        status, _, raw = self.get(path, {"Content-Type": "application/json"}, json.dumps(body).encode())
        return status, json.loads(raw)

    def wait_job(self, timeout: float = 600) -> dict:
        """The long job's state once it is no longer running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = json.loads(self.get("/api/job")[2])
            if job["state"] != "running":
                return job
            time.sleep(0.5)
        raise AssertionError(f"the job is still running after {timeout} s: {job}")

    def rss_bytes(self) -> int:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) * 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(log: Path, *args: str, timeout: float = 180) -> Served:
    """`python -m animegen serve --port 0 ARGS` (a free port, read from its first line), ready to answer."""
    handle = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "animegen", "serve", "--port", "0", *args],
                            stdout=handle, stderr=subprocess.STDOUT, env=os.environ.copy())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"serving (http://\S+?)/ ", log.read_text())
        if found:
            served = Served(proc, found.group(1), log)
            try:
                if served.get("/api/config", timeout=30)[0] == 200:
                    return served
            except OSError:
                pass
        if proc.poll() is not None:
            raise AssertionError(f"animegen serve exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"animegen serve did not start in {timeout} s:\n{log.read_text()[-3000:]}")


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"  # Debian's (.ci/run installs them)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1400"]


def chromium(profile: Path):
    """Headless Debian chromium driven by its own chromedriver (nothing is downloaded), with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
