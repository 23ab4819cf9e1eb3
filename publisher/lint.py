"""The safety lint: warnings about what could hurt a reader or break a page, each at its line.

It reads each entry's Markdown source rather than the sanitised HTML, because sanitising
already removed what we warn about (remote images) and loses the line numbers.
"""

from __future__ import annotations

import html
import posixpath
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.parser import BytesParser
from typing import Iterable, Iterator, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from publisher.config import Config
from publisher.content import Entry
from publisher.images import is_image
from publisher.problems import Problem
from publisher.render import source_folder
from publisher.tracking import is_tracking
from publisher.urls import entry_page
from publisher.website import Site

# Quantifiers are bounded so that a hostile line cannot make a pattern take quadratic time.
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE = re.compile(r"(!?)\[((?:[^\[\]\\]|\\.|\[[^\[\]]{0,500}\]){0,1000})\]\(\s*(<[^<>]{0,2048}>|(?:[^\s()]|\([^\s()]{0,200}\)){0,2048})(?:\s+(?:\"[^\"]{0,500}\"|'[^']{0,500}'|\([^()]{0,500}\)))?\s*\)")
_REFERENCE_USE = re.compile(r"(!?)\[((?:[^\[\]\\]|\\.){0,1000})\](?:\[((?:[^\[\]\\]|\\.){0,1000})\])?")
_REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[(?!\^)((?:[^\]\\]|\\.)+)\]:\s*(<[^>]*>|\S+)")  # not footnotes
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^\s<>]{0,2048})>", re.I)
_HTML_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]{0,20})\b([^<>]{0,4096})>")
_HTML_ATTRIBUTE = re.compile(r"""([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*(?:=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")
MEDIA_TAGS = {"img", "video", "audio", "source", "track", "iframe", "embed", "object", "picture", "input", "image"}
URL_ATTRIBUTES = {"href", "src", "data", "poster", "srcset", "background"}


@dataclass(frozen=True)
class Link:
    """A URL written in an entry body, with where it is and whether it loads as media."""

    line: int
    url: str
    media: bool
    alt: str | None = None  # images only; None when the alt attribute is missing


def lint(entries: Iterable[Entry], config: Config, now: datetime, site_paths: set[str]) -> list[Problem]:
    """Return the safety warnings of every entry; `site_paths` are the output paths a link may reach."""
    problems: list[Problem] = []
    for entry in entries:
        problems += lint_entry(entry, config, now, site_paths)
    return problems


def lint_site(site: Site, files: set[str]) -> list[Problem]:
    """Lint published entries against the built files; drafts and embargoed ones may also link to each other."""
    config = site.config
    upcoming = files | {entry_page(e, config) for e in site.hidden}
    return lint(site.entries, config, site.now, files) + lint(site.hidden, config, site.now, upcoming)


def lint_entry(entry: Entry, config: Config, now: datetime, site_paths: set[str]) -> list[Problem]:
    """Return the safety warnings of one entry."""
    found = [*check_title(entry, config), *check_summary(entry, config), *check_action(entry, now)]
    folder = source_folder(entry, config)
    for link in body_links(entry):
        url = _resolve(link.url, folder)
        found += [(link.line, message) for message in check_link(url, link, config, site_paths)]
    if entry.action:
        line, written = entry.line_of("action"), entry.action.written_url
        found += [(line, m) for m in check_link(written, Link(line, written, False), config, site_paths)]
    return [Problem(entry.path, line, message, warning=True) for line, message in found]


def check_title(entry: Entry, config: Config) -> Iterator[tuple[int, str]]:
    limit = config.lint.max_title
    if len(entry.title) > limit:
        yield entry.line_of("title"), (f"the title is {len(entry.title)} characters, over {limit}: it is the email "
                                       f"subject, which phones cut short (lint.max_title)")


def check_summary(entry: Entry, config: Config) -> Iterator[tuple[int, str]]:
    limit = config.lint.max_summary
    given = "summary" in dict(entry.lines)
    if entry.retracted:
        return
    if not given:
        yield 1, "no 'summary': add one or two sentences for the email preheader, feeds and listings"
    elif len(entry.summary) > limit:
        yield entry.line_of("summary"), (f"the summary is {len(entry.summary)} characters, over {limit}: "
                                         f"keep it to one or two sentences (lint.max_summary)")


def check_action(entry: Entry, now: datetime) -> Iterator[tuple[int, str]]:
    action = entry.action
    if action is None or entry.retracted:
        return
    line = entry.line_of("action")
    if entry.type == "alert":
        missing = [name for name, value in (("deadline", action.deadline), ("targets", action.targets),
                                            ("asks", action.asks)) if not value]
        if missing:
            yield line, (f"this alert's action has no {_and(missing)}: readers need to know by when, "
                         f"whom to write to and what to ask")
    if action.deadline and action.deadline <= now and entry.action_open(now):
        yield line, (f"the deadline {action.deadline.isoformat()} has passed but the action is still promoted "
                     f"as open: set 'expires' to close it")


def check_link(url: str, link: Link, config: Config, site_paths: set[str]) -> Iterator[str]:
    """Yield what is wrong with one (resolved) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    own = _own_path(url, config)
    if link.media and own is None and (scheme in ("http", "https") or url.startswith("//")):
        yield (f"media from another host ({parts.hostname}): it would be hot-linked and lets that host see "
               f"every reader; save the file under content/ instead")
    elif link.media and own is None and scheme:
        yield f"media from a '{scheme}:' address, which is never published: save the file under content/ instead"
    if scheme == "http":
        yield f"'http://' link to {parts.hostname}: use https:// so readers are not exposed on the network"
    tracking = sorted({key for key, _ in parse_qsl(parts.query, keep_blank_values=True) if is_tracking(key)})
    if tracking:
        yield f"tracking parameter{'s' * (len(tracking) > 1)} {', '.join(tracking)} in a link: remove them"
    if link.media and link.alt is not None and not link.alt.strip():
        yield "an image without alt text: describe it for readers who cannot see it"
    elif link.media and link.alt is None:
        yield "an image without an alt attribute: describe it for readers who cannot see it"
    if own is not None and not _exists(own, site_paths):
        yield f"a link to /{own}, which is not a page or file of the site"


def body_links(entry: Entry) -> list[Link]:
    """Find every link and embedded media URL in the Markdown body, with its file line."""
    lines = entry.body.split("\n")
    definitions = _definitions(lines)
    links: list[Link] = []
    fence, indented = "", False
    for index, raw in enumerate(lines):
        number = entry.body_line + index
        opener = _FENCE.match(raw)
        if fence:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                fence = ""
            continue
        if opener:
            fence = opener.group(1)
            continue
        code_line = raw.startswith(("    ", "\t"))
        indented = code_line and (indented or index == 0 or not lines[index - 1].strip()) or (indented and not raw.strip())
        if indented:
            continue  # an indented code block runs on over indented and blank lines
        links += _line_links(_CODE_SPAN.sub(lambda m: " " * len(m.group(0)), raw), number, definitions)
    return links


def _line_links(text: str, number: int, definitions: dict[str, str]) -> list[Link]:
    links: list[Link] = []
    definition = _REFERENCE_DEFINITION.match(text)
    if definition:
        return [Link(number, _unbracket(definition.group(2)), False)]
    rest = text
    for match in _INLINE.finditer(text):
        bang, label, url = match.groups()
        links.append(Link(number, _unbracket(url), bool(bang), label if bang else None))
        rest = rest.replace(match.group(0), " " * len(match.group(0)), 1)
    for match in _REFERENCE_USE.finditer(rest):
        bang, label, ref = match.groups()
        key = _label(ref or label)
        if key in definitions and bang:
            links.append(Link(number, definitions[key], True, label))
    for match in _AUTOLINK.finditer(rest):
        links.append(Link(number, match.group(1), False))
    for match in _HTML_TAG.finditer(rest):
        links += _tag_links(match.group(1).lower(), match.group(2), number)
    return links


def _tag_links(tag: str, attributes: str, number: int) -> list[Link]:
    values = {name.lower(): html.unescape(value.strip("\"'")) if value else "" for name, value in
              _HTML_ATTRIBUTE.findall(attributes)}
    alt = values.get("alt") if tag == "img" else "not an image"
    links = []
    for name in sorted(URL_ATTRIBUTES & values.keys()):
        media = tag in MEDIA_TAGS and name != "href"
        urls = [p.split()[0] for p in values[name].split(",") if p.strip()] if name == "srcset" else [values[name]]
        links += [Link(number, url.strip(), media, alt if media else None) for url in urls]
    return links


def _definitions(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        match = _REFERENCE_DEFINITION.match(line)
        if match:
            found.setdefault(_label(match.group(1)), _unbracket(match.group(2)))
    return found


def _label(text: str) -> str:
    return " ".join(text.lower().split())


def _unbracket(url: str) -> str:
    return url[1:-1].strip() if url.startswith("<") and url.endswith(">") else url


def _resolve(url: str, folder: str) -> str:
    """Resolve a relative link against the entry's folder, as markup does when rendering."""
    parts = urlsplit(url)
    if parts.scheme or url.startswith(("#", "/", "?")) or not url:
        return url
    resolved = "/" + posixpath.normpath(posixpath.join(folder, parts.path)).lstrip("/")
    if parts.path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    return resolved + (f"?{parts.query}" if parts.query else "")


def _own_path(url: str, config: Config) -> str | None:
    """Return the output path a URL on this site points at ('' for the home), None for others."""
    parts = urlsplit(url)
    base = urlsplit(config.base_url)
    if parts.scheme in ("http", "https") or url.startswith("//"):
        if (parts.hostname or "").lower() != (base.hostname or "").lower() or not parts.path.startswith(base.path):
            return None
        return unquote(parts.path[len(base.path):])
    if parts.scheme or not parts.path.startswith("/"):
        return None
    return unquote(parts.path.lstrip("/"))


def _exists(path: str, site_paths: set[str]) -> bool:
    if path == "" or path.endswith("/"):
        return path + "index.html" in site_paths
    return path in site_paths or f"{path}/index.html" in site_paths


def heavy_images(files: Mapping[str, bytes], config: Config) -> list[Problem]:
    """Warn about each published content image over lint.max_image_kb: too heavy for an email."""
    limit = config.lint.max_image_kb
    content = config.path("content")
    return [Problem(f"{config.content_dir}/{path}", 1, f"the image is {-(-len(data) // 1024)} KB as published, "
                                                       f"over {limit} KB: too heavy for email on a phone; make it "
                                                       f"smaller (lint.max_image_kb)", warning=True)
            for path, data in files.items()
            if is_image(path) and len(data) > limit * 1024 and (content / path).is_file()]


def long_subjects(files: Mapping[str, bytes], entries: Iterable[Entry], config: Config) -> list[Problem]:
    """Warn where a built email's subject (title plus prefix or issue name) runs over lint.max_title."""
    limit = config.lint.max_title
    entries = list(entries)
    problems = []
    for path, data in sorted(files.items()):
        parts = path.split("/")
        if len(parts) != 4 or (parts[0], parts[3]) not in (("alerts", "alert.eml"), ("newsletter", "issue.eml")):
            continue
        subject = str(BytesParser(policy=policy.default).parsebytes(data, headersonly=True).get("Subject", ""))
        if len(subject) <= limit:
            continue
        lang, name = parts[1], parts[2]
        leading = [e for e in entries if e.lang == lang and (e.slug == name if parts[0] == "alerts" else e.title in subject)]
        entry = max(leading, key=lambda e: len(e.title), default=None)
        if entry is not None and len(entry.title) <= limit:  # a long title is reported on its own
            problems.append(Problem(entry.path, entry.line_of("title"), (
                f"the subject of the email {'/'.join(parts[:3])} is {len(subject)} characters with this title, "
                f"over {limit}: phones cut it short; shorten the title (lint.max_title)"), warning=True))
    return problems


def _and(words: list[str]) -> str:
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]
