"""The static web archive: entry pages, listings per language and tag, actions, sitemap.

Links between archive pages, to the stylesheet and to images are relative (mirror-ready:
the same tree works from a mirror domain, a sub-path or an onion service); only
canonical links and the sitemap use base_url.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

import babel

from publisher import feeds
from publisher.content import Entry
from publisher.issues import issue_dir, published_issues
from publisher.markup import relink
from publisher.templates import Templates, text_direction
from publisher.units import Keys, NoKeys, Unit, rendered
from publisher.urls import absolute, entry_page, relative, root_prefix, tag_dir
from publisher.website import Site

PAGE_SIZE = 30
STATIC = "static"
STYLESHEET = f"{STATIC}/style.css"
_HEADING = re.compile(r"<(/?)h([1-6])\b")
_COLOR_SCHEME = re.compile(r"^\s*color-scheme:[^;]*;\n?", re.M)
_ALIGN = re.compile(r'(<t[dh]\b[^>]*?)\salign="(left|right|center)"')


@dataclass(frozen=True)
class IssueLink:
    """A newsletter issue as the archive lists it: its web copy and its week."""

    page: str  # output path of the issue's web copy
    number: int
    starts: datetime
    count: int


def files(site: Site, templates: Templates) -> Iterator[tuple[str, bytes]]:
    """Yield every archive page, the sitemap and the theme's static files."""
    return rendered(units(site, templates, NoKeys()))


def units(site: Site, templates: Templates, keys: Keys) -> Iterator[Unit]:
    """Yield every archive page, the sitemap and the static files as units, each keyed on what it shows."""
    config = site.config
    for entry in site.entries:  # its page's path follows from the entry, so the key need not name it
        yield keys.entry_unit(partial(_entry_page, site, templates, entry), entry, site.translations(entry))
    issues = issue_links(site)
    for lang in config.languages:
        yield from listing_pages(site, templates, keys, lang, issues[lang])
        page = issues_path(lang)
        yield keys.unit(partial(_one, page, render_page, site, templates, page, lang, "issues.html",
                                issues=issues[lang]), "issues", page, issues[lang])
        yield from tag_pages(site, templates, keys, lang)
        page, actions = actions_path(lang), site.open_actions(lang)
        yield keys.unit(partial(_one, page, render_page, site, templates, page, lang, "actions.html",
                                actions=actions), "actions", page, actions)
    lang = config.default_language
    yield keys.unit(partial(_one, "index.html", render_page, site, templates, "index.html", lang, "root.html"), "root")
    yield keys.unit(partial(_one, "404.html", render_not_found, site, templates), "404")
    yield keys.unit(partial(_one, "sitemap.xml", render_sitemap, site, templates), "sitemap", sitemap_inputs(site))
    yield keys.unit(partial(_one, "robots.txt", render_robots, site), "robots")
    yield keys.unit(partial(static_files, templates), "static")


def sitemap_inputs(site: Site) -> bytes:
    """Return what the sitemap shows of each entry (address, last change, translations, tags: their pages) as bytes.

    Each entry stands for its place (content.place_digest of exactly those fields, made with the
    entry and kept by the cache): 10,000 entries read at C speed, and an edit of a body or a
    title leaves the key as it was.
    """
    return b"".join([entry.place for entry in site.entries])


def _entry_page(site: Site, templates: Templates, entry: Entry) -> list[tuple[str, bytes]]:
    return [(entry_page(entry, site.config), render_entry(site, templates, entry))]


def _one(path: str, render: Callable[..., bytes], *args, **kwargs) -> list[tuple[str, bytes]]:
    """Render one file of a unit."""
    return [(path, render(*args, **kwargs))]


def render_robots(site: Site) -> bytes:
    return f"User-agent: *\nAllow: /\n\nSitemap: {absolute(site.config, 'sitemap.xml')}\n".encode()


def render_entry(site: Site, templates: Templates, entry: Entry) -> bytes:
    page = entry_page(entry, site.config)
    body = align_by_class(nest_headings(relink(entry.html, root_prefix(page))))
    return render_page(site, templates, page, entry.lang, "entry.html", entry=entry,
                       translations=site.translations(entry), body=body)


def nest_headings(fragment: str, top: int = 2) -> str:
    """Renumber an entry body's headings so they start at h2 under the page's h1 and skip no level."""
    tags = _HEADING.findall(fragment)  # (slash, level) of every heading tag, in order
    levels = sorted({int(level) for slash, level in tags if not slash})
    if not levels:
        return fragment
    rank = {level: min(top + index, 6) for index, level in enumerate(levels)}
    opened: list[int] = []
    previous = top - 1
    renumbered = []
    for slash, level in tags:
        if slash:
            renumbered.append(opened.pop() if opened else rank[int(level)])
        else:
            previous = min(rank[int(level)], previous + 1)
            opened.append(previous)
            renumbered.append(previous)
    if all(new == int(level) for new, (_, level) in zip(renumbered, tags)):
        return fragment  # the usual case: Markdown's ## and ### already sit under the h1
    numbers = iter(renumbered)
    return _HEADING.sub(lambda match: f"<{match.group(1)}h{next(numbers)}", fragment)


def align_by_class(fragment: str) -> str:
    """Turn table cells' align attributes (kept for email clients) into classes: HTML5 made align obsolete."""
    if ' align="' not in fragment:
        return fragment
    return _ALIGN.sub(lambda m: f'{m.group(1)} class="align-{m.group(2)}"', fragment)


def listing_pages(site: Site, templates: Templates, keys: Keys, lang: str,
                  issues: tuple[IssueLink, ...] = ()) -> Iterator[Unit]:
    """Yield a language's home page (latest issue, open actions, newest entries) and older pages."""
    for page, chunk, pages in paginate(f"{lang}/", site.in_language(lang)):
        home = pages["number"] == 1
        actions = site.open_actions(lang) if home else ()
        latest = issues[0] if home and issues else None
        yield keys.unit(partial(_one, page, render_page, site, templates, page, lang, "index.html", entries=chunk,
                                pages=pages, home=home, actions=actions, latest_issue=latest),
                        "listing", page, chunk, pages, home, actions, latest)


def tag_pages(site: Site, templates: Templates, keys: Keys, lang: str) -> Iterator[Unit]:
    """Yield the list of a language's tags and a paginated page per tag."""
    counts = site.tag_counts(lang)
    index = tags_path(lang)
    yield keys.unit(partial(_one, index, render_page, site, templates, index, lang, "tags.html", tags=counts),
                    "tags", index, counts)
    for tag, _ in counts:
        for page, chunk, pages in paginate(tag_dir(lang, tag), site.with_tag(lang, tag)):
            yield keys.unit(partial(_one, page, render_page, site, templates, page, lang, "tag.html", tag=tag,
                                    entries=chunk, pages=pages), "tag", page, tag, chunk, pages)


def paginate(folder: str, entries: tuple[Entry, ...]) -> Iterator[tuple[str, tuple[Entry, ...], dict]]:
    """Split entries into pages: folder/index.html, then folder/page/2/index.html and on."""
    count = max(1, -(-len(entries) // PAGE_SIZE))
    for number in range(1, count + 1):
        pages = {
            "number": number,
            "count": count,
            "previous": listing_path(folder, number - 1) if number > 1 else None,
            "next": listing_path(folder, number + 1) if number < count else None,
        }
        yield listing_path(folder, number), entries[(number - 1) * PAGE_SIZE: number * PAGE_SIZE], pages


def listing_path(folder: str, number: int) -> str:
    """Return the output path of page `number` of a listing; `folder` is a language code or a folder."""
    folder = folder if folder.endswith("/") else f"{folder}/"
    return f"{folder}index.html" if number == 1 else f"{folder}page/{number}/index.html"


def tags_path(lang: str) -> str:
    return f"{lang}/tags/index.html"


def actions_path(lang: str) -> str:
    return f"{lang}/actions/index.html"


def issue_links(site: Site) -> dict[str, tuple[IssueLink, ...]]:
    """Return, per language, the newsletter issues that have gone out or are due, newest first."""
    links: dict[str, list[IssueLink]] = {lang: [] for lang in site.config.languages}
    for issue in published_issues(site):
        links[issue.lang].append(IssueLink(issue_dir(issue) + "index.html", issue.number, issue.starts,
                                             len(issue.entries)))
    return {lang: tuple(reversed(items)) for lang, items in links.items()}


def issues_path(lang: str) -> str:
    return f"{lang}/newsletter/index.html"


def render_page(site: Site, templates: Templates, page: str, lang: str, template: str = "index.html",
                tag: str = "", **context) -> bytes:
    """Render one archive page with the helpers every archive template may use.

    The helpers depend on the page only through its depth, `root`: so `chrome`, the key under
    which base.html shares its head links, header and footer between pages, is the language,
    the root and the tag whose feeds the page advertises.
    """
    config = site.config
    root = root_prefix(page)
    html = templates.render(
        template, lang,
        page=page,
        root=root,
        chrome=(lang, root, tag),
        canonical=absolute(config, page),
        href=lambda target: relative(page, target),
        entry_page=lambda e: entry_page(e, config),
        home_of=lambda code: listing_path(code, 1),
        tag_page=lambda code, name: tag_dir(code, name) + "index.html",
        tags_page=tags_path,
        actions_page=actions_path,
        issues_page=issues_path,
        language_name=language_name,
        direction=text_direction,
        localized_in=config.text,
        feeds=feeds.discovery(templates, lang, tag),
        tag=tag,
        now=site.now,
        **context,
    )
    return html.encode("utf-8")


def render_not_found(site: Site, templates: Templates) -> bytes:
    """Render 404.html: served at any depth, so its style is inline and its links start at the site path."""
    lang = site.config.default_language
    stylesheet = dict(static_files(templates)).get(STYLESHEET, b"").decode("utf-8")
    # The page's <meta name="color-scheme"> says the same, and the Nu checker's CSS parser
    # rejects the property inside a <style> element.
    stylesheet = _COLOR_SCHEME.sub("", stylesheet)
    html = templates.render("404.html", lang, stylesheet=stylesheet, site_path=urlsplit(site.config.base_url).path,
                            language_name=language_name, direction=text_direction, localized_in=site.config.text,
                            feeds=feeds.discovery(templates, lang))
    return html.encode("utf-8")


def render_sitemap(site: Site, templates: Templates) -> bytes:
    """Render sitemap.xml: every page's absolute URL, when it last changed, and its translations."""
    return templates.render("sitemap.xml", site.config.default_language, urls=sitemap_urls(site)).encode("utf-8")


def sitemap_urls(site: Site) -> list[dict]:
    config = site.config
    day = lambda moment: moment.astimezone(config.tz).isoformat()  # noqa: E731 - W3C datetime with offset
    urls = []
    if site.entries:
        urls.append({"loc": config.base_url, "lastmod": day(max(e.modified for e in site.entries)), "alternates": ()})
    for lang in config.languages:
        entries = site.in_language(lang)
        newest = day(max(e.modified for e in entries)) if entries else ""
        urls.append({"loc": absolute(config, listing_path(lang, 1)), "lastmod": newest, "alternates": ()})
        for tag in site.tags(lang):
            tagged = site.with_tag(lang, tag)
            urls.append({"loc": absolute(config, tag_dir(lang, tag)), "lastmod": day(max(e.modified for e in tagged)),
                         "alternates": ()})
    for entry in site.entries:
        family = (entry, *site.translations(entry)) if entry.key else ()
        alternates = tuple({"lang": e.lang, "href": absolute(config, entry_page(e, config))}
                           for e in sorted(family, key=lambda e: config.languages.index(e.lang)))
        urls.append({"loc": absolute(config, entry_page(entry, config)), "lastmod": day(entry.modified),
                     "alternates": alternates if len(alternates) > 1 else ()})
    return urls


@lru_cache(maxsize=None)
def language_name(code: str) -> str:
    """Return a language's own name for itself, e.g. 'Azərbaycan' for az."""
    locale = babel.Locale.parse(code)
    name = locale.get_display_name(locale) or code
    return name[:1].upper() + name[1:]


def static_files(templates: Templates) -> Iterator[tuple[str, bytes]]:
    """Yield the theme's static files (the stylesheet), the site's overriding the built-in."""
    seen: set[str] = set()
    for folder in templates.folders:
        base = Path(folder) / STATIC
        for path in sorted(base.rglob("*")) if base.is_dir() else ():
            rel = f"{STATIC}/{path.relative_to(base).as_posix()}"
            if path.is_file() and rel not in seen:
                seen.add(rel)
                yield rel, path.read_bytes()
