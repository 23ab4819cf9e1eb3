"""The static web archive: a page per entry and paginated listings per language.

Links between archive pages are relative (mirror-ready); only canonical links use base_url.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from publisher.content import Entry
from publisher.markup import relink
from publisher.templates import Templates
from publisher.urls import absolute, entry_page, relative, root_prefix
from publisher.website import Site

PAGE_SIZE = 30
STATIC = "static"


def files(site: Site, templates: Templates) -> Iterator[tuple[str, bytes]]:
    """Yield every archive page and the theme's static files."""
    for entry in site.entries:
        yield entry_page(entry, site.config), render_entry(site, templates, entry)
    for lang in site.config.languages:
        yield from listing_pages(site, templates, lang)
    yield "index.html", render_page(site, templates, "index.html", site.config.default_language,
                                    entries=site.in_language(site.config.default_language)[:PAGE_SIZE],
                                    pages=_pagination("index.html", 1, 1), home=True)
    yield from static_files(templates)


def render_entry(site: Site, templates: Templates, entry: Entry) -> bytes:
    page = entry_page(entry, site.config)
    return render_page(site, templates, page, entry.lang, template="entry.html", entry=entry,
                       translations=site.translations(entry), body=relink(entry.html, root_prefix(page)))


def listing_pages(site: Site, templates: Templates, lang: str) -> Iterator[tuple[str, bytes]]:
    entries = site.in_language(lang)
    count = max(1, -(-len(entries) // PAGE_SIZE))
    for number in range(1, count + 1):
        page = listing_path(lang, number)
        chunk = entries[(number - 1) * PAGE_SIZE: number * PAGE_SIZE]
        yield page, render_page(site, templates, page, lang, entries=chunk,
                                pages=_pagination(page, number, count, lang), home=number == 1)


def listing_path(lang: str, number: int) -> str:
    return f"{lang}/index.html" if number == 1 else f"{lang}/page/{number}/index.html"


def render_page(site: Site, templates: Templates, page: str, lang: str, template: str = "index.html", **context) -> bytes:
    """Render one archive page with the helpers every archive template may use."""
    config = site.config
    html = templates.render(
        template, lang,
        page=page,
        root=root_prefix(page),
        canonical=absolute(config, page),
        href=lambda target: relative(page, target),
        entry_page=lambda e: entry_page(e, config),
        home_of=lambda code: listing_path(code, 1),
        now=site.now,
        **context,
    )
    return html.encode("utf-8")


def _pagination(page: str, number: int, count: int, lang: str = "") -> dict:
    return {
        "number": number,
        "count": count,
        "previous": listing_path(lang, number - 1) if lang and number > 1 else None,
        "next": listing_path(lang, number + 1) if lang and number < count else None,
    }


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
