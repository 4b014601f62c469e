"""The dashboard in a real browser: `semrec serve` on the tiny snapshot with intent/, driven in headless
Debian Chromium (bench/screenshot.py's `chromium` and `served`): search, more like this, ask, live panel.

Marked `browser`: in CI (and wherever /usr/bin/chromium is installed) it runs, and fails if the browser
is missing; `.ci/run` installs chromium + chromium-driver."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # bench/ scripts are not a package
from screenshot import chromium, results, served, wait_until  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

pytestmark = pytest.mark.browser


def titles(driver, list_id: str) -> list[str]:
    return [item.find_element(By.CLASS_NAME, "title").text for item in results(driver, list_id)]


@contextmanager
def dashboard(root: str, catalog: str, cache: Path) -> Iterator[WebDriver]:
    """`semrec serve` of `catalog`, and a browser on its page once the page is ready."""
    command = ["serve", "--root", root, "--catalog", catalog, "--cache", str(cache), "--poll-seconds", "0"]
    with served(command) as url, chromium() as driver:
        driver.get(url)
        wait_until(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        yield driver


def test_a_person_searches_compares_clicks_more_like_this_and_asks(ask_root, tmp_path):
    with dashboard(ask_root, "movies", tmp_path / "cache") as driver:
        assert "movies" in driver.find_element(By.ID, "snapshot").text
        assert Select(driver.find_element(By.ID, "system-a")).first_selected_option.get_attribute("value") == "shipped"
        # the shipped default is the fusion the snapshot's fusion stage chose (hybrid); beside it, dense alone
        assert Select(driver.find_element(By.ID, "system-b")).first_selected_option.get_attribute("value") == "dense"

        # a query: both systems answer side by side; BM25 alone sees the product code, so the fused default
        # ranks i08 first (dense search, blind to the code, ties it with the linen shirt i07)
        driver.find_element(By.ID, "query").send_keys("linen sku77")
        driver.find_element(By.ID, "search").click()
        wait_until(driver, lambda d: results(d, "results-a") and results(d, "results-b"))
        assert results(driver, "results-a")[0].get_attribute("data-item-id") == "i08"
        assert "White linen trousers" in titles(driver, "results-b")
        assert "in both lists" in driver.find_element(By.ID, "overlap").text

        # more like this on a result: both columns now list items like it, never the item itself
        first = results(driver, "results-a")[0]
        clicked = first.get_attribute("data-item-id")
        first.find_element(By.CLASS_NAME, "more-like").click()
        wait_until(driver, lambda d: d.find_element(By.ID, "status-b").text.startswith("more like"))
        for side in ("results-a", "results-b"):
            ids = [item.get_attribute("data-item-id") for item in results(driver, side)]
            assert ids and clicked not in ids

        # a conversational request: intent, entities, suggestions each with its explanation sentence
        box = driver.find_element(By.ID, "query")
        box.clear()
        box.send_keys("something like Red summer dress")
        driver.find_element(By.ID, "ask").click()
        wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#ask-results .explanation"))
        assert "intent: recommend" in driver.find_element(By.ID, "ask-request").text
        assert "titles: Red summer dress" in driver.find_element(By.ID, "ask-request").text
        explanations = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#ask-results .explanation")]
        assert explanations[0].startswith("If you enjoyed Red summer dress, you might like")

        # the live panel: one row per system queried, with p50 / p99 / QPS over its queries
        driver.find_element(By.ID, "bench").click()
        wait_until(driver, lambda d: d.find_element(By.ID, "bench").is_enabled()
                   and d.find_elements(By.CSS_SELECTOR, "#live-rows tr[data-system='dense'] td.count"))
        rows = {row.get_attribute("data-system"): row for row in driver.find_elements(By.CSS_SELECTOR, "#live-rows tr")}
        assert set(rows) == {"shipped", "dense"}
        for row in rows.values():
            assert int(row.find_element(By.CLASS_NAME, "count").text) == 22  # search + more-like + 20 replays
            p50, p99 = (float(row.find_element(By.CLASS_NAME, name).text) for name in ("p50", "p99"))
            assert 0 < p50 <= p99 and float(row.find_element(By.CLASS_NAME, "qps").text) > 0

        problems = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert problems == []  # no script error, no request refused by the page's same-origin policy


def test_a_catalog_without_intent_disables_ask(published_root, tmp_path):
    with dashboard(published_root, "fashion", tmp_path / "cache") as driver:
        assert not driver.find_element(By.ID, "ask").is_enabled()
        driver.find_element(By.ID, "query").send_keys("red dress\n")  # Enter submits the search
        wait_until(driver, lambda d: results(d, "results-a"))
        assert titles(driver, "results-a")[:2] == ["Red summer dress", "Red evening dress"]
