"""Driving the annotation page in a headless Chromium: the browser tests, the speed benchmark, the screenshot.

Uses Debian's chromium and chromium-driver through selenium (the `browser` extra); it never downloads a browser.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from eventcount.errors import EventcountError

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required"]


def chromium(user_data_dir: Path, width: int = 1200, height: int = 900) -> Any:
    """A headless Chromium WebDriver with a fresh profile in `user_data_dir`."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            raise EventcountError(f"{path} not found: install Debian's chromium and chromium-driver "
                                  "(apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait_for(driver: Any, script: str, timeout_s: float = 15.0, poll_s: float = 0.005) -> Any:
    """Wait until `script` (a JavaScript expression) is truthy in the page; its value. The page checks it
    itself every `poll_s`, so waiting costs no round trips through the driver."""
    from selenium.common.exceptions import TimeoutException

    driver.set_script_timeout(timeout_s)
    check = (f"const done = arguments[arguments.length - 1];"
             f"const check = () => {{ const value = ({script}); if (value) done(value);"
             f" else setTimeout(check, {poll_s * 1000:g}); }};"
             "check();")
    try:
        return driver.execute_async_script(check)
    except TimeoutException:
        raise TimeoutError(f"the page never satisfied: {script}") from None


def wait_clip(driver: Any, index: int, timeout_s: float = 15.0) -> None:
    """Wait until the page shows clip `index` and is ready for keys."""
    wait_for(driver, f"document.body.dataset.clip === '{index}' && document.body.dataset.ready === '1'", timeout_s)


def wait_saved(driver: Any, timeout_s: float = 15.0) -> None:
    """Wait until every answer the page sent has been answered by the server."""
    wait_for(driver, "document.body.dataset.pending === '0'", timeout_s)


def press(driver: Any, keys: str) -> None:
    """Type keys into the page (selenium's `Keys` values for Enter, Tab, arrows)."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(keys).perform()


class ServerProcess:
    """`eventcount annotate ARGS --no-browser` in a child process; `url` is read from its output."""

    def __init__(self, args: list[str], cwd: Path | None = None, timeout_s: float = 60.0) -> None:
        command = [sys.executable, "-c", "from eventcount.cli import app; app()", "annotate", *args, "--no-browser"]
        self.process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_url(timeout_s)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def _wait_url(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.output.append(line)
            if line.startswith("Counting at "):
                return line.split()[2]
        self.kill()
        raise RuntimeError("the annotation server did not start:\n" + "".join(self.output))

    def kill(self) -> None:
        """SIGKILL: nothing gets a chance to flush or clean up."""
        self.process.kill()
        self.process.wait(10)
