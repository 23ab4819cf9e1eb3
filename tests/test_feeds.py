"""Feeds: valid Atom, RSS and JSON Feed that real readers parse, with ids and dates that never drift."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

import feedparser
import jsonschema
import lxml.etree
import pytest

from archive_site import ALERT_ID, PINNED_ID, populate
from conftest import CONFIG, NOW, REPO, ScratchSite

SCHEMAS = Path(__file__).parent / "schemas"
BASE = "https://news.example.org/"
FEEDS = ("feed", "alerts")


@pytest.fixture
def built(site):
    populate(site).build()
    return site


MEDIA_TYPES = {".atom": "application/atom+xml", ".rss": "application/rss+xml", ".json": "application/feed+json"}


def read_feed(path: Path) -> feedparser.FeedParserDict:
    """Parse an Atom or RSS feed as a reader fetching it would."""
    return feedparser.parse(path.read_bytes(), response_headers={"content-type": MEDIA_TYPES[path.suffix]})


def parse(site, rel: str) -> feedparser.FeedParserDict:
    return read_feed(site.output / rel)


def json_ids(site, rel: str) -> list[str]:
    """Return the item ids of a JSON Feed (feedparser 6 reads only XML feeds)."""
    return [item["id"] for item in json.loads((site.output / rel).read_text(encoding="utf-8"))["items"]]


def feed_files(site) -> list[Path]:
    """Return every feed file: per language, alerts and per tag, in all formats."""
    return sorted(p for p in site.output.rglob("*") if p.suffix in MEDIA_TYPES and p.is_file()
                  and p.name.split(".")[0] in FEEDS)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_every_feed_parses_cleanly_with_the_expected_ids_and_order(built):
    files = feed_files(built)
    assert len(files) == 3 * 3 * 2 + 3 * 4  # 3 languages x (feed, alerts) x 3 formats, plus 4 tag feeds x 3
    for path in files:
        if path.suffix == ".json":
            assert json.loads(path.read_bytes())["items"] is not None
            continue
        parsed = read_feed(path)
        assert parsed.bozo == 0, (path, parsed.get("bozo_exception"))
        assert parsed.version == ("atom10" if path.suffix == ".atom" else "rss20")
    english = parse(built, "en/feed.atom")
    ids = [e.id for e in english.entries]
    assert ids == [
        ALERT_ID,
        "tag:news.example.org,2026-10-15:en/withdrawn",
        "tag:news.example.org,2026-10-10:en/corrected",
        PINNED_ID,
        "tag:news.example.org,2026-09-01:en/first-update",
        "tag:news.example.org,2026-08-01:en/old-campaign",
    ]
    assert [e.id for e in parse(built, "en/feed.rss").entries] == ids
    assert json_ids(built, "en/feed.json") == ids
    assert [e.id for e in parse(built, "en/alerts.atom").entries] == [ALERT_ID]
    assert [e.id for e in parse(built, "ru/feed.atom").entries] == ["tag:news.example.org,2026-10-02:ru/pinned-report"]


def test_drafts_and_embargoed_entries_reach_no_feed(built):
    for path in feed_files(built):
        text = path.read_text(encoding="utf-8")
        assert "must not leak" not in text and "Embargoed" not in text, path


def test_dates_carry_offsets_and_published_never_moves(built):
    atom = {e.id: e for e in parse(built, "en/feed.atom").entries}
    corrected = atom["tag:news.example.org,2026-10-10:en/corrected"]
    assert corrected.published == "2026-10-10T10:00:00+04:00"
    assert corrected.updated == "2026-10-12T09:00:00+04:00"
    assert "We fixed the number of people detained." in corrected.content[0].value
    rss = {e.id: e for e in parse(built, "en/feed.rss").entries}
    assert rss["tag:news.example.org,2026-10-10:en/corrected"].published == "Sat, 10 Oct 2026 10:00:00 +0400"
    items = {i["id"]: i for i in json.loads((built.output / "en/feed.json").read_text())["items"]}
    assert items["tag:news.example.org,2026-10-10:en/corrected"]["date_published"] == "2026-10-10T10:00:00+04:00"
    assert items["tag:news.example.org,2026-10-10:en/corrected"]["date_modified"] == "2026-10-12T09:00:00+04:00"


def test_a_retraction_keeps_the_id_replaces_the_body_and_moves_updated(built):
    for fmt in ("atom", "rss", "json"):
        text = (built.output / f"en/feed.{fmt}").read_text(encoding="utf-8")
        assert "The secret original text" not in text
        assert "A source was unreliable." in text
    entry = {e.id: e for e in parse(built, "en/feed.atom").entries}["tag:news.example.org,2026-10-15:en/withdrawn"]
    assert entry.published == "2026-10-15T10:00:00+04:00"
    assert entry.updated == "2026-10-16T08:00:00+04:00"
    assert "withdrawn" in entry.content[0].value


def test_feed_updated_is_the_newest_change_never_the_clock(built):
    atom = parse(built, "en/feed.atom")
    newest = max(when(e.updated) for e in atom.entries)
    assert when(atom.feed.updated) == newest
    rss = (built.output / "en/feed.rss").read_text()
    assert "<lastBuildDate>Fri, 20 Nov 2026 10:00:00 +0400</lastBuildDate>" in rss
    # A feed with nothing in it dates from the tag authority, not from the build.
    empty = parse(built, "az/alerts.atom")
    assert empty.entries == [] and empty.feed.updated == "2024-01-01T00:00:00+00:00"


def test_two_builds_at_different_times_give_identical_feeds(site):
    populate(site).build(NOW)
    first = {p: (site.output / p).read_bytes() for p in map(str, feed_files(site))}
    site.build(NOW.replace(hour=20))
    assert {p: (site.output / p).read_bytes() for p in first} == first


def test_feed_metadata_self_links_generator_and_languages(built):
    atom = lxml.etree.fromstring((built.output / "ru/feed.atom").read_bytes())
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert atom.get("{http://www.w3.org/XML/1998/namespace}lang") == "ru"
    assert atom.find("a:link[@rel='self']", ns).get("href") == f"{BASE}ru/feed.atom"
    assert atom.find("a:link[@rel='alternate']", ns).get("href") == f"{BASE}ru/"
    generator = atom.find("a:generator", ns)
    assert generator.text == "publisher" and generator.get("version") is None and generator.get("uri") is None
    assert atom.find("a:author/a:name", ns).text == "Тестовый альянс"
    rss = lxml.etree.fromstring((built.output / "en/feed.rss").read_bytes())
    channel = rss.find("channel")
    assert channel.findtext("link") == f"{BASE}en/"
    assert channel.find("{http://www.w3.org/2005/Atom}link").get("href") == f"{BASE}en/feed.rss"
    assert channel.findtext("generator") == "publisher"
    assert channel.findtext("language") == "en"
    for item in channel.findall("item"):
        assert item.find("guid").get("isPermaLink") == "false"
        assert item.find("guid").text.startswith("tag:news.example.org,")
        assert item.find("{http://purl.org/rss/1.0/modules/content/}encoded").text
        assert item.findtext("description")
    feed = json.loads((built.output / "en/tags/полиция/feed.json").read_text(encoding="utf-8"))
    assert feed["feed_url"] == f"{BASE}en/tags/%D0%BF%D0%BE%D0%BB%D0%B8%D1%86%D0%B8%D1%8F/feed.json"
    assert feed["home_page_url"] == f"{BASE}en/tags/%D0%BF%D0%BE%D0%BB%D0%B8%D1%86%D0%B8%D1%8F/"
    assert [i["id"] for i in feed["items"]] == [PINNED_ID]


def test_every_feed_has_an_id_of_its_own(built):
    ids = {}
    for path in feed_files(built):
        if path.suffix == ".atom":
            ids[path] = parse(built, path.relative_to(built.output).as_posix()).feed.id
    assert len(set(ids.values())) == len(ids)
    assert ids[built.output / "en/feed.atom"] == "tag:news.example.org,2024:feeds/en/feed"
    assert ids[built.output / "en/alerts.atom"] == "tag:news.example.org,2024:feeds/en/alerts"
    entry_ids = {e.id for e in parse(built, "en/feed.atom").entries}
    assert not entry_ids & set(ids.values())


def test_categories_and_content_are_complete_and_absolute(built):
    entries = {e.id: e for e in parse(built, "en/feed.atom").entries}
    report = entries[PINNED_ID]
    assert [t.term for t in report.tags] == ["police", "полиция"]
    assert f'src="{BASE}images/2026/crowd.png"' in report.content[0].value
    first = entries["tag:news.example.org,2026-09-01:en/first-update"]
    footnote = entries["tag:news.example.org,2026-10-10:en/corrected"].content[0].value
    assert f'href="{BASE}en/2026/10/corrected/#fn:1"' in footnote
    assert f'href="{BASE}en/2026/10/pinned-report/"' in first.content[0].value
    assert first.summary == "The first update."
    alert = entries[ALERT_ID].content[0].value
    for part in ("Write to the minister", "https://act.example.net/minister", "The Minister", "Release everyone detained."):
        assert part in alert
    for path in feed_files(built):
        text = path.read_text(encoding="utf-8")
        assert "xml:base" not in text
        assert not re.search(r'(?:href|src)=(?:\\"|"|&quot;)[/#](?!/)', text), path  # no relative link left
        assert 'src="http://' not in text


def test_the_feed_is_capped_newest_first(site):
    site.write("publisher.toml", CONFIG + "\n[feeds]\nlimit = 2\n")
    for day in (1, 2, 3):
        site.entry(f"2026/day-{day}.md", title=f"Day {day}", date=f"2026-11-0{day}T10:00:00+04:00")
    site.build()
    titles = [e.title for e in parse(site, "en/feed.atom").entries]
    assert titles == ["Day 3", "Day 2"]
    assert len(json.loads((site.output / "en/feed.json").read_text())["items"]) == 2


def test_atom_feeds_validate_against_the_rfc_4287_schema(built):
    if not shutil.which("jing"):
        pytest.skip("jing is not installed (Debian package jing)")
    atoms = [str(p) for p in sorted(built.output.rglob("*.atom"))]
    result = subprocess.run(["jing", "-c", str(SCHEMAS / "atom.rnc"), *atoms], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_is_real(tmp_path):
    if not shutil.which("jing"):
        pytest.skip("jing is not installed (Debian package jing)")
    broken = tmp_path / "broken.atom"
    broken.write_text('<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title><updated>yesterday</updated></feed>')
    result = subprocess.run(["jing", "-c", str(SCHEMAS / "atom.rnc"), str(broken)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0


def test_json_feeds_validate_against_the_json_feed_schema(built):
    schema = json.loads((SCHEMAS / "jsonfeed-1.1.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    paths = sorted(built.output.rglob("*.json"))
    assert paths
    for path in paths:
        errors = [e.message for e in validator.iter_errors(json.loads(path.read_text(encoding="utf-8")))]
        assert not errors, (path, errors)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"version": "https://jsonfeed.org/version/1.1", "title": "x", "items": [{"title": "no id"}]})


def test_a_hostile_title_gives_well_formed_escaped_feeds(site):
    hostile = 'Raid <script>alert(1)</script> & ]]> \\"quotes\\" \\x01\\x0b\\x1f\\x7f end'  # YAML escapes
    site.write("content/2026/hostile.md",
               f'---\ntitle: "{hostile}"\ntype: update\ndate: 2026-11-01T10:00:00+04:00\n'
               f'summary: "Summary with \\x02 and <b>tags</b> & ampersands"\ntags: [police]\n---\n\n'
               f"Body with a \x03 control and <script>alert(2)</script> and <b onclick='x()'>bold</b>.\n")
    site.build()
    for fmt in ("atom", "rss"):
        data = (site.output / f"en/feed.{fmt}").read_bytes()
        root = lxml.etree.fromstring(data)  # well-formed, or this raises
        assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]", data)
        texts = [el.text or "" for el in root.iter() if isinstance(el.tag, str)]
        assert not any("<script" in t for t in texts)  # a reader taking any text as HTML runs nothing
        titles = [html.unescape(el.text) for el in root.iter() if isinstance(el.tag, str) and el.tag.endswith("title")]
        assert 'Raid <script>alert(1)</script> & ]]> "quotes"  end' in titles
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0
        assert html.unescape(parsed.entries[0].title) == 'Raid <script>alert(1)</script> & ]]> "quotes"  end'
        content = parsed.entries[0].content[0].value
        assert "<script" not in content and "onclick" not in content and "<b>bold</b>" in content
    document = json.loads((site.output / "en/feed.json").read_bytes())
    item = document["items"][0]
    assert item["title"] == 'Raid <script>alert(1)</script> & ]]> "quotes"  end'
    assert item["summary"] == "Summary with  and <b>tags</b> & ampersands"
    assert "<script" not in item["content_html"]
    page = (site.output / "en/2026/11/hostile/index.html").read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_json_feed_bytes_are_sorted_and_stable(built):
    data = (built.output / "en/feed.json").read_bytes()
    document = json.loads(data)
    assert data.decode() == json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["language"] == "en"
    item = document["items"][0]
    assert {"id", "url", "title", "content_html", "date_published", "date_modified", "tags", "authors"} <= set(item)


def all_ids(site) -> dict[str, list[str]]:
    """Return the ids of every Atom, RSS and JSON feed and its items, by feed path."""
    ids = {}
    for path in feed_files(site):
        rel = path.relative_to(site.output).as_posix()
        if path.suffix == ".json":
            document = json.loads(path.read_text(encoding="utf-8"))
            ids[rel] = [item["id"] for item in document["items"]]
        else:
            parsed = read_feed(path)
            ids[rel] = [parsed.feed.get("id", "")] + [e.id for e in parsed.entries]
    return ids


def test_ids_survive_a_new_title_a_renamed_file_and_a_new_base_url(site):
    populate(site).build()
    before = all_ids(site)
    first_link = parse(site, "en/feed.atom").entries[-2].link
    # A new title on an entry whose id is derived; a pinned entry's file renamed (its page moves).
    first = site.root / "content/2026/first-update.md"
    first.write_text(first.read_text().replace("title: 'First update'", "title: 'A better first title'"))
    pinned = site.root / "content/2026/pinned-report.md"
    pinned.rename(pinned.with_name("report-renamed.md"))
    # The site moves to another domain and scheme.
    site.write("publisher.toml", CONFIG.replace('base_url = "https://news.example.org/"',
                                               'base_url = "http://mirror.example.net/news/"'))
    site.build()
    after = all_ids(site)
    assert after == before
    entries = {e.id: e for e in parse(site, "en/feed.atom").entries}
    assert entries[PINNED_ID].link == "http://mirror.example.net/news/en/2026/10/report-renamed/"
    assert entries["tag:news.example.org,2026-09-01:en/first-update"].title == "A better first title"
    assert first_link != entries["tag:news.example.org,2026-09-01:en/first-update"].link


def test_translations_share_a_key_but_keep_their_own_ids(built):
    ids = {lang: [e.id for e in parse(built, f"{lang}/feed.atom").entries if "pinned-report" in e.id]
           for lang in ("en", "az", "ru")}
    assert ids == {"en": [PINNED_ID], "az": ["tag:news.example.org,2026-10-02:az/pinned-report"],
                   "ru": ["tag:news.example.org,2026-10-02:ru/pinned-report"]}


def test_every_link_in_a_feed_points_at_a_built_page(built):
    """Feeds carry absolute links; each one on this site must land on a file the build wrote."""
    checked = 0
    for path in feed_files(built):
        text = path.read_text(encoding="utf-8")
        for url in set(re.findall(r'https://news\.example\.org/[^"\s<>&\\]*', text)):
            target = unquote(url[len(BASE):].split("#")[0])
            target = target + "index.html" if target == "" or target.endswith("/") else target
            assert (built.output / target).is_file(), (path.name, url)
            checked += 1
    assert checked > 50


def test_the_sample_site_feeds_are_valid(tmp_path):
    """The repository's own sample content: every feed parses, Atom passes the RFC grammar, JSON its schema."""
    root = tmp_path / "sample"
    shutil.copytree(REPO / "content", root / "content")
    shutil.copy(REPO / "publisher.toml", root / "publisher.toml")
    sample = ScratchSite(root)
    sample.build()
    files = feed_files(sample)
    assert len(files) > 30
    for path in files:
        if path.suffix != ".json":
            parsed = read_feed(path)
            assert parsed.bozo == 0 and parsed.entries is not None, (path, parsed.get("bozo_exception"))
    validator = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "jsonfeed-1.1.schema.json").read_text()))
    for path in (p for p in files if p.suffix == ".json"):
        assert not list(validator.iter_errors(json.loads(path.read_text(encoding="utf-8")))), path
    if shutil.which("jing"):
        atoms = [str(p) for p in files if p.suffix == ".atom"]
        result = subprocess.run(["jing", "-c", str(SCHEMAS / "atom.rnc"), *atoms], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr


HOSTILE_TEXTS = ['Raid <script>alert(1)</script>', "a & b &amp; c", "]]> --> <!--", "\"double\" 'single'",
                 "tab\there", "line\nbreak", "cr\r\nlf\r", "\u202eoverride \u00a0nbsp \u2028ls", "emoji 🙂 ə ş ı",
                 "é"]


def test_feeds_are_written_as_lxml_writes_them(site):
    """The feeds are written directly: for hostile text in every field, parsing a feed with lxml gives
    every string back, and lxml writing the parsed tree gives the same bytes (escaping, layout)."""
    from datetime import timedelta

    from publisher import feeds
    from publisher.build import load_site
    from publisher.templates import Templates

    populate(site)
    config = site.config
    templates = Templates(config)
    loaded = load_site(config, templates, NOW, store=False)
    base = loaded.in_language("en")[0]
    entries = tuple(dataclasses.replace(base, id=f"tag:x,2026:{n}", title=f"T{n} {text}", summary=text,
                                        tags=(text, f"t{n}"), date=base.date - timedelta(days=n))
                    for n, text in enumerate(HOSTILE_TEXTS))
    contents = {e.id: f"<p>{html.escape(text)}</p>\n{text}" for e, text in zip(entries, HOSTILE_TEXTS)}
    feed = dataclasses.replace(feeds.language_feed(templates, "en"), entries=entries, updated=base.date,
                               title="Feed & <title> \"q\"", description="Description\twith\ttabs & <b>")
    for data in (feeds.atom(loaded, feed, contents), feeds.rss(loaded, feed, contents)):
        root = lxml.etree.fromstring(data)
        assert lxml.etree.tostring(root, pretty_print=True, encoding="UTF-8", xml_declaration=True) == data
        texts = {el.text for el in root.iter() if isinstance(el.tag, str)}
        assert set(contents.values()) <= texts
        assert {html.escape(e.summary, quote=False) for e in entries} <= texts
    atom = lxml.etree.fromstring(feeds.atom(loaded, feed, contents))
    labels = [c.get("label") for c in atom.iter("{http://www.w3.org/2005/Atom}category")]
    assert labels == [tag for e in entries for tag in e.tags]  # attributes come back whole, tabs and newlines too


def test_a_character_xml_cannot_carry_is_refused_not_written(site):
    from publisher import feeds

    with pytest.raises(ValueError):
        feeds._element("title", "bell \x07")
    with pytest.raises(ValueError):
        feeds._element("link", None, href="nul \x00")


@pytest.mark.parametrize("seed", range(20))
def test_the_json_writer_writes_what_json_dumps_writes(seed):
    import random

    from publisher.feeds import _json_text

    rng = random.Random(seed)

    def value(depth: int = 0):
        kind = rng.choice(["str", "int", "float", "bool", "none", "list", "dict"] if depth < 4 else ["str", "int"])
        if kind == "str":
            return "".join(rng.choice(["a", "é", "\"", "\\", "\n", "\x01", "\u2028", "🙂", "</script>", " "])
                           for _ in range(rng.randint(0, 12)))
        if kind == "list":
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        if kind == "dict":
            return {f"{value(4)}{n}": value(depth + 1) for n in range(rng.randint(0, 4))}
        return {"int": rng.randint(-10**12, 10**12), "float": rng.random() * 1e6, "bool": rng.random() < .5,
                "none": None}[kind]

    for _ in range(50):
        document = value()
        assert _json_text(document) == json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True)
