"""Markdown to safe HTML: one configured Python-Markdown, then an nh3 allowlist.

Links in the result are site-absolute (`/images/x.png`); `relink` later points them at
the archive's relative root or at `base_url`, depending on where the HTML goes.
"""

from __future__ import annotations

import html
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.etree import ElementTree

import markdown
import nh3
from markdown.extensions.toc import slugify_unicode
from markdown.treeprocessors import Treeprocessor

from publisher.text import clean_text
from publisher.tracking import strip_tracking

EXTENSIONS = ["tables", "fenced_code", "footnotes", "toc", "sane_lists", "def_list", "abbr"]
EXTENSION_CONFIGS = {
    "toc": {"slugify": slugify_unicode, "permalink": False},
    "tables": {"use_align_attribute": True},
}
TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark",
    "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table", "tbody",
    "td", "tfoot", "th", "thead", "tr", "u", "ul",
}
ATTRIBUTES = {
    "a": {"href", "title", "id"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
    "li": {"id"},
    "sup": {"id"},
    **{f"h{n}": {"id"} for n in range(1, 7)},
}
CLASSES = {"div": {"footnote"}, "a": {"footnote-ref", "footnote-backref"}, "code": set()}
SCHEMES = {"https", "http", "mailto"}
_SITE_LINK = re.compile(r'(\s(?:href|src)=")/(?!/)')
_FIRST_PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.S)
_TAG = re.compile(r"<[^>]+>")
_IMAGE_WITHOUT_SOURCE = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")


@dataclass(frozen=True)
class Rendered:
    """An entry body as sanitised HTML, and a summary taken from it."""

    html: str
    first_paragraph: str


class _LocalLinks(Treeprocessor):
    """Resolve relative links against the entry's folder; turn remote images into links."""

    def __init__(self, md: markdown.Markdown):
        super().__init__(md)
        self.folder = "/"

    def run(self, root: ElementTree.Element) -> None:
        for parent in root.iter():
            for index, child in enumerate(list(parent)):
                if child.tag == "a" and child.get("href"):
                    child.set("href", self.resolve(child.get("href")))
                elif child.tag == "img" and child.get("src"):
                    src = self.resolve(child.get("src"))
                    if is_remote(src):
                        parent[index] = _image_link(child, src)
                    else:
                        child.set("src", src)

    def resolve(self, url: str) -> str:
        # Autolinked addresses arrive entity-obfuscated behind Markdown's '&' placeholder.
        url = html.unescape(url.replace(markdown.util.AMP_SUBSTITUTE, "&")).strip()
        parts = urlsplit(url)
        if parts.scheme or url.startswith(("#", "/", "?")) or not url:
            return url
        resolved = posixpath.normpath(posixpath.join(self.folder, parts.path))
        resolved = "/" + resolved.lstrip("/")
        if parts.path.endswith("/") and not resolved.endswith("/"):
            resolved += "/"
        return resolved + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")


def _image_link(img: ElementTree.Element, src: str) -> ElementTree.Element:
    """Replace a remote image by a link to it: nothing loads from another host."""
    link = ElementTree.Element("a", {"href": src})
    link.text = "[" + (img.get("alt") or src) + "]"
    link.tail = img.tail
    return link


def is_remote(url: str) -> bool:
    return bool(urlsplit(url).scheme) or url.startswith("//")


class _Renderer:
    """Hold the one configured Markdown instance of this process."""

    def __init__(self) -> None:
        self.md = markdown.Markdown(extensions=EXTENSIONS, extension_configs=EXTENSION_CONFIGS, output_format="html")
        self.links = _LocalLinks(self.md)
        self.md.treeprocessors.register(self.links, "local_links", 5)

    def render(self, source: str, folder: str) -> str:
        self.links.folder = folder
        try:
            return self.md.reset().convert(source)
        finally:
            self.md.reset()


_renderer: _Renderer | None = None


def render_markdown(source: str, folder: str = "/") -> Rendered:
    """Render an entry body; `folder` is its site-absolute folder, for relative links."""
    global _renderer
    if _renderer is None:
        _renderer = _Renderer()
    try:
        html_ = _renderer.render(clean_text(source), folder)
    except BaseException:
        # A conversion that fails half-way (a RecursionError on deep nesting) leaves the block
        # parser in a list or quote state that reset() keeps, and every later text would lose
        # its paragraphs: start again from a new instance.
        _renderer = None
        raise
    body = sanitize(html_)
    return Rendered(body, first_paragraph(body))


def sanitize(fragment: str) -> str:
    """Keep only allowlisted tags, attributes and URL schemes; drop off-site image sources."""
    cleaned = nh3.clean(
        fragment,
        tags=TAGS,
        attributes=ATTRIBUTES,
        allowed_classes=CLASSES,
        url_schemes=SCHEMES,
        attribute_filter=_filter_attribute,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    return clean_text(_IMAGE_WITHOUT_SOURCE.sub("", cleaned))


def _filter_attribute(element: str, attribute: str, value: str) -> str | None:
    if attribute == "src" and (is_remote(value) or not value.startswith("/")):
        return None  # raw HTML images may only come from this site
    if attribute == "href":
        return strip_tracking(value)  # safety rule 1: no tracking parameters in any output
    if attribute in ("width", "height") and not value.isdigit():
        return None
    return value


def relink(fragment: str, prefix: str) -> str:
    """Point site-absolute links at `prefix`: a relative root or `base_url` (ending in '/')."""
    return _SITE_LINK.sub(lambda m: m.group(1) + prefix, fragment)


def first_paragraph(fragment: str, limit: int = 200) -> str:
    """Return the first paragraph as plain text, cut at a word near `limit` characters."""
    match = _FIRST_PARAGRAPH.search(fragment)
    text = html.unescape(_TAG.sub("", match.group(1))) if match else ""
    return shorten(" ".join(text.split()), limit)


def shorten(text: str, limit: int) -> str:
    """Cut text at a word boundary, adding an ellipsis when anything was cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:.–—-")
    return cut + "…"
