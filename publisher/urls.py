"""Where each output lives, and how pages link to each other.

Pages inside the archive link to each other relatively, so the same tree works from a
mirror domain, a sub-path or an onion service; feeds and emails use `base_url`.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import lru_cache
from urllib.parse import quote

from publisher.config import Config
from publisher.content import Entry


def entry_dir(entry: Entry, config: Config) -> str:
    """Return the folder of an entry's page, e.g. en/2017/09/mass-detentions/."""
    date = entry.date
    return f"{entry.lang}/{_year_month(date, date.tzinfo, date.fold, config.tz)}{entry.slug}/"


@lru_cache(maxsize=16384)  # every listing, tag page and feed links the entry: converting its date is the cost
def _year_month(date: datetime, zone: tzinfo | None, fold: int, tz: tzinfo) -> str:
    """Return 'YYYY/MM/' of a date in the site's zone; `zone` and `fold` make equal keys mean equal dates."""
    local = date.astimezone(tz)
    return f"{local.year:04d}/{local.month:02d}/"  # as %Y/%m, without strftime's cost


def entry_page(entry: Entry, config: Config) -> str:
    """Return the output path of an entry's web page."""
    return entry_dir(entry, config) + "index.html"


def tag_dir(lang: str, tag: str) -> str:
    """Return the output folder of a tag's listing; tags are words, safe as folder names.

    The folder keeps the tag as written (e.g. en/tags/полиция/), so a server finds it
    under the percent-encoded URL that `absolute` and `relative` make.
    """
    return f"{lang}/tags/{tag}/"


def absolute(config: Config, target: str) -> str:
    """Return the public URL of an output path, for feeds, emails and canonical links."""
    return config.base_url + _page_url(target)


def relative(from_page: str, target: str) -> str:
    """Return a link from one output page to another that works under any prefix."""
    return "../" * from_page.count("/") + _page_url(target) or "./"


def root_prefix(from_page: str) -> str:
    """Return the relative prefix that leads from a page back to the output root."""
    return "../" * from_page.count("/")


@lru_cache(maxsize=16384)  # the same few targets (feeds, home pages, tags, entries) recur on every page
def _page_url(target: str) -> str:
    """Return the URL path of an output path: folders for index pages, non-ASCII percent-encoded."""
    path = target[: -len("index.html")] if target.endswith("index.html") else target
    return quote(path, safe="/")
