"""A screenshot of the dashboard on a published snapshot (the README's image), in headless Chromium.

    python bench/screenshot.py --root published --catalog movies --out docs/dashboard.png
    python bench/screenshot.py --root published --catalog movies --out docs/dashboard.png \
        --compare-pytorch models/movies/finetuned       # the paper's A/B: `semrec demo`, torch on the right

Starts `semrec serve` (or `semrec demo`) on a free local port, then on the page: a search (both systems
side by side), "more like this" on the first result, the replay button (fills the live latency
panel), the search again and an ask with its explanations; saves the whole page as a PNG and prints
the live panel. `semrec demo` embeds the catalog with PyTorch before it answers (minutes on 2 cores). Needs Debian's `chromium`
and `chromium-driver` (apt; nothing is downloaded at run time) and selenium (the dev extra).
`chromium()` and `served()` are also what tests/test_dashboard_browser.py drives the page with.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[WebDriver]:
    """Headless Debian Chromium through its chromedriver, with a fresh profile; console logs kept."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} missing: apt-get install -y chromium chromium-driver")
    with tempfile.TemporaryDirectory(prefix="semrec-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(command: list[str], timeout_s: float = 1800) -> Iterator[str]:
    """Run `semrec <command> --host 127.0.0.1 --port <free>` until /healthz answers; yields the base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "pipelines.cli", *command, "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"`semrec {' '.join(command)}` did not come up:\n"
                                           f"{log.read().decode(errors='replace')[-3000:]}") from None
                    time.sleep(0.3)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], Any], timeout_s: float = 60) -> Any:
    return WebDriverWait(driver, timeout_s).until(condition)


def results(driver: WebDriver, list_id: str) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, f"#{list_id} li.item")


def tour(driver: WebDriver, url: str, query: str, request: str) -> list[str]:
    """"More like this" on the first hit of `query`, the replay button, `query` again (what the columns
    then show), and an ask (if the snapshot ships intent/); returns the live panel's rows as text."""
    driver.get(url)
    wait_until(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    box = driver.find_element(By.ID, "query")
    box.send_keys(query)
    driver.find_element(By.ID, "search").click()
    wait_until(driver, lambda d: results(d, "results-a") and results(d, "results-b"))
    results(driver, "results-a")[0].find_element(By.CLASS_NAME, "more-like").click()
    wait_until(driver, lambda d: d.find_element(By.ID, "status-a").text.startswith("more like"))
    driver.find_element(By.ID, "bench").click()
    wait_until(driver, lambda d: d.find_element(By.ID, "bench").is_enabled(), timeout_s=600)
    driver.find_element(By.ID, "search").click()
    wait_until(driver, lambda d: not d.find_element(By.ID, "status-a").text.startswith("more like"))
    if driver.find_element(By.ID, "ask").is_enabled():
        box.clear()
        box.send_keys(request)
        driver.find_element(By.ID, "ask").click()
        wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#ask-results .explanation"), timeout_s=300)
    return [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#live tr")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="published")
    parser.add_argument("--catalog", default="movies")
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    parser.add_argument("--query", default="a tense heist thriller in los angeles")
    parser.add_argument("--ask", default="something like Heat but funnier")
    parser.add_argument("--compare-pytorch", metavar="MODEL", help="run `semrec demo --compare-pytorch MODEL`")
    parser.add_argument("--documents", help="with --compare-pytorch: the catalog's documents.parquet (demo's default)")
    parser.add_argument("--width", type=int, default=1400)
    args = parser.parse_args(argv)
    command = ["serve", "--root", args.root, "--catalog", args.catalog, "--poll-seconds", "0"]
    if args.compare_pytorch:
        command = ["demo", "--root", args.root, "--catalog", args.catalog, "--compare-pytorch", args.compare_pytorch,
                   *(["--documents", args.documents] if args.documents else [])]
    with served(command) as url, chromium(args.width) as driver:
        print("\n".join(tour(driver, url, args.query, args.ask)))  # the live panel: latency per system
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(base64.b64decode(shot["data"]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
