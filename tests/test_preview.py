"""The live preview in a real browser: it shows drafts, reloads after a save, and writes nothing."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

try:  # the page reloads itself on save: an element found just before may be gone when it is read
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    RELOADING = (StaleElementReferenceException, NoSuchElementException)
except ImportError:  # no selenium: the browser tests skip themselves
    RELOADING = ()

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
NOW = "2026-11-22T12:00:00+00:00"
WAIT = 30  # seconds: bounded, and far above the ~1 s a rebuild takes


@pytest.fixture
def preview(site):
    """Start `publisher preview` on a free port through the real entry point; yield its base URL."""
    site.entry("2023/raid.md", title="Police raid a party", summary="'A raid.'")
    site.entry("2023/plan.md", title="Secret plan for the march", summary="'A plan.'", draft="true",
               date="2023-07-28T10:00:00+04:00")
    process = subprocess.Popen([sys.executable, "-m", "publisher", "preview", "--port", "0", "--now", NOW],
                               cwd=site.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    try:
        url = _address(lines)
        yield url, lines
    finally:
        process.terminate()
        process.wait(timeout=10)


def _address(lines: queue.Queue) -> str:
    seen = []
    while True:
        try:
            line = lines.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"the preview did not start: {seen}")
        seen.append(line)
        match = re.search(r"preview at (http://\S+?)/_preview/", line)
        if match:
            return match.group(1)


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("Debian's chromium and chromedriver are not installed (/usr/bin/chromium)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_reloads_after_an_entry_is_saved(site, preview, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = preview
    browser.get(f"{url}/en/2023/07/raid/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Police raid a party"
    assert "PREVIEW" in browser.find_element(By.ID, "pv-bar").text
    site.entry("2023/raid.md", title="Police raid a birthday party", summary="'A raid.'")
    WebDriverWait(browser, WAIT, ignored_exceptions=RELOADING).until(
        lambda driver: driver.find_element(By.TAG_NAME, "h1").text == "Police raid a birthday party")


def test_drafts_show_in_the_preview_only_and_nothing_is_written(site, preview, browser):
    from selenium.webdriver.common.by import By

    url, _ = preview
    browser.get(f"{url}/_preview/")
    listed = browser.find_element(By.LINK_TEXT, "Secret plan for the march")
    listed.click()
    assert browser.find_element(By.TAG_NAME, "h1").text == "Secret plan for the march"
    assert "DRAFT" in browser.find_element(By.ID, "pv-bar").text
    assert not site.output.exists()
    site.build()
    built = site.tree()
    assert not any("plan" in path for path in built)
    assert not any(b"Secret plan" in data for data in built.values())
    assert not any(b"<script" in data for data in built.values())


def test_problems_show_in_the_page_and_the_terminal(site, preview, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, lines = preview
    browser.get(f"{url}/en/2023/07/raid/")
    site.entry("2023/raid.md", title="Police raid a party", summary="'A raid.'",
               body="Read <http://insecure.example.net/>.")
    WebDriverWait(browser, WAIT, ignored_exceptions=RELOADING).until(lambda d: "0 errors, 1 warning" in d.find_element(By.ID, "pv-bar").text)
    browser.find_element(By.CSS_SELECTOR, "#pv-bar summary").click()
    assert "content/2023/raid.md:8: warning: 'http://' link" in browser.find_element(By.ID, "pv-bar").text
    site.write("content/2023/raid.md", "---\ntitle: Broken\ntype: nonsense\n")
    WebDriverWait(browser, WAIT, ignored_exceptions=RELOADING).until(lambda d: "1 error," in d.find_element(By.ID, "pv-bar").text)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Police raid a party"  # the last good build stays
    terminal = _drain(lines)
    assert any(line.startswith("content/2023/raid.md:1: the front matter is not closed") for line in terminal)


def test_email_viewer_switches_scheme_and_width(site, preview, browser):
    from selenium.webdriver.common.by import By

    url, _ = preview
    browser.get(f"{url}/_preview/")
    emails = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href*='/_preview/email?']")]
    if not emails:
        pytest.skip("this build makes no emails yet")
    browser.get(emails[0])
    frame = browser.find_element(By.ID, "pv-email")
    assert frame.get_attribute("width") == "600" and "color-scheme: light" in frame.get_attribute("style")
    browser.switch_to.frame(frame)
    light = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    browser.switch_to.default_content()
    browser.find_element(By.ID, "pv-dark-375").click()
    frame = browser.find_element(By.ID, "pv-email")
    assert frame.get_attribute("width") == "375" and "color-scheme: dark" in frame.get_attribute("style")
    assert frame.size["width"] in range(370, 380)
    dark = urllib.request.urlopen(frame.get_attribute("src")).read().decode()
    assert "prefers-color-scheme" not in dark
    browser.switch_to.frame(frame)
    assert browser.find_element(By.TAG_NAME, "body").text.strip()
    assert browser.execute_script("return getComputedStyle(document.body).backgroundColor") != light
    assert not browser.find_elements(By.TAG_NAME, "script")
    browser.switch_to.default_content()
    assert browser.find_element(By.ID, "pv-text").text.strip()


def test_preview_refuses_other_host_names(preview):
    url, _ = preview
    request = urllib.request.Request(f"{url}/_preview/", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 403


def _drain(lines: queue.Queue) -> list[str]:
    found = []
    while not lines.empty():
        found.append(lines.get_nowait().rstrip("\n"))
    return found


def test_a_draft_inside_an_email_or_listing_is_marked(site, preview):
    url, _ = preview
    listing = urllib.request.urlopen(f"{url}/en/").read().decode()
    bar = listing[listing.index('id="pv-bar"'):listing.index("</div>", listing.index('id="pv-bar"'))]
    assert "DRAFT</strong> shown here: “Secret plan for the march”" in bar
    assert "<script>" in listing  # the reload script, in preview pages only
    raw = urllib.request.urlopen(f"{url}/en/?raw=1").read().decode()
    assert 'id="pv-bar"' not in raw and "<script" not in raw


def test_adding_a_redacted_name_shows_in_the_open_page(site, preview, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from publisher.redaction import add

    url, _ = preview
    browser.get(f"{url}/en/2023/07/raid/")
    add(site.config, "Police raid")  # words of the title: the list file changes, the page must say so
    WebDriverWait(browser, WAIT, ignored_exceptions=RELOADING).until(lambda d: "1 error" in d.find_element(By.ID, "pv-bar").text)
    bar = browser.find_element(By.ID, "pv-bar").text
    assert "content/2023/raid.md:2: a name on the redaction list appears in the field 'title'" in bar


def test_forced_scheme_keeps_compound_queries_valid():
    from publisher.preview import force_scheme

    css = "@media (prefers-color-scheme: dark) and (max-width: 600px) { a {} } @media (prefers-color-scheme:light) {}"
    assert force_scheme(css, "dark") == "@media (min-width: 0px) and (max-width: 600px) { a {} } @media (max-width: 0px) {}"
    assert force_scheme(css, "light") == "@media (max-width: 0px) and (max-width: 600px) { a {} } @media (min-width: 0px) {}"
