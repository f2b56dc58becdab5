"""The `animegen serve` page in a real browser: Debian's headless chromium, driven by Selenium through Debian's
chromedriver, against the real server in a subprocess. What a person sees is compared as element screenshots."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import urllib.parse
from pathlib import Path

import pytest

from serving import CHROMIUM, chromium, start_server

if not Path(CHROMIUM).exists():
    pytest.skip(f"Debian's chromium is not installed ({CHROMIUM}); apt-get install chromium chromium-driver",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from conftest import FAST  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("site")
    (base / "runs").mkdir()
    served = start_server(base / "serve.log", "--runs", str(base / "runs"), "--out", str(base / "handin"))
    served.base = base
    yield served
    served.stop()


@pytest.fixture(scope="module")
def page(site, tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("profile"))
    driver.get(site.url + "/")
    yield driver
    driver.quit()


def wait(driver, check, what: str, timeout: float = 180):
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: check(), message=what)


def shown(page, element_id: str, **asked: str) -> bytes:
    """The picture an element shows once it is drawn for a request with the `asked` parameters, as a screenshot."""
    element = page.find_element(By.ID, element_id)

    def drawn() -> bool:
        request = dict(urllib.parse.parse_qsl(element.get_attribute("data-key") or ""))
        return element.get_attribute("data-state") == "ready" and all(request.get(k) == v for k, v in asked.items())

    wait(page, drawn, f"{element_id} drawn for {asked}", 120)
    return element.screenshot_as_png


def type_into(page, element_id: str, text: str) -> None:
    field = page.find_element(By.ID, element_id)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(text)


@pytest.mark.slow
def test_the_page_loads_with_every_part(page):
    assert page.title == "animegen serve"
    for part in ("Draw", "Explore", "Watch a face being made", "Score", "Runs"):
        assert part in page.find_element(By.TAG_NAME, "main").text
    assert len(shown(page, "draw-grid", seed="0")) > 1000
    assert page.find_element(By.ID, "model").get_attribute("value") == "student"  # the shipped student first
    problems = [entry for entry in page.get_log("browser") if entry["level"] == "SEVERE"]
    assert problems == []


def test_the_guidance_box_is_for_the_model_with_a_guide(page):
    from selenium.webdriver.support.ui import Select

    box = page.find_element(By.ID, "guidance")
    assert box.get_attribute("disabled") is not None  # the student (the page's first model) has no guide
    Select(page.find_element(By.ID, "model")).select_by_value("served")
    wait(page, lambda: box.get_attribute("disabled") is None, "the guidance box enabled for the served model", 10)
    assert box.get_attribute("placeholder").startswith("own: 1.")
    type_into(page, "guidance", "1")
    shown(page, "draw-grid", model="served", guidance="1")  # the request carries it and is answered
    type_into(page, "guidance", "")
    Select(page.find_element(By.ID, "model")).select_by_value("student")
    wait(page, lambda: box.get_attribute("disabled") is not None, "the guidance box off again", 10)
    shown(page, "draw-grid", model="student")


def test_a_changed_seed_changes_the_grid_and_the_same_seed_brings_it_back(page):
    first = shown(page, "draw-grid", seed="0", num="16")
    type_into(page, "draw-seed", "7")
    assert shown(page, "draw-grid", seed="7", num="16") != first
    type_into(page, "draw-seed", "0")
    assert shown(page, "draw-grid", seed="0", num="16") == first


def test_the_slider_changes_the_picture(page):
    middle = shown(page, "explore-img", t="0.5")
    slider = page.find_element(By.ID, "explore-t")
    for _ in range(10):  # a person pressing the arrow key: each press is an input event
        slider.send_keys(Keys.ARROW_RIGHT)
    assert slider.get_attribute("value") == "0.7"
    moved = shown(page, "explore-img", t="0.7")
    assert moved != middle
    slider.send_keys(Keys.HOME)
    assert shown(page, "explore-img", t="0") not in (middle, moved)


def test_watch_shows_the_face_emerge_from_noise(page):
    wait(page, lambda: page.find_element(By.ID, "watch").get_attribute("data-state") == "ready", "watch frames")
    frame = page.find_element(By.ID, "watch-frame")
    canvas = page.find_element(By.ID, "watch-xt")
    frame.send_keys(Keys.HOME)
    noise, title = canvas.screenshot_as_png, page.find_element(By.ID, "watch-title").text
    frame.send_keys(Keys.END)
    assert canvas.screenshot_as_png != noise and title.startswith("t=1000 (frame 1 of")
    page.find_element(By.ID, "watch-play").click()
    wait(page, lambda: page.find_element(By.ID, "watch-play").text == "Play", "the animation ends", 30)
    assert "frame 3 of 3" in page.find_element(By.ID, "watch-title").text  # the student: noise and 2 steps


def test_an_out_of_range_number_shows_the_servers_message(page):
    type_into(page, "draw-num", "65")
    wait(page, lambda: "num: must be at most 64" in page.find_element(By.ID, "draw-error").text, "the message")
    type_into(page, "draw-num", "4")
    shown(page, "draw-grid", num="4")
    assert page.find_element(By.ID, "draw-error").text == ""


def test_a_run_that_cannot_be_read_is_named_and_the_others_still_show(page, site):
    runs = site.base / "runs"
    for name in ("fine", "broken"):
        (runs / name).mkdir()
        (runs / name / "config.json").write_text(json.dumps({"preset": "cpu", "steps": 10}))
    (runs / "fine" / "log.jsonl").write_text(json.dumps({"step": 3, "loss": 0.5, "lr": 1e-3}) + "\n")
    (site.base / "elsewhere.jsonl").write_text(json.dumps({"step": 9, "loss": 0.1}) + "\n")
    (runs / "broken" / "log.jsonl").symlink_to(site.base / "elsewhere.jsonl")
    card = wait(page, lambda: page.find_elements(By.CSS_SELECTOR, '.run[data-name="broken"]'), "the card")[0]
    wait(page, lambda: "outside the runs folder" in card.text, "its message")
    fine = wait(page, lambda: page.find_elements(By.CSS_SELECTOR, '.run[data-name="fine"]'), "the other card")[0]
    wait(page, lambda: fine.get_attribute("data-step") == "3", "the other run's step")
    assert "step 9" not in card.text


def test_score_shows_the_table_evaluate_prints(page, site, faces_dir):
    from selenium.webdriver.support.ui import Select

    folder = site.base / "runs" / "faces"
    folder.mkdir()
    for path in sorted(faces_dir.glob("*.jpg"))[:16]:
        (folder / path.name).write_bytes(path.read_bytes())
    Select(page.find_element(By.ID, "score-source")).select_by_value("folder")
    type_into(page, "score-folder", "faces")
    page.find_element(By.ID, "score-btn").click()
    result = page.find_element(By.ID, "score-result")
    wait(page, lambda: result.get_attribute("data-state") in ("done", "error"), "the scores", 300)
    lines = result.text.splitlines()
    assert lines[0] == str(folder) and lines[2].split() == ["metric", "value"], result.text
    assert any(line.split()[0] == "afd" and 0 <= float(line.split()[1]) <= 1 for line in lines[4:]), result.text


@pytest.mark.slow
def test_the_runs_part_follows_a_training_run(page, site, faces_dir, tmp_path):
    # the run is written twice, 4 steps and then a resume to 8, so the page must move from what the first wrote to
    # what the second writes, however fast the machine trains (8 tiny steps can end between two polls)
    run = site.base / "runs" / "live"

    def train(*extra: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "animegen", "train", "--data", str(faces_dir), "--out", str(run), *extra,
             *FAST, "--set", "model.image_size=16", "--save-every", "2", "--sample-every", "2", "--bf16", "off",
             "--cache-dir", str(tmp_path / "cache")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]

    train("--steps", "4")
    card = wait(page, lambda: page.find_elements(By.CSS_SELECTOR, '.run[data-name="live"]'), "the run's card")[0]
    wait(page, lambda: card.get_attribute("data-step") == "4", "the first run's last step", 30)
    grid = card.find_element(By.TAG_NAME, "img")
    wait(page, lambda: grid.get_attribute("data-file") == "step-0000004.png", "the first run's grid", 30)
    train("--resume", "--steps", "8")
    wait(page, lambda: card.get_attribute("data-step") == "8", "the resumed run's last step on the page", 30)
    wait(page, lambda: grid.get_attribute("data-file") == "step-0000008.png", "the newest sample grid", 30)
    # the final checkpoint is written after the last log row and grid: a poll between them shows the one before
    wait(page, lambda: "done" in card.text and "checkpoint step-0000008" in card.text, "the final checkpoint", 30)
    assert page.execute_script("return arguments[0].naturalWidth", grid) > 0  # the grid image loaded


@pytest.mark.slow
def test_download_writes_the_handin_equal_to_generate(page, site, tmp_path):
    from animegen.cli import main

    page.find_element(By.ID, "download-btn").click()
    result = page.find_element(By.ID, "download-result")
    wait(page, lambda: result.get_attribute("data-state") in ("done", "error"), "the hand-in", 900)
    assert result.get_attribute("data-state") == "done", result.text
    folder, tgz = site.base / "handin" / "images", site.base / "handin" / "images.tgz"
    assert sorted(p.name for p in folder.glob("*.jpg")) == sorted(f"{k}.jpg" for k in range(1, 1001))
    assert tgz.stat().st_size < 2_000_000 and f"{tgz.stat().st_size:,} bytes" in result.text
    assert site.get("/api/download/images.tgz")[2] == tgz.read_bytes()  # the link on the page
    # the same settings through the command line: the student with its own sampler, seeds 0-999
    assert main(["generate", "--sampler", "consistency", "--num", "1000", "--out", str(tmp_path / "cli"),
                 "--tgz", str(tmp_path / "cli.tgz")]) == 0
    assert [k for k in range(1, 1001) if (folder / f"{k}.jpg").read_bytes() != (tmp_path / "cli" / f"{k}.jpg")
            .read_bytes()] == []
    assert (tmp_path / "cli.tgz").read_bytes() == tgz.read_bytes()
    with tarfile.open(tgz) as archive:
        assert len(archive.getnames()) == 1000
    assert json.loads(site.get("/api/job")[2])["result"]["tgz_bytes"] == tgz.stat().st_size
