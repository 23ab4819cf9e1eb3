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
from datetime import date, datetime, time, timezone
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Iterator
from urllib.parse import quote

from publisher.config import Config
from publisher.content import Entry
from publisher.markup import relink
from publisher.templates import Templates
from publisher.text import clean_text
from publisher.units import Keys, NoKeys, Unit, rendered
from publisher.urls import absolute, entry_page, tag_dir
from publisher.website import Site

if TYPE_CHECKING:
    from feedgen.feed import FeedGenerator

GENERATOR = "publisher"  # no version: an upgrade must not change every feed
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
ATOM = "{http://www.w3.org/2005/Atom}"
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
    return rendered(units(site, templates, NoKeys()))


def units(site: Site, templates: Templates, keys: Keys) -> Iterator[Unit]:
    """Yield each feed, in all three formats, as a unit keyed on its description and entries."""
    contents: dict[str, str] = {}  # an entry is in several feeds; render it once
    for feed in feeds_of(site, templates):
        yield keys.unit(partial(_formats, site, templates, feed, contents), "feed", feed)


def _formats(site: Site, templates: Templates, feed: Feed, memo: dict[str, str]) -> list[tuple[str, bytes]]:
    for entry in feed.entries:
        if entry.id not in memo:
            memo[entry.id] = feed_content(site, templates, entry)
    contents = {entry.id: memo[entry.id] for entry in feed.entries}
    return [(feed.path("atom"), atom(site, feed, contents)), (feed.path("rss"), rss(site, feed, contents)),
            (feed.path("json"), json_feed(site, feed, contents))]


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
    fragment = _FRAGMENT_LINK.sub(lambda m: m.group(1) + entry_url(site, entry) + "#", fragment)
    return clean_text(fragment).strip()


def entry_url(site: Site, entry: Entry) -> str:
    return absolute(site.config, entry_page(entry, site.config))


def atom(site: Site, feed: Feed, contents: dict[str, str]) -> bytes:
    """Render a feed as Atom 1.0 (RFC 4287)."""
    fg = _generator(site, feed)
    fg.link(href=absolute(site.config, feed.path("atom")), rel="self", type=FORMATS["atom"])
    fg.link(href=absolute(site.config, feed.home), rel="alternate", type="text/html", hreflang=feed.lang)
    _add_entries(site, feed, fg, contents, "atom")
    return _titles_as_html(fg.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True))


def _titles_as_html(document: bytes) -> bytes:
    """Mark entry titles type="html" (feedgen cannot): their text is escaped HTML, never markup."""
    import lxml.etree  # imported with feedgen, when a feed is rendered (see _generator)

    root = lxml.etree.fromstring(document)
    for title in root.iterfind(f"{ATOM}entry/{ATOM}title"):
        title.set("type", "html")
    return lxml.etree.tostring(root, pretty_print=True, encoding="UTF-8", xml_declaration=True)


def rss(site: Site, feed: Feed, contents: dict[str, str]) -> bytes:
    """Render a feed as RSS 2.0, with atom:link rel=self and content:encoded."""
    fg = _generator(site, feed)
    # feedgen writes the self link as atom:link and the last link added as the channel <link>.
    fg.link(href=absolute(site.config, feed.path("rss")), rel="self", type=FORMATS["rss"])
    fg.link(href=absolute(site.config, feed.home), rel="alternate")
    fg.lastBuildDate(feed.updated)  # feedgen defaults it to now
    _add_entries(site, feed, fg, contents, "rss")
    return fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True)


def _generator(site: Site, feed: Feed) -> FeedGenerator:
    # Imported here: most warm builds render no feed, and feedgen with lxml and dateutil is
    # some 40 ms of every build's start.
    from feedgen.feed import FeedGenerator

    fg = FeedGenerator()
    fg.id(feed.id)
    fg.title(feed.title)
    fg.subtitle(feed.description)
    fg.author({"name": site_author(site, feed.lang), "uri": site.config.base_url})
    fg.language(feed.lang)
    fg.updated(feed.updated)  # feedgen defaults it to now
    fg.generator(GENERATOR)  # feedgen defaults it to its own name, version and URL
    return fg


def _add_entries(site: Site, feed: Feed, fg: FeedGenerator, contents: dict[str, str], fmt: str) -> None:
    """Add the feed's entries in order. Titles and summaries are plain text, but many readers
    render RSS titles and descriptions as HTML, so they go out as escaped HTML: a title such
    as 'Raid <script>' shows as written and never runs."""
    tz = site.config.tz
    for entry in feed.entries:
        fe = fg.add_entry(order="append")  # feedgen prepends by default, reversing the order
        fe.id(entry.id)
        fe.guid(entry.id, permalink=False)
        # Atom says type="html" (set afterwards); RSS has no type, so only < and > are escaped,
        # which reads right whether a reader takes the title as text or as HTML.
        fe.title(html.escape(entry.title, quote=False) if fmt == "atom" else _escape_markup(entry.title))
        fe.link(href=entry_url(site, entry), rel="alternate", type="text/html", hreflang=entry.lang)
        fe.published(entry.date.astimezone(tz))
        fe.updated(entry.modified.astimezone(tz))
        fe.content(contents[entry.id], type="html")
        if entry.summary:
            fe.summary(html.escape(entry.summary, quote=False), type="html")
        if entry.tags:  # one call: feedgen re-checks every category it holds on each call
            fe.category([{"term": tag, "label": tag} for tag in entry.tags])


def _escape_markup(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")


def json_feed(site: Site, feed: Feed, contents: dict[str, str]) -> bytes:
    """Render a feed as JSON Feed 1.1, keys sorted so the bytes are stable."""
    config = site.config
    author = {"name": site_author(site, feed.lang), "url": config.base_url}
    document = {
        "version": JSON_FEED_VERSION,
        "title": feed.title,
        "description": feed.description,
        "home_page_url": absolute(config, feed.home),
        "feed_url": absolute(config, feed.path("json")),
        "language": feed.lang,
        "authors": [author],
        "items": [json_item(site, entry, contents[entry.id], author) for entry in feed.entries],
    }
    return (json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


def json_item(site: Site, entry: Entry, content: str, author: dict) -> dict:
    tz = site.config.tz
    item = {
        "id": entry.id,
        "url": entry_url(site, entry),
        "title": entry.title,
        "content_html": content,
        "date_published": entry.date.astimezone(tz).isoformat(),
        "date_modified": entry.modified.astimezone(tz).isoformat(),
        "language": entry.lang,
        "authors": [author],
        "tags": list(entry.tags),
    }
    if entry.summary:
        item["summary"] = entry.summary
    if entry.image and not entry.retracted:
        item["image"] = absolute(site.config, entry.image.lstrip("/"))
    return item


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
