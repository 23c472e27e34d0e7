"""Fixtures for the dashboard: a served demo deployment and a real headless Chromium.

``demo_server`` runs ``tally demo --serve`` (a small scenario on the embedded chain, then
``tally serve``'s app on it) in a child process on a free port, once per test module,
and stops it at the end. ``browser`` is Selenium driving Debian's ``chromium`` through
``/usr/bin/chromedriver`` (nothing downloaded; the tests skip when they are missing,
``.ci/run`` installs them), with the page's console log kept for the assertions.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

# the API's fixtures (the real app over the embedded chain's space) for test_pages.py
from tests.api.conftest import client, ctx, ctx_client, sign_in  # noqa: F401

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TALLY = (sys.executable, "-m", "service.cli")
DEMO_ARGS = ("--receipts", "60", "--checkpoints", "3", "--audit-receipts", "10")
START_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class DemoServer:
    url: str
    out: Path
    summary: dict[str, Any]

    def participant(self, name: str) -> str:
        return next(p["address"] for p in self.summary["participants"] if p["name"] == name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_demo(out: Path) -> Iterator[DemoServer]:
    """``tally demo --serve`` in a child process until the generator is closed."""
    port = _free_port()
    log = (out.parent / "demo-serve.log").open("wb")
    env = {**os.environ, "TALLY_RATE_LIMIT_PER_S": "0"}
    proc = subprocess.Popen(
        [*TALLY, "demo", *DEMO_ARGS, "--out", str(out), "--serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"tally demo --serve exited {proc.returncode}:\n"
                    + (out.parent / "demo-serve.log").read_text()[-3000:]
                )
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("tally demo --serve did not start in time")
            time.sleep(0.5)
        summary = json.loads((out / "summary.json").read_text())
        yield DemoServer(url=url, out=out, summary=summary)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    yield from serve_demo(tmp_path_factory.mktemp("demo") / "out")


def chrome(width: int = 1280, height: int = 900) -> Any:
    """Headless Debian Chromium under Selenium, with the console log kept."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    if width < 500:  # below headless Chromium's smallest window: emulate the phone's screen
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
        )
    return driver


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = chrome()
    yield driver
    driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The console's SEVERE entries since the last call (failed loads included)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
