"""Atom 1.0, RSS 2.0 and JSON Feed 1.1 per language, for its alerts and for each tag.

Feeds carry absolute URLs (readers ignore `xml:base`) and ids that never change: an
entry's id is `Entry.id`, a feed's id is a tag URI of its own. Every date comes from the
entries, never from the clock, so two builds of the same input are byte-identical.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timezone, tzinfo
from functools import lru_cache
from typing import Iterator
from urllib.parse import quote

from publisher.config import Config
from publisher.content import Entry
from publisher.markup import relink
from publisher.templates import Templates
from publisher.text import clean_text
from publisher.urls import absolute, entry_page, tag_dir
from publisher.website import Site

GENERATOR = "publisher"  # no version: an upgrade must not change every feed
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
_FRAGMENT_LINK = re.compile(r'(\shref=")#')
FORMATS = {
    "atom": "application/atom+xml",
    "rss": "application/rss+xml",
    "json": "application/feed+json",
}


@dataclass(frozen=True)
class Feed:
    """One feed, in every format: a language's entries, its alerts, or one tag's entries."""

    id: str
    lang: str
    title: str
    description: str
    folder: str  # output folder, e.g. "en/" or "en/tags/police/"
    name: str  # file name without extension: "feed" or "alerts"
    home: str  # output path of the archive page the feed mirrors
    entries: tuple[Entry, ...] = ()  # newest first, capped
    updated: datetime | None = None

    def path(self, fmt: str) -> str:
        """Return the output path of this feed in one format, e.g. en/feed.atom."""
        return f"{self.folder}{self.name}.{fmt}"


def files(site: Site, templates: Templates) -> Iterator[tuple[str, bytes]]:
    """Yield every feed of the site in all three formats."""
    rendered: dict[str, str] = {}  # an entry is in several feeds; render it once
    for feed in feeds_of(site, templates):
        contents = {}
        for entry in feed.entries:
            if entry.id not in rendered:
                rendered[entry.id] = feed_content(site, templates, entry)
            contents[entry.id] = rendered[entry.id]
        yield feed.path("atom"), atom(site, feed, contents)
        yield feed.path("rss"), rss(site, feed, contents)
        yield feed.path("json"), json_feed(site, feed, contents)


def feeds_of(site: Site, templates: Templates) -> tuple[Feed, ...]:
    """Return every feed with its entries: per language, its alerts, and one per tag in use."""
    feeds: list[Feed] = []
    for lang in site.config.languages:
        entries = site.in_language(lang)
        feeds.append(with_entries(site, language_feed(templates, lang), entries))
        alerts = tuple(e for e in entries if e.type == "alert")
        feeds.append(with_entries(site, alerts_feed(templates, lang), alerts))
        for tag in site.tags(lang):
            feeds.append(with_entries(site, tag_feed(templates, lang, tag), site.with_tag(lang, tag)))
    return tuple(feeds)


def with_entries(site: Site, feed: Feed, entries: tuple[Entry, ...]) -> Feed:
    """Return the feed holding its newest entries, capped, and dated by the newest change."""
    entries = entries[: site.config.feeds.limit]
    return dataclasses.replace(feed, entries=entries, updated=feed_updated(site, entries))


def language_feed(templates: Templates, lang: str) -> Feed:
    """Describe the feed of every entry in a language (entries not yet filled in)."""
    config = templates.config
    return make_feed(config, lang, f"{lang}/feed", f"{lang}/", "feed", f"{lang}/index.html", site_title(config, lang))


def alerts_feed(templates: Templates, lang: str) -> Feed:
    """Describe the feed of a language's urgent actions."""
    config = templates.config
    title = feed_titles(templates, lang).alerts(site_title(config, lang))
    return make_feed(config, lang, f"{lang}/alerts", f"{lang}/", "alerts", f"{lang}/actions/index.html", title)


def tag_feed(templates: Templates, lang: str, tag: str) -> Feed:
    """Describe the feed of one tag in one language."""
    config = templates.config
    title = feed_titles(templates, lang).tag(site_title(config, lang), tag)
    folder = tag_dir(lang, tag)
    return make_feed(config, lang, f"{lang}/tags/{quote(tag, safe='')}", folder, "feed", folder + "index.html", title)


def make_feed(config: Config, lang: str, specific: str, folder: str, name: str, home: str, title: str) -> Feed:
    """Describe a feed; its id is a tag URI under the site's authority, unlike any entry id."""
    return Feed(
        id=f"tag:{config.tag_authority}:feeds/{specific}",
        lang=lang,
        title=clean_text(title),
        description=clean_text(config.text(config.description, lang)) or clean_text(title),
        folder=folder,
        name=name,
        home=home,
    )


def feed_updated(site: Site, entries: tuple[Entry, ...]) -> datetime:
    """Return the newest change among the entries; an empty feed dates from the tag authority."""
    if entries:
        return max(e.modified for e in entries).astimezone(site.config.tz)
    return authority_date(site.config.tag_authority)


def authority_date(tag_authority: str) -> datetime:
    """Return the date of an RFC 4151 authority ('example.org,2024' -> 2024-01-01 UTC)."""
    parts = [int(p) for p in tag_authority.rsplit(",", 1)[1].split("-")]
    parts += [1] * (3 - len(parts))
    return datetime.combine(date(*parts), time(0, 0), tzinfo=timezone.utc)


def site_title(config: Config, lang: str) -> str:
    return config.text(config.title, lang)


def site_author(site: Site, lang: str) -> str:
    return clean_text(site.config.author or site_title(site.config, lang))


def feed_content(site: Site, templates: Templates, entry: Entry) -> str:
    """Render an entry's full content for feeds: notices, image, body and action, absolute links."""
    fragment = templates.render("feed_entry.html", entry.lang, entry=entry, body=entry.html, now=site.now)
    fragment = relink(fragment, site.config.base_url)
    # A bare "#fn:1" would resolve against the feed's own URL in a reader: point it at the page.
    if 'href="#' in fragment:  # rare (footnotes), and the pattern's leading \s makes a full scan slow
        fragment = _FRAGMENT_LINK.sub(lambda m: m.group(1) + entry_url(site, entry) + "#", fragment)
    return clean_text(fragment).strip()


def entry_url(site: Site, entry: Entry) -> str:
    return absolute(site.config, entry_page(entry, site.config))


def atom(site: Site, feed: Feed, contents: dict[str, str]) -> bytes:
    """Render a feed as Atom 1.0 (RFC 4287)."""
    config = site.config
    lines = [XML_DECLARATION, f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{_xml_attribute(feed.lang)}">',
             _element("id", _required(feed.id, "id")),
             _element("title", _required(feed.title, "title")),
             _element("updated", feed.updated.isoformat())]
    author = site_author(site, feed.lang)
    if author:
        lines += ["  <author>", _element("name", author, "    "), _element("uri", config.base_url, "    "),
                  "  </author>"]
    lines += [_element("link", None, "  ", href=absolute(config, feed.path("atom")), rel="self", type=FORMATS["atom"]),
              _element("link", None, "  ", href=absolute(config, feed.home), rel="alternate", type="text/html",
                       hreflang=feed.lang),
              _element("generator", GENERATOR)]
    if feed.description:
        lines.append(_element("subtitle", feed.description))
    entries = [_atom_entry(entry, contents[entry.id], entry_url(site, entry), config.tz) for entry in feed.entries]
    return b"\n".join(["\n".join(lines).encode("utf-8"), *entries, b"</feed>\n"])


# An entry is in its language's feed, its alerts' and each of its tags', and looks the same in
# all of them: its part of each format is written and encoded once. The key holds every input
# (the content too: Entry's equality leaves out its html).
@lru_cache(maxsize=256)
def _atom_entry(entry: Entry, content: str, url: str, tz: tzinfo) -> bytes:
    """Return an Atom entry. Its title and summary are plain text sent as escaped HTML
    (type="html"), so a title such as 'Raid <script>' shows as written and never runs."""
    lines = ["  <entry>",
             _element("id", _required(entry.id, "entry id"), "    "),
             _element("title", html.escape(entry.title, quote=False) or None, "    ", type="html"),
             _element("updated", entry.modified.astimezone(tz).isoformat(), "    "),
             _element("content", content or None, "    ", type="html"),
             _element("link", None, "    ", href=url)]  # only the href, as feedgen wrote it
    if entry.summary:
        lines.append(_element("summary", html.escape(entry.summary, quote=False), "    ", type="html"))
    lines += [_element("category", None, "    ", term=tag, label=tag) for tag in entry.tags]
    lines += [_element("published", entry.date.astimezone(tz).isoformat(), "    "), "  </entry>"]
    return "\n".join(lines).encode("utf-8")


def rss(site: Site, feed: Feed, contents: dict[str, str]) -> bytes:
    """Render a feed as RSS 2.0, with atom:link rel=self and content:encoded."""
    lines = [XML_DECLARATION,
             '<rss xmlns:atom="http://www.w3.org/2005/Atom" xmlns:content="http://purl.org/rss/1.0/modules/content/"'
             ' version="2.0">',
             "  <channel>",
             _element("title", _required(feed.title, "title"), "    "),
             _element("link", absolute(site.config, feed.home), "    "),
             _element("description", _required(feed.description, "description"), "    "),
             _element("atom:link", None, "    ", href=absolute(site.config, feed.path("rss")), rel="self",
                      type=FORMATS["rss"]),
             _element("docs", RSS_DOCS, "    "),
             _element("generator", GENERATOR, "    "),
             _element("language", feed.lang, "    "),
             _element("lastBuildDate", _rfc822(feed.updated), "    ")]
    items = [_rss_item(entry, contents[entry.id], entry_url(site, entry), site.config.tz) for entry in feed.entries]
    return b"\n".join(["\n".join(lines).encode("utf-8"), *items, b"  </channel>\n</rss>\n"])


@lru_cache(maxsize=256)
def _rss_item(entry: Entry, content: str, url: str, tz: tzinfo) -> bytes:
    """Return an RSS item: the summary in description and the full text in content:encoded, or the
    full text in description when there is no summary. RSS has no type for titles, so only < and >
    are escaped, which reads right whether a reader takes the title as text or as HTML."""
    lines = ["    <item>", _element("title", _escape_markup(entry.title) or None, "      "),
             _element("link", url, "      ")]
    if entry.summary:
        lines += [_element("description", html.escape(entry.summary, quote=False), "      "),
                  _element("content:encoded", content, "      ")]
    else:
        lines.append(_element("description", content, "      "))
    lines.append(_element("guid", _required(entry.id, "entry id"), "      ", isPermaLink="false"))
    lines += [_element("category", tag, "      ") for tag in entry.tags]
    lines += [_element("pubDate", _rfc822(entry.date.astimezone(tz)), "      "), "    </item>"]
    return "\n".join(lines).encode("utf-8")


# Atom and RSS are written directly, byte for byte as feedgen and lxml wrote them (pretty-printed,
# two spaces a level; tests/test_feeds.py checks that lxml writes the same bytes): building each
# feed as an lxml tree, and the Atom one a second time to mark titles type="html", cost 4 times as much.
XML_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>"
RSS_DOCS = "http://www.rssboard.org/rss-specification"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _element(name: str, text: str | None, indent: str = "  ", **attributes: str) -> str:
    """Return one element on its own line: <name a="v">text</name>, or <name a="v"/> when text is None."""
    attrs = "".join(f' {key}="{_xml_attribute(value)}"' for key, value in attributes.items())
    if text is None:
        return f"{indent}<{name}{attrs}/>"
    return f"{indent}<{name}{attrs}>{_xml_text(text)}</{name}>"


def _xml_text(text: str) -> str:
    """Escape text as lxml does: &, < and >, and a carriage return, which a parser would turn into a newline."""
    if not _XML_SPECIAL.search(text):  # most ids, URLs, dates and tags: nothing to escape or refuse
        return text
    return _escaped_content(text) if len(text) > LONG_TEXT else _escape_xml_text(text)


def _escape_xml_text(text: str) -> str:
    text = _xml_safe(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r", "&#13;") if "\r" in text else text


_XML_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# An entry's content, the one long text, goes into its Atom entry and its RSS item one after the
# other: checked and escaped once for both.
LONG_TEXT = 1024
_escaped_content = lru_cache(maxsize=128)(_escape_xml_text)


def _xml_attribute(value: str) -> str:
    """Escape an attribute value as lxml does, keeping its tabs and line breaks as references."""
    value = _xml_text(value)
    if '"' in value or "\t" in value or "\n" in value:
        value = value.replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")
    return value


def _xml_safe(text: str) -> str:
    """Refuse, as lxml did, a character XML 1.0 cannot carry; clean_text strips them from every input first."""
    if _FORBIDDEN_IN_XML.search(text):
        raise ValueError(f"a character XML cannot carry reached a feed: {text[:60]!r}")
    return text


_FORBIDDEN_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _required(value: str, name: str) -> str:
    if not value:  # feedgen's rule: a feed or entry without one is a bug, not an empty element
        raise ValueError(f"required feed field not set ({name})")
    return value


def _rfc822(moment: datetime) -> str:
    """Return an RFC 822 date with its zone, e.g. 'Sun, 22 Dec 2024 13:31:55 +0400', in any locale."""
    return f"{_DAYS[moment.weekday()]}, {moment:%d} {_MONTHS[moment.month - 1]} {moment:%Y %H:%M:%S %z}"


def _escape_markup(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")


def json_feed(site: Site, feed: Feed, contents: dict[str, str]) -> bytes:
    """Render a feed as JSON Feed 1.1, as json.dumps(document, ensure_ascii=False, indent=2,
    sort_keys=True) would: keys sorted so the bytes are stable."""
    config = site.config
    author = (site_author(site, feed.lang), config.base_url)
    document = {
        "version": JSON_FEED_VERSION,
        "title": feed.title,
        "description": feed.description,
        "home_page_url": absolute(config, feed.home),
        "feed_url": absolute(config, feed.path("json")),
        "language": feed.lang,
        "authors": [{"name": author[0], "url": author[1]}],
        "items": [json_item(entry, contents[entry.id], entry_url(site, entry), config, author)
                  for entry in feed.entries],
    }
    members = [_json_items(value) if key == "items"
               else f'  {_json_scalar(key)}: {_json_text(value, "  ")}'.encode("utf-8")
               for key, value in sorted(document.items())]
    return b"{\n" + b",\n".join(members) + b"\n}\n"


def _json_items(items: list[bytes]) -> bytes:
    """Return the "items" member, its items written (and encoded) already."""
    if not items:
        return b'  "items": []'
    return b'  "items": [\n' + b",\n".join(items) + b"\n  ]"


def json_item(entry: Entry, content: str, url: str, config: Config, author: tuple[str, str]) -> bytes:
    """Return an item of a JSON Feed as it sits in the feed's item list, indented two levels."""
    image = absolute(config, entry.image.lstrip("/")) if entry.image and not entry.retracted else ""
    return _json_item(entry, content, url, config.tz, author, image)


@lru_cache(maxsize=256)
def _json_item(entry: Entry, content: str, url: str, tz: tzinfo, author: tuple[str, str], image: str) -> bytes:
    item = {
        "id": entry.id,
        "url": url,
        "title": entry.title,
        "content_html": content,
        "date_published": entry.date.astimezone(tz).isoformat(),
        "date_modified": entry.modified.astimezone(tz).isoformat(),
        "language": entry.lang,
        "authors": [{"name": author[0], "url": author[1]}],
        "tags": list(entry.tags),
    }
    if entry.summary:
        item["summary"] = entry.summary
    if image:
        item["image"] = image
    return ("    " + _json_text(item, "    ")).encode("utf-8")


def _json_text(value, indent: str = "") -> str:
    """Return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True), several times faster:
    the standard library falls back to its pure-Python encoder whenever it indents."""
    if isinstance(value, dict) and value:
        inner = indent + "  "
        members = (f"{inner}{_json_scalar(key)}: {_json_text(item, inner)}" for key, item in sorted(value.items()))
        return "{\n" + ",\n".join(members) + f"\n{indent}}}"
    if isinstance(value, (list, tuple)) and value:
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + _json_text(item, inner) for item in value) + f"\n{indent}]"
    return _json_scalar(value)


def _json_scalar(value) -> str:
    """Return a string, number, true, false, null, {} or [] as json.dumps(value, ensure_ascii=False) does."""
    if type(value) is str:
        return json.encoder.encode_basestring(value)  # what json.dumps calls for a string
    return _json_encode(value)


_json_encode = json.JSONEncoder(ensure_ascii=False).encode


@lru_cache(maxsize=1024)  # every page of a language advertises the same feeds
def discovery(templates: Templates, lang: str, tag: str = "") -> tuple[dict, ...]:
    """Return the feeds a page in `lang` advertises: the language's, its alerts, and a tag's."""
    feeds = [language_feed(templates, lang), alerts_feed(templates, lang)]
    if tag:
        feeds.insert(0, tag_feed(templates, lang, tag))
    return tuple(
        {"path": feed.path(fmt), "type": FORMATS[fmt], "title": f"{feed.title} ({label})", "lang": lang}
        for feed in feeds for fmt, label in (("atom", "Atom"), ("rss", "RSS"), ("json", "JSON Feed"))
    )


def feed_titles(templates: Templates, lang: str):
    """Return the macros of _feed_titles.txt in `lang`, so feed titles are translated like any template."""
    return templates.get("_feed_titles.txt", lang).module
