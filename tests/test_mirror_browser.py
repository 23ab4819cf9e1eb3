"""A real browser reads the archive from a sub-path mirror, with every other host unreachable."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from archive_site import populate

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGES = ("", "en/", "en/2026/10/pinned-report/", "en/2026/09/first-update/", "en/tags/%D0%BF%D0%BE%D0%BB%D0%B8%D1%86%D0%B8%D1%8F/",
         "ru/2026/10/pinned-report/", "en/actions/")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
                                reason="needs Debian's chromium and chromedriver (/usr/bin)")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def mirror(site, tmp_path):
    """Serve a built site at http://127.0.0.1:PORT/mirror/ from a threaded server."""
    populate(site).build()
    served = tmp_path / "served"
    shutil.copytree(site.output, served / "mirror")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mirror/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--no-first-run",
                     "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                     # Every host but the mirror is unreachable, as for a reader whose country blocks the main domain.
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def network_events(driver) -> list[dict]:
    return [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]


def test_the_archive_renders_fully_from_a_sub_path_mirror(mirror, browser):
    browser.get("about:blank")
    network_events(browser)  # drop what the browser's own start page loaded
    for path in PAGES:
        browser.get(mirror + path)
        events = network_events(browser)
        requested = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in events
                     if e["method"] == "Network.requestWillBeSent"}
        failed = [(requested.get(e["params"]["requestId"]), e["params"].get("errorText")) for e in events
                  if e["method"] == "Network.loadingFailed"]
        responses = [e["params"]["response"] for e in events if e["method"] == "Network.responseReceived"]
        assert failed == [], (path, failed)
        assert all(url.startswith(mirror) for url in requested.values()), (path, sorted(requested.values()))
        assert all(r["status"] in (200, 304) for r in responses), (path, [(r["url"], r["status"]) for r in responses])
        assert all(r["url"].startswith(mirror) for r in responses), (path, [r["url"] for r in responses])
        assert any(r["url"] == mirror + "static/style.css" for r in responses), path
        # The stylesheet applied: without it the body has no maximum width.
        assert browser.execute_script("return getComputedStyle(document.body).maxWidth") != "none", path
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
        assert broken == [], (path, broken)
    browser.get(mirror + "en/2026/10/pinned-report/")
    assert browser.execute_script("return document.images.length") == 1
    assert browser.execute_script("return document.documentElement.lang") == "en"
