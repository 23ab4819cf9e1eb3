"""The web archive: what each page shows, and that every page is accessible and self-contained."""

from __future__ import annotations

import re
from pathlib import Path

import lxml.etree
import lxml.html
import pytest

from archive_site import populate
from conftest import NOW
from publisher import archive

BASE = "https://news.example.org/"
STYLESHEET = Path(__file__).resolve().parent.parent / "templates" / "static" / "style.css"
GENERIC_LINK_TEXT = {"here", "click here", "more", "read more", "link", "this", "this page"}


@pytest.fixture
def built(site):
    populate(site).build()
    return site


def page(site, rel: str):
    return lxml.html.fromstring((site.output / rel).read_bytes())


def text(element) -> str:
    return " ".join(element.text_content().split())


def html_pages(site) -> list[str]:
    """Return the archive's pages (the newsletter's and alerts' web copies are tested with them)."""
    return sorted(rel for rel in (p.relative_to(site.output).as_posix() for p in site.output.rglob("*.html"))
                  if not rel.startswith(("newsletter/", "alerts/")))


def test_home_shows_the_latest_issue_the_open_actions_and_the_newest_entries(built):
    home = page(built, "en/index.html")
    main = home.find(".//main")
    headings = [text(h) for h in main.iter("h1", "h2", "h3")]
    assert headings[:4] == ["Test Alliance", "Latest newsletter", "Open actions", "Stop the raids now"]
    issue = main.find(".//section[@aria-labelledby='issue-heading']//a")
    assert issue.get("href") == "../newsletter/en/2026-W42/"  # the alert's week W47 goes out on Monday
    assert text(issue).startswith("Read the newsletter of the week of")
    actions = main.find(".//section[@aria-labelledby='actions-heading']")
    assert [text(a) for a in actions.iter("a")] == ["Stop the raids now"]
    latest = main.find(".//section[@aria-labelledby='latest-heading']")
    assert [text(h) for h in latest.iter("h3")][:2] == ["Stop the raids now", "Withdrawn story"]
    assert "Old campaign" in text(latest) and "A draft" not in text(home) and "Embargoed" not in text(home)


def test_the_issue_list_links_every_issue_newest_first(built):
    listing = page(built, "en/newsletter/index.html")
    hrefs = [a.get("href") for a in listing.find(".//main").iter("a")]
    assert hrefs[0] == "../../newsletter/en/2026-W42/"
    assert hrefs == sorted(hrefs, reverse=True) and len(hrefs) == 5  # weeks with English entries, W47 not yet due


def test_the_open_actions_page_lists_only_actions_still_open(built):
    actions = page(built, "en/actions/index.html")
    assert [text(a) for a in actions.find(".//main").iter("a")] == ["Stop the raids now"]
    assert "Old campaign" not in text(actions)
    empty = page(built, "az/actions/index.html").find(".//main")
    assert not empty.findall(".//a") and len(empty.findall(".//p")) == 1  # only the "nothing open" note


def test_an_action_is_shown_closed_after_it_expires(built):
    closed = page(built, "en/2026/08/old-campaign/index.html")
    section = closed.find(".//section[@aria-labelledby='action-heading']")
    assert "closed" in section.get("class")
    assert text(section.find("h2")) == "This action has closed"
    assert not section.findall(".//a")  # no button to a finished action
    alert = page(built, "en/2026/11/stop-the-raids/index.html")
    section = alert.find(".//section[@aria-labelledby='action-heading']")
    assert text(section.find("h2")) == "Take action"
    assert section.find(".//a[@class='button']").get("href") == "https://act.example.net/minister"
    assert "The Minister" in text(section) and "Release everyone detained." in text(section)
    # The same alert, built after it expires, shows it closed.
    built.build(NOW.replace(year=2027))
    later = page(built, "en/2026/11/stop-the-raids/index.html")
    assert text(later.find(".//section[@aria-labelledby='action-heading']/h2")) == "This action has closed"


def test_corrections_and_retractions_are_shown(built):
    corrected = page(built, "en/2026/10/corrected/index.html")
    notice = corrected.find(".//aside[@class='notice correction']")
    assert "We fixed the number of people detained." in text(notice)
    assert corrected.find(".//time[@datetime='2026-10-12T09:00:00+04:00']") is not None
    withdrawn = (built.output / "en/2026/10/withdrawn/index.html").read_text()
    assert "The secret original text" not in withdrawn
    assert "A source was unreliable." in withdrawn and "withdrawn" in withdrawn


def test_translations_are_linked_with_hreflang(built):
    report = page(built, "en/2026/10/pinned-report/index.html")
    alternates = {link.get("hreflang"): link.get("href") for link in report.iter("link") if link.get("hreflang")}
    assert alternates == {"en": "../../../../en/2026/10/pinned-report/", "az": "../../../../az/2026/10/pinned-report/",
                          "ru": "../../../../ru/2026/10/pinned-report/"}
    visible = report.find(".//p[@class='translations']")
    assert [(a.get("hreflang"), a.get("lang")) for a in visible.iter("a")] == [("az", "az"), ("ru", "ru")]
    assert "Доклад" in text(visible)
    assert page(built, "ru/2026/10/pinned-report/index.html").getroottree().getroot().get("lang") == "ru"


def test_tag_pages_list_their_entries_and_link_their_feeds(built):
    tag = page(built, "en/tags/полиция/index.html")
    assert text(tag.find(".//h1")) == "Tagged “полиция”"
    assert [text(a) for a in tag.find(".//main/ol").iter("a")] == ["Pinned report"]
    feeds = [link.get("href") for link in tag.iter("link") if link.get("type") == "application/atom+xml"]
    assert feeds[0] == "feed.atom" or feeds[0].endswith("/%D0%BF%D0%BE%D0%BB%D0%B8%D1%86%D0%B8%D1%8F/feed.atom")
    tags = page(built, "en/tags/index.html")
    assert [text(a) for a in tags.find(".//main").iter("a")] == ["baku", "police", "полиция"]
    entry = page(built, "en/2026/10/pinned-report/index.html")
    assert [a.get("rel") for a in entry.find(".//nav[@class='tags']").iter("a")] == ["tag", "tag"]


def test_every_page_advertises_its_feeds(built):
    for rel in html_pages(built):
        document = page(built, rel)
        lang = document.getroottree().getroot().get("lang")
        feeds = {link.get("type"): link.get("href") for link in document.iter("link") if link.get("rel") == "alternate"
                 and link.get("type")}
        assert set(feeds) == {"application/atom+xml", "application/rss+xml", "application/feed+json"}, rel
        titles = [link.get("title") for link in document.iter("link") if link.get("type") == "application/atom+xml"]
        assert any("urgent actions" in t for t in titles) or lang != "en", rel
        for href in feeds.values():
            # The 404 page is shown at any depth, so its links start at the site path.
            assert not href.startswith(("http:", "https:", "//")), (rel, href)
            assert href.startswith("/") == (rel == "404.html"), (rel, href)


def test_the_entry_body_headings_follow_the_page_heading(built):
    first = page(built, "en/2026/09/first-update/index.html")
    levels = [int(h.tag[1]) for h in first.find(".//main").iter("h1", "h2", "h3", "h4", "h5", "h6")]
    assert levels == [1, 2, 3]
    body = first.find(".//div[@class='entry-body']")
    assert [h.tag for h in body.iter("h2", "h3")] == ["h2", "h3"]
    # Table alignment survives as classes, since HTML5 made the align attribute obsolete.
    assert [td.get("class") for td in body.iter("td")] == ["align-left", "align-right"]
    assert all(td.get("align") is None for td in body.iter("td", "th"))


def test_every_page_is_accessible_and_self_contained(built):
    for rel in html_pages(built):
        document = page(built, rel)
        root = document.getroottree().getroot()
        assert root.get("lang") in ("en", "az", "ru"), rel
        assert document.find(".//title") is not None and text(document.find(".//title")), rel
        assert len(document.findall(".//main")) == 1, rel
        if rel != "404.html":
            assert document.find(".//header") is not None and document.find(".//footer") is not None, rel
            assert document.find(".//nav") is not None, rel
        headings = [int(h.tag[1]) for h in document.iter("h1", "h2", "h3", "h4", "h5", "h6")]
        assert headings and headings[0] == 1 and headings.count(1) == 1, (rel, headings)
        for before, after in zip(headings, headings[1:]):
            assert after <= before + 1, (rel, headings)
        for image in document.iter("img"):
            assert image.get("alt") is not None, rel
        for link in document.iter("a"):
            label = text(link).lower()
            assert label and label not in GENERIC_LINK_TEXT, (rel, label)
        assert not document.findall(".//script") and "javascript:" not in (built.output / rel).read_text(), rel
        for element in document.iter("link", "img"):
            url = element.get("href") or element.get("src") or ""
            assert not url.startswith(("http:", "https:", "//")) or element.get("rel") == "canonical", (rel, url)


def test_the_root_page_offers_every_language(built):
    root = page(built, "index.html")
    choices = [(a.get("href"), a.get("hreflang")) for a in root.find(".//ul[@class='language-choice']").iter("a")]
    assert choices == [("en/", "en"), ("az/", "az"), ("ru/", "ru")]
    assert [li.get("lang") for li in root.find(".//ul[@class='language-choice']").iter("li")] == ["en", "az", "ru"]


def test_the_sitemap_lists_every_page_with_absolute_urls_and_dates(built):
    sitemap = lxml.etree.fromstring((built.output / "sitemap.xml").read_bytes())
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9", "x": "http://www.w3.org/1999/xhtml"}
    urls = {u.findtext("s:loc", namespaces=ns): u for u in sitemap.findall("s:url", ns)}
    assert all(loc.startswith(BASE) for loc in urls)
    assert all(u.findtext("s:lastmod", namespaces=ns) for u in urls.values())
    for loc in urls:
        rel = loc[len(BASE):]
        target = built.output / (rel + "index.html" if rel.endswith("/") or not rel else rel)
        assert target.is_file() or (built.output / re.sub("%[0-9A-F]{2}", "", rel)).exists() or "%" in rel, loc
    corrected = urls[f"{BASE}en/2026/10/corrected/"]
    assert corrected.findtext("s:lastmod", namespaces=ns) == "2026-10-12T09:00:00+04:00"
    report = urls[f"{BASE}en/2026/10/pinned-report/"]
    assert {link.get("hreflang") for link in report.findall("x:link", ns)} == {"en", "az", "ru"}
    assert f"{BASE}en/tags/%D0%BF%D0%BE%D0%BB%D0%B8%D1%86%D0%B8%D1%8F/" in urls
    assert not any("draft" in loc or "embargoed" in loc for loc in urls)
    assert f"Sitemap: {BASE}sitemap.xml" in (built.output / "robots.txt").read_text()


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def palettes() -> list[dict[str, str]]:
    """Return the light and the dark colour variables of the stylesheet."""
    css = STYLESHEET.read_text()
    blocks = re.findall(r":root\s*{([^}]*)}", css)
    return [dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", block)) for block in blocks]


def test_colours_meet_wcag_aa_in_light_and_dark():
    schemes = palettes()
    assert len(schemes) == 2
    pairs = [("text", "background"), ("muted", "background"), ("accent", "background"), ("urgent", "background"),
             ("text", "panel"), ("muted", "panel"), ("accent", "panel"), ("urgent", "panel"), ("background", "accent")]
    for colours in schemes:
        for foreground, background in pairs:
            ratio = contrast(colours[foreground], colours[background])
            assert ratio >= 4.5, (foreground, background, round(ratio, 2))


def test_the_contrast_check_is_real():
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert contrast("#777777", "#ffffff") < 4.5


@pytest.mark.parametrize("body, expected", [
    ("<p>x</p>", "<p>x</p>"),
    ('<h1 id="a">A</h1><h2>B</h2>', '<h2 id="a">A</h2><h3>B</h3>'),
    ("<h2>A</h2><h4>B</h4><h2>C</h2>", "<h2>A</h2><h3>B</h3><h2>C</h2>"),
    ("<h4>A</h4><h3>B</h3>", "<h2>A</h2><h2>B</h2>"),  # never below the page's h1 + 1
    ("<h3>A</h3><h5>B</h5><h6>C</h6>", "<h2>A</h2><h3>B</h3><h4>C</h4>"),
    ("<header>x</header><h2>A</h2>", "<header>x</header><h2>A</h2>"),  # only heading tags are touched
])
def test_nest_headings(body, expected):
    assert archive.nest_headings(body) == expected


@pytest.mark.parametrize("cell, expected", [
    ('<td align="center">1</td>', '<td class="align-center">1</td>'),
    ('<th colspan="2" align="right">x</th>', '<th colspan="2" class="align-right">x</th>'),
    ('<td>1</td>', '<td>1</td>'),
    ('<p align="center">not a cell</p>', '<p align="center">not a cell</p>'),
])
def test_align_by_class(cell, expected):
    assert archive.align_by_class(cell) == expected
