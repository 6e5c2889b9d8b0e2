"""The annotation page in a real headless Chromium: count with keys, tap along, kill the server, restart, finish.

Needs Debian's chromium and chromium-driver and the `browser` extra (selenium); `.ci/run` installs them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import require

from eventcount.annotate.headless import ServerProcess, chromium, press, wait_clip, wait_for, wait_saved
from eventcount.annotations import read_events
from eventcount.labels import read_count_table

RATE = 16000


def _recording(path: Path, seconds: float, hits_s: list[float]) -> None:
    samples = np.random.default_rng(0).normal(0, 0.01, int(seconds * RATE)).astype(np.float32)
    for time_s in hits_s:
        start = int(time_s * RATE)
        samples[start:start + 800] += 0.8 * np.exp(-np.arange(800) / 150, dtype=np.float32)
    sf.write(path, samples, RATE)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[object]:
    require("selenium", "chromium", "chromedriver")  # the `browser` extra and Debian's packages (CI has them)
    browser = chromium(tmp_path / "profile")
    try:
        yield browser
    finally:
        browser.quit()


@pytest.mark.slow
def test_count_tap_kill_restart_finish(tmp_path: Path, driver) -> None:
    from selenium.webdriver.common.keys import Keys

    _recording(tmp_path / "a.wav", 6.0, [0.5, 1.0, 2.2, 4.4])
    _recording(tmp_path / "b.wav", 4.0, [0.3, 1.1, 2.5])
    args = ["a.wav", "b.wav", "--classes", "KD,SD", "--window", "2s", "-o", "labels.csv"]
    server = ServerProcess(args, cwd=tmp_path)
    try:
        driver.get(server.url)
        wait_clip(driver, 0)
        for index, keys in enumerate(["2" + Keys.TAB + "1", "0", "12"]):  # three clips with the keyboard
            press(driver, keys)
            press(driver, Keys.ENTER)
            wait_clip(driver, index + 1)
        press(driver, Keys.ARROW_LEFT)  # back to the clip just counted: its answer, not a stale copy
        wait_clip(driver, 2)
        assert driver.execute_script("return [...document.querySelectorAll('td.count')].map(c => c.textContent)") \
            == ["12", "0"]
        press(driver, Keys.ARROW_RIGHT)
        wait_clip(driver, 3)
        wait_for(driver, "!document.getElementById('audio').paused && document.getElementById('audio').currentTime > 0")
        for key in "asa":  # tap along on clip 3 (b.wav 0-2 s): KD, SD, KD
            press(driver, key)
            time.sleep(0.15)
        wait_saved(driver)
        assert driver.execute_script("return [...document.querySelectorAll('td.count')].map(c => c.textContent)") \
            == ["2", "1"]
        port = server.url.rsplit(":", 1)[1].strip("/")
    finally:
        server.kill()  # SIGKILL: every answer must already be on disk

    table = read_count_table(tmp_path / "labels.csv")
    assert [(c.path.name, c.start_s, c.counts) for c in table.clips] == [
        ("a.wav", 0, [2, 1]), ("a.wav", 2, [0, 0]), ("a.wav", 4, [12, 0]), ("b.wav", 0, [2, 1])]
    server = ServerProcess([*args, "--port", port], cwd=tmp_path)
    try:
        driver.refresh()
        wait_clip(driver, 4)  # resumes at the first clip without a count
        press(driver, "3")
        press(driver, Keys.ENTER)
        wait_for(driver, "document.body.dataset.done === '1'")
        press(driver, Keys.ARROW_LEFT)
        wait_clip(driver, 3)  # the tapped clip came back with its taps
        assert driver.execute_script("return document.querySelectorAll('td.count')[0].textContent") == "2"
    finally:
        server.kill()

    table = read_count_table(tmp_path / "labels.csv")
    assert [(c.path.name, c.start_s, c.end_s, c.counts) for c in table.clips] == [
        ("a.wav", 0, 2, [2, 1]), ("a.wav", 2, 4, [0, 0]), ("a.wav", 4, 6, [12, 0]), ("b.wav", 0, 2, [2, 1]),
        ("b.wav", 2, 4, [3, 0])]
    taps = read_events(tmp_path / "b.events.tsv")
    assert [e.label for e in taps] == ["KD", "SD", "KD"]
    assert all(0 <= e.time_s < 2 for e in taps) and taps == sorted(taps, key=lambda e: e.time_s)
    assert not (tmp_path / "a.events.tsv").exists()
    check = subprocess.run([sys.executable, "-c", "from eventcount.cli import app; app()", "prepare", "--check",
                            "labels.csv"], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
def test_sensor_clip_is_plotted_and_tapped_on_a_clock(tmp_path: Path, driver) -> None:
    times = np.arange(0, 4, 0.02)
    (tmp_path / "walk.csv").write_text("time_s,ax,ay\n" + "".join(f"{t:.2f},{np.sin(9 * t):.4f},{np.cos(3 * t):.4f}\n"
                                                                  for t in times))
    server = ServerProcess(["walk.csv", "--classes", "step", "-o", "labels.csv"], cwd=tmp_path)
    try:
        driver.get(server.url)
        wait_clip(driver, 0)
        assert driver.execute_script("return ui.clip.sensor && ui.clip.plot.channels.length") == 2
        press(driver, " ")
        for _ in range(2):
            time.sleep(0.2)
            press(driver, "a")
        wait_saved(driver)
    finally:
        server.kill()
    assert [c.counts for c in read_count_table(tmp_path / "labels.csv").clips] == [[2]]
    taps = read_events(tmp_path / "walk.events.tsv")
    assert len(taps) == 2 and all(0 < e.time_s < 2 and e.label == "step" for e in taps)


@pytest.mark.slow
def test_closing_the_page_right_after_a_key_loses_nothing(tmp_path: Path, driver) -> None:
    _recording(tmp_path / "a.wav", 4.0, [0.5])
    server = ServerProcess(["a.wav", "--classes", "KD", "-o", "labels.csv"], cwd=tmp_path)
    try:
        driver.get(server.url)
        wait_clip(driver, 0)
        press(driver, "7")
        driver.get("about:blank")  # the page goes away at once
        deadline = time.monotonic() + 10
        while not (tmp_path / "labels.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.kill()
    assert [c.counts for c in read_count_table(tmp_path / "labels.csv").clips] == [[7]]


@pytest.mark.slow
def test_one_drawing_loop_however_many_clips(tmp_path: Path, driver) -> None:
    _recording(tmp_path / "a.wav", 40.0, [0.5])
    server = ServerProcess(["a.wav", "--classes", "KD", "-o", "labels.csv"], cwd=tmp_path)
    try:
        driver.get(server.url)
        wait_clip(driver, 0)
        driver.execute_script("""
            window.frames_ = {calls: 0, stamps: new Set()};
            const original = window.requestAnimationFrame.bind(window);
            window.requestAnimationFrame = (callback) => original((t) => {
                frames_.calls += 1; frames_.stamps.add(t); callback(t); });""")
        for index in range(1, 12):
            press(driver, "n")
            wait_clip(driver, index)
        wait_for(driver, "!document.getElementById('audio').paused")
        press(driver, "w")  # the spectrogram
        assert driver.execute_script("return ui.view === 'spectrogram' && document.getElementById('view')"
                                     ".classList.contains('on') && ui.clip.plot.spectrogram.bands > 0")
        driver.execute_script("frames_.calls = 0; frames_.stamps.clear();")
        time.sleep(0.5)
        calls, frames = driver.execute_script("return [frames_.calls, frames_.stamps.size]")
    finally:
        server.kill()
    assert frames > 0 and calls <= frames + 1  # one callback per frame, not one per clip visited
