"""Write docs/serve.png: the `animegen serve` page in headless chromium, with a run training beside it.

    PYTHONPATH=src python scripts/serve_screenshot.py --data ../shared/data/faces-1k [--train-seconds 90]

Trains the `cpu` preset for a minute or two into a temporary runs folder (so the Runs part shows a live run),
serves the page against it, waits for every picture, then saves a full-page screenshot as a 256-colour PNG
(under 300 KB). Needs Debian's chromium and chromium-driver, and the test extra (selenium).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="faces to train the demo run on")
    parser.add_argument("--train-seconds", type=float, default=90)
    parser.add_argument("--out", type=Path, default=Path("docs/serve.png"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="animegen-shot-"))
    train = subprocess.Popen([sys.executable, "-m", "animegen", "train", "--data", args.data, "--preset", "cpu",
                              "--out", str(tmp / "runs" / "cpu-demo"), "--max-minutes", "10", "--set", "log_every=5",
                              "--sample-every", "25", "--cache-dir", str(tmp / "cache")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp / "serve.log"
    (tmp / "runs").mkdir(exist_ok=True)
    server = subprocess.Popen([sys.executable, "-m", "animegen", "serve", "--port", "0", "--runs", str(tmp / "runs"),
                               "--out", str(tmp / "handin")], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        while not (found := re.search(r"serving (http://\S+?)/ ", log.read_text())):
            time.sleep(0.2)
        time.sleep(args.train_seconds)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in [*FLAGS, f"--user-data-dir={tmp / 'profile'}", "--window-size=1280,1400"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        driver.get(found.group(1) + "/")
        ready = "return ['draw-grid', 'explore-img', 'watch'].every(id => document.getElementById(id).dataset.state" \
                " === 'ready') && document.querySelector('.run img[data-file]') !== null"
        while not driver.execute_script(ready):
            time.sleep(0.5)
        # the "drawn in" notes: seconds on whatever machine takes the picture; BENCHMARKS.md has measured ones
        driver.execute_script("for (const id of ['draw-time', 'explore-time'])"
                              " document.getElementById(id).textContent = ''")
        driver.execute_script("document.getElementById('watch-frame').value = 1;"
                              "document.getElementById('watch-frame').dispatchEvent(new Event('input'))")
        time.sleep(1)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, height)
        time.sleep(1)
        shot = tmp / "page.png"
        driver.save_screenshot(str(shot))
        driver.quit()
    finally:
        server.terminate()
        train.terminate()
    with Image.open(shot) as page:
        page.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
