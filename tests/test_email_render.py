"""Email HTML: the patterns mail clients need, safety, the size budget, languages, and a real browser."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import lxml.html
import pytest

from email_site import NOW, WEEK, make_site

ARTIFACTS = Path(__file__).parent / "artifacts" / "email"
BASE = "https://news.example.org/"
TRACKING = re.compile(r"^(utm_|mc_|_hs|mkt_tok|fbclid|gclid|dclid|msclkid|yclid|vero_|oly_|rb_clickid|s_cid)", re.I)
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build the email site once; return (site, tree)."""
    site = make_site(tmp_path_factory.mktemp("render") / "site")
    site.build(NOW)
    return site, site.tree()


def email_html(raw: bytes) -> str:
    return message_from_bytes(raw, policy=policy.default).get_body(("html",)).get_content()


def documents(tree: dict[str, bytes]) -> dict[str, str]:
    """Return every email's HTML part and every web copy, by a readable name."""
    found = {}
    for path, data in tree.items():
        if path.startswith(("newsletter/", "alerts/")):
            if path.endswith(".eml"):
                found[path] = email_html(data)
            elif path.endswith("index.html"):
                found[path] = data.decode("utf-8")
    return found


def test_email_html_follows_the_client_patterns(built):
    _, tree = built
    for path, raw in tree.items():
        if not path.endswith(".eml"):
            continue
        html = email_html(raw)
        doc = lxml.html.document_fromstring(html)
        lang = path.split("/")[1]
        assert doc.get("lang") == lang and doc.get("dir") == "ltr", path
        metas = {m.get("name"): m.get("content") for m in doc.iter("meta") if m.get("name")}
        assert metas["color-scheme"] == "light dark" and "x-apple-disable-message-reformatting" in metas
        layout = [t for t in doc.iter("table") if not t.xpath("ancestor::*[contains(@class, 'body')]")]
        assert layout and all(t.get("role") == "presentation" for t in layout), path  # data tables keep their role
        assert re.search(r'<!--\[if mso\]><table role="presentation" width="600"', html), path
        assert "max-width: 600px" in doc.find_class("container")[0].get("style")
        preheader = doc.find_class("preheader")[0]
        assert preheader.getparent().tag == "body" and list(preheader.getparent()).index(preheader) == 0
        for rule in ("display: none", "max-height: 0", "overflow: hidden", "mso-hide: all"):
            assert rule in preheader.get("style"), (path, rule)
        styles = [s.text for s in doc.iter("style")]
        assert len(styles) == 1 and _outside_media(styles[0]).strip() == "", path
        assert "prefers-color-scheme: dark" in styles[0]
        for button in doc.find_class("button"):
            cell = button.getparent()
            assert button.tag == "a" and cell.tag == "td" and "background-color" in cell.get("style")
            assert "border:" in button.get("style") or "border: " in button.get("style")
        for element in doc.iter():
            style = element.get("style") or ""
            assert not re.search(r"(display:\s*(flex|grid)|position:|float:)", style), (path, element.tag, style)
        assert "-apple-system" in doc.find_class("body")[0].get("style") if doc.find_class("body") else True


def _outside_media(css: str) -> str:
    """Return the CSS left after removing every @media block (balanced braces)."""
    out, depth, index = [], 0, 0
    while index < len(css):
        if css.startswith("@media", index) and depth == 0:
            start = css.index("{", index)
            depth, index = 1, start + 1
            while depth:
                depth += {"{": 1, "}": -1}.get(css[index], 0)
                index += 1
            continue
        out.append(css[index])
        index += 1
    return "".join(out)


def test_nothing_loads_from_elsewhere_and_nothing_tracks(built):
    _, tree = built
    for path, html in documents(tree).items():
        doc = lxml.html.document_fromstring(html)
        for element in doc.iter():
            src = element.get("src")
            if src is not None:
                assert src.startswith(BASE) or not urlsplit(src).scheme and not src.startswith("//"), (path, src)
        for image in doc.iter("img"):
            assert image.get("alt") is not None and image.get("width") and image.get("height"), path
            assert (image.get("width"), image.get("height")) != ("1", "1"), path
        assert not list(doc.iter("script", "iframe", "link", "object", "embed", "form")) or \
            all(link.get("rel") == "canonical" for link in doc.iter("link")), path
        assert "url(" not in html and "@import" not in html, path
    for path, data in tree.items():
        if path.startswith(("newsletter/", "alerts/")):
            text = email_html(data) + data.decode("ascii", "replace") if path.endswith(".eml") else data.decode()
            for url in re.findall(r"""https?://[^\s"'<>)\]]+""", text):
                assert not any(TRACKING.match(key) for key, _ in parse_qsl(urlsplit(url).query)), (path, url)


def test_the_email_reads_in_full_with_images_off(built):
    _, tree = built
    html = email_html(tree[f"newsletter/en/{WEEK}/issue.eml"])
    doc = lxml.html.document_fromstring(html)
    assert not list(doc.iter("img"))  # an email loads nothing by itself, not even our own images
    link = next(a for a in doc.iter("a") if a.text_content() == "[The street where it happened]")
    assert link.get("href") == BASE + "images/street.png"
    text = doc.text_content()
    for words in ("Police raid a private party in Baku", "Three people are still held.", "Hearings",
                  "Nobody should be arrested", "Write to the Minister", "Unsubscribe"):
        assert words in text


def test_issue_order_sections_and_links(built):
    _, tree = built
    doc = lxml.html.document_fromstring(email_html(tree[f"newsletter/en/{WEEK}/issue.eml"]))
    headings = [h.text_content() for h in doc.find_class("section-title")]
    assert headings == ["Urgent actions", "Campaigns with open actions", "Updates"]
    titles = [h.text_content() for h in doc.find_class("entry-title")]
    assert titles == ["Stop the raids now", "Sign our letter to the Prosecutor", "Police raid a private party in Baku"]
    hrefs = [a.get("href") for a in doc.iter("a")]
    assert BASE + f"newsletter/en/{WEEK}/" in hrefs  # view in your browser
    assert BASE + "en/2026/11/raid/" in hrefs and BASE + "en/2026/11/earlier/" in hrefs
    assert all(h.startswith(("https://", "mailto:", "#")) for h in hrefs), hrefs
    ids = [e.get("id") for e in doc.iter() if e.get("id")]
    assert len(ids) == len(set(ids))


def test_the_web_copy_has_no_subscriber_data_and_relative_links(built):
    _, tree = built
    html = tree[f"newsletter/en/{WEEK}/index.html"].decode()
    doc = lxml.html.document_fromstring(html)
    assert not doc.find_class("preheader") and "View this email in your browser" not in html
    assert doc.xpath("//link[@rel='canonical']/@href") == [BASE + f"newsletter/en/{WEEK}/"]
    entry_links = [a.get("href") for a in doc.find_class("entry-title")[0].iter("a")]
    assert entry_links == ["../../../en/2026/11/stop-the-raids/"]
    assert "token" not in html and "@example.net" not in html


def test_alert_email_is_urgent_and_complete(built):
    _, tree = built
    doc = lxml.html.document_fromstring(email_html(tree["alerts/en/stop-the-raids/alert.eml"]))
    banner = doc.find_class("banner")[0]
    assert banner.text_content().strip().startswith("URGENT · Urgent action · Deadline: November 30, 2026")
    assert "#b3261e" in banner.get("style")
    box = doc.find_class("action")[0]
    text = " ".join(box.text_content().split())
    for words in ("Take action", "Deadline: November 30, 2026, 11:59 PM (GMT+04:00)", "Vilayat Eyvazov",
                  "Minister of Internal Affairs", "7 Azerbaijan Avenue, Baku AZ1005",
                  "Release everyone held because of who they are.", "Stop the raids."):
        assert words in text
    button = doc.find_class("button")[0]
    assert button.get("href") == "https://example.org/take-action/minister"
    assert "#b3261e" in button.getparent().get("style")


def test_after_it_expires_the_alert_web_copy_shows_the_action_closed(built, tmp_path):
    site = make_site(tmp_path / "later")
    site.build(datetime(2026, 12, 5, tzinfo=timezone.utc))
    tree = site.tree()
    web = lxml.html.document_fromstring(tree["alerts/en/stop-the-raids/index.html"].decode())
    assert "This action has closed" in web.text_content() and not web.find_class("button")
    sent = lxml.html.document_fromstring(email_html(tree["alerts/en/stop-the-raids/alert.eml"]))
    assert sent.find_class("button")  # the email stays as it went out
    assert tree["alerts/en/stop-the-raids/alert.eml"] == built[1]["alerts/en/stop-the-raids/alert.eml"]


def test_a_closed_alert_is_listed_as_an_update_in_its_issue(built):
    _, tree = built
    doc = lxml.html.document_fromstring(email_html(tree["newsletter/en/2026-W45/issue.eml"]))
    assert [h.text_content() for h in doc.find_class("section-title")] == ["Updates"]
    assert "An old alert" in doc.text_content()


def test_each_language_has_its_strings_and_dates(built):
    _, tree = built
    az = lxml.html.document_fromstring(email_html(tree[f"newsletter/az/{WEEK}/issue.eml"])).text_content()
    for words in ("Həftəlik bülleten № 1", "Təcili çağırışlar", "Son tarix: 30 noyabr 2026", "Abunəlikdən çıxın",
                  "Bu məktubu brauzerdə açın", "ə ğ ı İ ş ç ö ü"):
        assert words in az
    ru = lxml.html.document_fromstring(email_html(tree[f"newsletter/ru/{WEEK}/issue.eml"])).text_content()
    for words in ("Еженедельная рассылка, выпуск № 1", "Новости", "17 ноября 2026", "Отписаться"):
        assert words in ru


def test_a_heavy_week_stays_under_the_budget(site):
    paragraph = "A long paragraph about what happened, told in detail so the entry is heavy. " * 12
    for n in range(40):
        site.entry(f"heavy-{n:02d}.md", title=f"Heavy story {n}", date=f"2026-11-17T{8 + n % 12:02d}:{n:02d}:00+04:00",
                   summary=f"Summary of heavy story {n}.", body="\n\n".join([paragraph] * 6))
    site.build(NOW)
    tree = site.tree()
    html = email_html(tree[f"newsletter/en/{WEEK}/issue.eml"])
    assert len(html.encode("utf-8")) <= 90 * 1024
    doc = lxml.html.document_fromstring(html)
    assert len(doc.find_class("entry-title")) == 40  # every entry is still there
    more = [a.get("href") for a in doc.iter("a") if a.text_content() == "Read the full story"]
    assert more and all(h.startswith(BASE + f"newsletter/en/{WEEK}/#heavy-") for h in more)
    assert "Unsubscribe" in doc.find_class("footer")[0].text_content()
    web = tree[f"newsletter/en/{WEEK}/index.html"].decode()
    assert web.count(paragraph.strip()[:60]) == 40 * 6 * 12  # the web copy keeps every word
    for anchor in (h.rsplit("#", 1)[1] for h in more):
        assert f'id="{anchor}"' in web


def test_check_warns_about_a_template_string_without_translation(site):
    site.entry("a.md", title="A", date="2026-11-17T10:00:00+04:00")
    site.write("templates/extra.html", '<p>{{ _("Take action") }}</p>\n<p>{{ _("A phrase nobody translated") }}</p>\n')
    problems = [p for p in site.check(NOW) if p.path == "templates/extra.html"]
    assert [(p.line, p.warning) for p in problems] == [(2, True)]
    assert "az or ru" in problems[0].message and "A phrase nobody translated" in problems[0].message


def test_every_email_string_is_translated(site):
    site.entry("a.md", title="A", date="2026-11-17T10:00:00+04:00")
    assert [p for p in site.check(NOW) if p.path.startswith("templates/email/") and "translation" in p.message] == []


# A real browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("Debian chromium and chromedriver are not installed (/usr/bin/chromium)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def test_every_email_fits_600_and_375_pixels_in_chromium(built, browser, tmp_path):
    _, tree = built
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    for path, html in sorted(documents(tree).items()):
        name = path.replace("/", "_").removesuffix(".eml").removesuffix("_index.html") + \
            ("-web" if path.endswith(".html") else "")
        page = tmp_path / f"{name}.html"
        page.write_text(html, encoding="utf-8")
        for width in (600, 375):
            _resize(browser, width, 800)
            browser.get(page.as_uri())
            scroll, inner, height, loaded = browser.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth,"
                " document.documentElement.scrollHeight, performance.getEntriesByType('resource').length]")
            assert inner == width
            assert scroll <= inner, f"{path} overflows at {width}px: scrollWidth {scroll}"
            assert loaded == 0 or path.endswith(".html"), f"{path} loaded {loaded} resources"
            _resize(browser, width, min(height, 6000))
            browser.save_screenshot(str(ARTIFACTS / f"{name}-{width}.png"))
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        browser.get(page.as_uri())
        background = browser.execute_script(
            "return getComputedStyle(document.querySelector('.card')).backgroundColor")
        assert background == "rgb(27, 30, 36)", f"{path}: dark mode not applied ({background})"
        browser.save_screenshot(str(ARTIFACTS / f"{name}-375-dark.png"))
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert len(list(ARTIFACTS.glob("*.png"))) == 3 * len(documents(tree))


# What a reader sees of each element: the web copy styles it from its stylesheet, the email from
# the style attributes css-inline wrote, and the two must agree.
_LOOKS = ("fontFamily", "fontSize", "fontWeight", "lineHeight", "color", "backgroundColor", "marginTop",
          "marginBottom", "paddingTop", "paddingLeft", "borderBottomColor", "borderLeftWidth", "textDecorationLine",
          "textTransform", "width")
_LOOKED_AT = (".masthead, .site-name, .section-title, .entry, .label, .entry-title, .entry-title a, .meta, "
              ".body, .body p, .body li, .body h2, .body blockquote, .body td, .body a, .action, .action-title, "
              ".button, .button-cell, .footer, .footer p, .footer a, .card, .container")


def _looks(browser, page: Path) -> list:
    browser.get(page.as_uri())
    return browser.execute_script(
        "const names = arguments[1];"
        "return [...document.querySelectorAll(arguments[0])].map(e => {"
        "  const style = getComputedStyle(e); return [e.className, e.tagName, ...names.map(n => style[n])]; });",
        _LOOKED_AT, list(_LOOKS))


@pytest.mark.parametrize("message", [f"newsletter/en/{WEEK}/issue", "alerts/en/stop-the-raids/alert"])
def test_the_web_copy_looks_as_the_email_does_in_chromium(built, browser, tmp_path, message):
    _, tree = built
    folder = message.rsplit("/", 1)[0]
    email, web = tmp_path / "email.html", tmp_path / "web.html"
    email.write_text(email_html(tree[f"{message}.eml"]), encoding="utf-8")
    web.write_text(tree[f"{folder}/index.html"].decode(), encoding="utf-8")
    assert 'style="' not in web.read_text(encoding="utf-8").split("<body", 1)[1]  # styled by its stylesheet
    for width in (600, 375):
        for scheme in ("light", "dark"):
            _resize(browser, width, 800)
            browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                    {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
            seen = _looks(browser, email)
            assert len(seen) > 20 and seen == _looks(browser, web), (message, width, scheme)
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def _resize(browser, width: int, height: int) -> None:
    """Make the viewport `width` CSS pixels wide (windows cannot be narrower than 500), a phone below 600."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def test_a_very_long_alert_keeps_its_action_and_links_to_the_web_copy(site):
    action = "{label: Act now, url: 'https://example.org/act', asks: [Free them.]}"
    site.entry("long.md", title="A very long alert", type="alert", date="2026-11-17T10:00:00+04:00",
               summary="Act now.", action=action, body="\n\n".join(["A long paragraph of testimony. " * 40] * 120))
    site.build(NOW)
    tree = site.tree()
    html = email_html(tree["alerts/en/long/alert.eml"])
    assert len(html.encode("utf-8")) <= 90 * 1024
    doc = lxml.html.document_fromstring(html)
    assert doc.find_class("button")[0].get("href") == "https://example.org/act"
    assert "Free them." in doc.text_content()
    more = [a.get("href") for a in doc.iter("a") if a.text_content() == "Read the full story"]
    assert more == [BASE + "alerts/en/long/#long"]
    assert 'id="long"' in tree["alerts/en/long/index.html"].decode()
