"""How fast the annotation page lets a keyboard user count: clips per second the UI sustains.

    python bench/annotate_speed.py [--minutes 10] [--window 2s]

Counts a recording (default: a generated 10-minute one with three classes of hits) in `--window` clips with the
keyboard in headless Chromium: per clip it types the true count of each class (digits, Tab between classes),
presses Enter and waits until the page shows the next clip ready for keys. The clock is this script's: from the
first key to the last clip saved. The written labels.csv is then compared with the true counts.
Needs the `browser` extra and Debian's chromium + chromium-driver.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from eventcount.annotate.headless import ServerProcess, chromium, press, wait_clip, wait_for, wait_saved
from eventcount.labels import read_count_table
from eventcount.prepare import windows
from eventcount.synthetic import CLASSES, synthetic_recording
from eventcount.units import parse_duration

RATE = 44100


def true_counts(times: dict[str, np.ndarray], duration_s: float, window_s: float) -> list[list[int]]:
    return [[int(((t >= start) & (t < end)).sum()) for t in times.values()]
            for start, end in windows(duration_s, window_s, None)]


def script_seconds(driver) -> float:
    """The page's JavaScript time so far (Chrome's Performance.getMetrics ScriptDuration)."""
    metrics = driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "ScriptDuration")


def count_all(driver, counts: list[list[int]]) -> tuple[list[float], list[float]]:
    """Type every clip's counts and go on; the seconds each clip took (key to next clip ready), and the page's
    script time at the start, after the first tenth of the clips, before the last tenth and at the end."""
    from selenium.webdriver.common.keys import Keys

    driver.execute_cdp_cmd("Performance.enable", {})
    tenth = max(1, len(counts) // 10)
    took, script = [], []
    for index, clip in enumerate(counts):
        if index in (0, tenth, len(counts) - tenth):
            script.append(script_seconds(driver))
        start = time.perf_counter()
        press(driver, Keys.TAB.join(str(n) for n in clip) + Keys.ENTER)
        if index + 1 < len(counts):
            wait_clip(driver, index + 1)
        took.append(time.perf_counter() - start)
    wait_for(driver, "document.body.dataset.done === '1'")
    wait_saved(driver)
    script.append(script_seconds(driver))
    return took, script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--window", default="2s")
    args = parser.parse_args()
    window_s = parse_duration(args.window, "--window")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        duration_s = args.minutes * 60
        audio, events = synthetic_recording(duration_s, RATE, seed=0)
        sf.write(folder / "take.wav", audio, RATE)
        times = {name: np.array([e.time_s for e in events if e.label == name]) for name in CLASSES}
        counts = true_counts(times, duration_s, window_s)
        server = ServerProcess(["take.wav", "--classes", ",".join(CLASSES), "--window", args.window,
                                "-o", "labels.csv"], cwd=folder)
        driver = chromium(folder / "profile")
        try:
            driver.get(server.url)
            wait_clip(driver, 0)
            start = time.perf_counter()
            took, script = count_all(driver, counts)
            total = time.perf_counter() - start
        finally:
            driver.quit()
            server.kill()
        written = [c.counts for c in read_count_table(folder / "labels.csv").clips]
    load = os.getloadavg()
    print(f"# {len(counts)} clips of {window_s:g} s ({duration_s / 60:g} min), classes {','.join(CLASSES)}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(f"counted in {total:.1f} s: {len(counts) / total:.1f} clips/s; per clip median "
          f"{statistics.median(took) * 1000:.0f} ms, 95th percentile {np.percentile(took, 95) * 1000:.0f} ms")
    tenth = max(1, len(took) // 10)
    print(f"median of the first {tenth} clips {statistics.median(took[:tenth]) * 1000:.0f} ms, of the last "
          f"{tenth} {statistics.median(took[-tenth:]) * 1000:.0f} ms (a page that slowed down would show here)")
    print(f"page script time per clip: first {tenth} clips {(script[1] - script[0]) / tenth * 1000:.0f} ms, "
          f"last {tenth} {(script[3] - script[2]) / tenth * 1000:.0f} ms")
    print(f"labels.csv matches the true counts: {written == counts}")


if __name__ == "__main__":
    main()
