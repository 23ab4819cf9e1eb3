"""Markdown to safe HTML: Python-Markdown with a fixed set of extensions, then an nh3 allowlist.

Links in the result are site-absolute (`/images/x.png`); `relink` later points them at
the archive's relative root or at `base_url`, depending on where the HTML goes.

Most of an entry's rendering time goes to Python-Markdown trying extensions and inline patterns
on text that cannot contain their syntax. So each text is converted with a `Flavour`: the full
configuration minus the parts that need characters the text does not contain. A part is left
out only when it cannot act on such text, so the HTML is byte-identical to the full
configuration's (tests/test_markdown_fast.py compares the two on every kind of input we know).
Within a conversion, inline patterns and block processors are passed over, in the same way,
on each piece of text that lacks what they need.
"""

from __future__ import annotations

import functools
import html
import posixpath
import re
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit
from xml.etree import ElementTree

import markdown
import nh3
from markdown.extensions.toc import (
    TocTreeprocessor,
    remove_fnrefs,
    render_inner_html,
    slugify_unicode,
    strip_tags,
    unique,
)
from markdown.inlinepatterns import (
    ImageInlineProcessor,
    ImageReferenceInlineProcessor,
    LinkInlineProcessor,
    ReferenceInlineProcessor,
    ShortImageReferenceInlineProcessor,
    ShortReferenceInlineProcessor,
)
from markdown.treeprocessors import InlineProcessor, Treeprocessor, UnescapeTreeprocessor
from markdown.util import AtomicString, Registry

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
        for link in root.iter("a"):  # before images turn into links, whose targets are already resolved
            if link.get("href"):
                link.set("href", self.resolve(link.get("href")))
        for parent in root.iter():
            if parent.find("img") is None:  # a C-speed look at the children, instead of a Python loop
                continue
            for index, child in enumerate(list(parent)):
                if child.tag == "img" and child.get("src"):
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


@dataclass(frozen=True)
class Flavour:
    """The part of the configuration a text needs (see flavour_of)."""

    extensions: tuple[str, ...]
    toc_marker: bool = True  # whether toc looks for a '[TOC]' paragraph to replace
    skipped: frozenset[str] = frozenset()  # inline patterns, and "unescape", the text can do without


FULL = Flavour(tuple(EXTENSIONS))

# Whether a text may use an extension. Loose on purpose: a wrong "may" costs a little time, a
# wrong "cannot" would change the HTML. Block processors see the source's lines with prefixes
# removed (quote marks, list markers, indentation, footnote labels), never with characters
# added, so a substring of the source is a sound test; only raw HTML blocks also start new
# lines, after their end tag. A rare character is tested first because a one-character test
# is much faster than a longer one. sane_lists is always on.
_EXTENSION_NEEDS = {
    "tables": lambda text: "|" in text,  # a row splits at pipes
    "fenced_code": lambda text: ("`" in text and "```" in text) or ("~" in text and "~~~" in text),
    "footnotes": lambda text: "^" in text and "[^" in text,
    "abbr": lambda text: "*[" in text,  # a definition line starts '*['
    # A footnote label is a prefix too, and text after a raw HTML block a new line.
    "def_list": lambda text: "<" in text or ("^" in text and "[^" in text) or _may_define(text),
    "toc": lambda text: "#" in text or "=" in text or "-" in text or "[TOC]" in text,  # ATX or setext heading
}
_DEFINITION_MARK = re.compile(r":[ \t]")
_LINE_PREFIX = re.compile(r"[ \t>*+\-.0-9]*")  # what quotes, list markers and indentation leave before it


def _may_define(text: str) -> bool:
    """Whether a line may start, once its quote or list prefix is removed, with def_list's ': '."""
    for mark in _DEFINITION_MARK.finditer(text):
        line = max(text.rfind("\n", 0, mark.start()), text.rfind("\r", 0, mark.start())) + 1
        if _LINE_PREFIX.fullmatch(text, line, mark.start()):
            return True
    return False


# Inline patterns, by name and regular expression (a library that changes either keeps the
# pattern), and the strings of which one must occur for the pattern to change anything. The
# text they search is the source's, cut up, plus placeholders of STX, ETX, letters, digits and ':'.
_PATTERN_NEEDS = {
    ("backtick", r"(?:(?<!\\)((?:\\{2})+)(?=`+)|(?<!\\)`)"): ("`",),
    ("escape", r"\\(.)"): ("\\",),
    # A reference to an undefined name is left as it is, and only a definition ('[x]: url') defines one.
    ("reference", r"(?<!\!)\["): ("]:",),
    ("image_reference", r"\!\["): ("]:",),
    ("short_reference", r"(?<!\!)\["): ("]:",),
    ("short_image_ref", r"\!\["): ("]:",),
    ("link", r"(?<!\!)\["): ("[",),
    ("image_link", r"\!\["): ("![",),
    ("autolink", r"<([A-Za-z][A-Za-z0-9+.-]*://[^<>]*)>"): ("<",),
    ("automail", r"<([^<> !]+@[^@<> ]+)>"): ("<",),
    ("html", r"""(<(\/?+[a-zA-Z][^\s"'<>@]*+(?:\s+[^\s"'=<>]++(?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'|[^\s"'=<>]++))?+)*+"""
             r"""\s*+/?|!--(?:(?!<!--|-->).)*--|[?](?:(?!<[?]|[?]>).)*[?]"""
             r"""|!\[CDATA\[(?:(?!<!\[CDATA\[|\]\]>).)*\]\])>)"""): ("<",),
    ("entity", r"(&(?:\#[0-9]+|\#x[0-9a-fA-F]+|[a-zA-Z0-9]+);)"): ("&",),
    # Two spaces before a newline; Python-Markdown first makes tabs spaces and CR a newline.
    ("linebreak", r"  \n"): ("  ", "\t", "\r"),
    ("em_strong", r"\*|_"): ("*", "_"),
}
_NEEDLES = frozenset(needle for needs in _PATTERN_NEEDS.values() for needle in needs)


# What one piece of text (a paragraph's, an item's, a heading's) must contain for each pattern's
# expression to match in it; Python-Markdown tries every pattern on every piece, most in vain.
_MATCH_NEEDS = {
    "backtick": ("`",), "escape": ("\\",), "footnote": ("[",), "reference": ("[",), "link": ("[",),
    "image_link": ("[",), "image_reference": ("[",), "short_reference": ("[",), "short_image_ref": ("[",),
    "autolink": ("<",), "automail": ("<",), "html": ("<",), "entity": ("&",), "linebreak": ("  \n",),
    "em_strong": ("*", "_"),
}
_INLINE_PRIORITY = 20  # where build_treeprocessors puts "inline" (a test checks the order stays the same)
_FOOTNOTE = ("footnote", r"\[\^([^\]]*)\]")
_MATCH_REGEX = {name: regex for name, regex in [*_PATTERN_NEEDS, _FOOTNOTE]}


class _SniffingInline(InlineProcessor):
    """Python-Markdown's inline processor, passing over a pattern whose expression cannot match.

    `_InlineProcessor__handleInline` is the library's private loop over the patterns, the same
    but for that test: a pattern that cannot match is what the library finds it to be, not
    matched (tests/test_markdown_fast.py compares the HTML with the library's own processor,
    and pins the loop's source). A pattern it does not know is tried as always.
    """

    def __init__(self, md: markdown.Markdown, needs: dict[object, tuple[str, ...]]):
        super().__init__(md)
        self.needs = needs  # pattern object -> strings of which one must occur
        self.sniffed: list[tuple[object, tuple[str, ...] | None]] = []

    def run(self, tree, ancestors=None):
        self.sniffed = [(pattern, self.needs.get(pattern)) for pattern in self.inlinePatterns]
        return super().run(tree, ancestors)

    def _InlineProcessor__handleInline(self, data: str, patternIndex: int = 0) -> str:  # noqa: N802, N803
        if isinstance(data, AtomicString):
            return data
        start = 0
        while patternIndex < len(self.sniffed):
            pattern, needles = self.sniffed[patternIndex]
            if needles is not None:
                for needle in needles:  # a loop, not any(): this runs for every pattern and piece of text
                    if needle in data:
                        break
                else:
                    patternIndex, start = patternIndex + 1, 0  # as when __applyPattern finds no match
                    continue
            data, matched, start = self._InlineProcessor__applyPattern(pattern, data, patternIndex, start)
            if not matched:
                patternIndex += 1
        return data


# What a block must contain for a block processor to take it, by the processor's name, the
# attribute holding the expression it searches for and that expression (a library that changes
# any of them keeps the processor as it is). Python-Markdown asks each processor in turn about
# every block, and most blocks are paragraphs, which only the last one takes. The reference
# processor's test takes every block: its run searches it, and hands back one that does not match.
_BLOCK_NEEDS = {
    ("hashheader", "RE", r"(?:^|\n)(?P<level>#{1,6})(?P<header>(?:\\.|[^\\#]|#+(?=[^#\n]))*?)#*(?:\n|$)"): ("#",),
    ("setextheader", "RE", r"^.*?\n(?:=+|-+)[ ]*(\n|$)"): ("\n=", "\n-"),
    ("hr", "SEARCH_RE", r"^[ ]{0,3}(?=(?P<atomicgroup>(-+[ ]{0,2}){3,}|(_+[ ]{0,2}){3,}|(\*+[ ]{0,2}){3,}))"
                        r"(?P=atomicgroup)[ ]*$"): ("-", "_", "*"),
    ("quote", "RE", r"(^|\n)[ ]{0,3}>[ ]?(.*)"): (">",),
    ("reference", "RE", r"^[ ]{0,3}\[([^\[\]]*)\]:[ ]*(?:\n[ ]*)?([^\s]+)[ ]*(?:\n[ ]*)?"
                        r'((["\'])(.*)\4[ ]*|\((.*)\)[ ]*)?$'): ("]:",),
}


def _sniff_blocks(processors: Registry) -> None:
    """Give each known block processor a test that says no, without searching, to a block lacking what it needs."""
    for (name, attribute, regex), needles in _BLOCK_NEEDS.items():
        processor = processors[name] if name in processors else None
        expression = getattr(processor, attribute, None)
        if expression is not None and expression.pattern == regex:
            processor.test = _sniffed_test(processor.test, needles)


def _sniffed_test(test: Callable[[ElementTree.Element, str], bool], needles: tuple[str, ...]
                  ) -> Callable[[ElementTree.Element, str], bool]:
    """Return `test`, asked only about a block in which one of the needles occurs (False for any other)."""
    if len(needles) == 1:
        needle = needles[0]
        return lambda parent, block: needle in block and test(parent, block)
    return lambda parent, block: any(map(block.__contains__, needles)) and test(parent, block)


class _TextByFind:
    """A link pattern whose getText finds the closing bracket with str.find when no '[' comes
    before it: the library's loop walks the text character by character and, with no nested
    bracket, stops at that same one. Any other text goes to the loop."""

    def getText(self, data: str, index: int) -> tuple[str, int, bool]:  # noqa: N802 (the library's name)
        close = data.find("]", index)
        if close != -1 and data.find("[", index, close) == -1:
            return data[index:close], close + 1, True
        return super().getText(data, index)


class _LinkByFind(_TextByFind):
    """A link or image pattern whose getLink also takes the plain `(url)` by str.find: with no
    parenthesis or quote before the first ')', the library's loop ends there with the same href
    and no title. An <url>, a title, nested parentheses or no ')' go to the loop. Each link took
    about 20 us, 3% of rendering an entry."""

    def getLink(self, data: str, index: int) -> tuple[str, str | None, int, bool]:  # noqa: N802
        match = self.RE_LINK.match(data, pos=index)
        if match and not match.group(1):
            start = match.end()
            close = data.find(")", start)
            if close != -1 and not _LINK_STOPS.search(data, start, close):
                return self.unescape(data[start:close]).strip(), None, close + 1, True
        return super().getLink(data, index)


_LINK_STOPS = re.compile("[(\"']")  # what makes the library's getLink loop do more than find ')'
# The library's link patterns and the same with brackets found by str.find (tests/test_markdown_fast.py
# compares each pair on random text, and pins the library's loops).
_FOUND_BRACKETS = {
    kind: type(f"_Found{kind.__name__}", (mixin, kind), {})
    for mixin, kinds in ((_LinkByFind, (LinkInlineProcessor, ImageInlineProcessor)),
                         (_TextByFind, (ReferenceInlineProcessor, ShortReferenceInlineProcessor,
                                        ImageReferenceInlineProcessor, ShortImageReferenceInlineProcessor)))
    for kind in kinds
}


def _find_brackets(patterns: Registry) -> None:
    """Make each of the library's own link patterns find its brackets by str.find (same object, same place)."""
    for pattern in patterns:
        if type(pattern) in _FOUND_BRACKETS:
            pattern.__class__ = _FOUND_BRACKETS[type(pattern)]  # a subclass adding two methods, no state


class _HeadingIds(TocTreeprocessor):
    """toc when it has only heading ids to set: no '[TOC]' in the text and toc_depth 0 (see _Converter).

    The library's run names each heading by rendering its inner HTML through the serializer
    and every postprocessor, then builds, serializes and post-processes a table of contents
    with no entries that goes nowhere; it took 7% of rendering an entry. This one sets the
    same ids in the same order. A heading of plain text (no child element, none of & < >
    and no placeholder character) is named by its words, which is what that rendering
    returns for it; any other goes the library's way. md.toc is the library's empty table,
    made once.
    """

    def run(self, doc: ElementTree.Element) -> None:
        used_ids = {el.attrib["id"] for el in doc.iter() if "id" in el.attrib}
        id_counters: dict[str, int] = {}
        for el in doc.iter():
            if isinstance(el.tag, str) and self.header_rgx.match(el.tag):
                self.set_level(el)
                name = _heading_name(el, self.md)
                if "id" not in el.attrib:
                    el.attrib["id"] = unique(self.slugify(html.unescape(name), self.sep), used_ids, id_counters)
                el.attrib.pop("data-toc-label", None)  # the library drops it once read, for a table we do not build
        self.md.toc_tokens = []
        self.md.toc = self.empty_toc  # made by _ids_only, as the library's run writes it


_NOT_PLAIN = re.compile("[&<>\x02\x03]")  # what the serializer escapes, and the placeholders' marks


def _heading_name(el: ElementTree.Element, md: markdown.Markdown) -> str:
    """Return the name toc gives a heading: its inner HTML as the page shows it, tags removed, spaces collapsed."""
    text = el.text
    if not len(el) and isinstance(text, str) and not _NOT_PLAIN.search(text):
        return " ".join(text.split())
    return strip_tags(render_inner_html(remove_fnrefs(el), md))


def _ids_only(tree: Registry) -> None:
    """Make toc a _HeadingIds (same object, same place) if it builds no table: no marker, no depth, no links."""
    toc = tree["toc"] if "toc" in tree else None
    if (type(toc) is TocTreeprocessor and not toc.marker and toc.toc_bottom < toc.toc_top
            and not toc.use_anchors and not toc.use_permalinks):
        table = toc.md.serializer(toc.build_toc_div([]))
        for postprocessor in toc.md.postprocessors:
            table = postprocessor.run(table)
        toc.__class__ = _HeadingIds
        toc.empty_toc = table


def _block_level_test(md: markdown.Markdown) -> Callable[[object], bool]:
    """Return md.is_block_level, asking a set: the library's looks the tag up in a list of 50.

    prettify asks it about every element and its first child, some 180 times an entry, and
    most tags (a, em, strong, code) are in no list, so each question compared all 50 names.
    The extensions add their tags while the instance is built, before this copy is taken;
    nothing changes the list later.
    """
    blocks = frozenset(md.block_level_elements)
    return lambda tag: isinstance(tag, str) and tag.lower().rstrip("/") in blocks


def flavour_of(text: str) -> Flavour:
    """Return the configuration that renders `text` exactly as the full one does, and faster."""
    if "\x02" in text or "\x03" in text:
        return FULL  # Python-Markdown deletes these, which could join the characters around them
    extensions = tuple(name for name in EXTENSIONS if name not in _EXTENSION_NEEDS or _EXTENSION_NEEDS[name](text))
    found = {needle for needle in _NEEDLES if needle in text}
    skipped = {name for (name, _), needs in _PATTERN_NEEDS.items() if found.isdisjoint(needs)}
    if "\\" not in text:
        skipped.add("unescape")  # only the escape and backtick patterns leave anything for it to restore
    return Flavour(extensions, "[TOC]" in text, frozenset(skipped))


class _Converter:
    """One Markdown instance configured for a flavour, with our link resolver added (and, if `sniffing`,
    its inline patterns and block processors tried only on text that has what they need)."""

    def __init__(self, flavour: Flavour, sniffing: bool = True) -> None:
        configs = {name: EXTENSION_CONFIGS[name] for name in flavour.extensions if name in EXTENSION_CONFIGS}
        if not flavour.toc_marker and "toc" in configs:
            # Nothing to replace by a table of contents, so none to build (its ids are set all the same).
            configs["toc"] = {**configs["toc"], "marker": "", "toc_depth": 0}
        self.md = markdown.Markdown(extensions=list(flavour.extensions), extension_configs=configs,
                                    output_format="html")
        patterns = self.md.inlinePatterns
        for name, regex in _PATTERN_NEEDS:
            if name in flavour.skipped and name in patterns and patterns[name].pattern == regex:
                patterns.deregister(name)
        tree = self.md.treeprocessors
        if "unescape" in flavour.skipped and "unescape" in tree and isinstance(tree["unescape"], UnescapeTreeprocessor):
            tree.deregister("unescape")
        if sniffing:
            if type(tree["inline"]) is InlineProcessor:
                needs = {patterns[name]: needles for name, needles in _MATCH_NEEDS.items()
                         if name in patterns and patterns[name].pattern == _MATCH_REGEX[name]}
                tree.register(_SniffingInline(self.md, needs), "inline", _INLINE_PRIORITY)
            _sniff_blocks(self.md.parser.blockprocessors)
            _find_brackets(patterns)
            self.md.is_block_level = _block_level_test(self.md)
            _ids_only(tree)
        self.links = _LocalLinks(self.md)
        self.md.treeprocessors.register(self.links, "local_links", 5)

    def convert(self, text: str, folder: str) -> str:
        self.links.folder = folder
        try:
            return self.md.reset().convert(text)
        finally:
            self.md.reset()


# Each process keeps the converters of the flavours it met last (a site has a few dozen at
# most; one costs about 100 KB, and building it as much as rendering a few entries).
_converter = functools.lru_cache(maxsize=64)(_Converter)


def to_html(text: str, folder: str = "/", flavour: Flavour | None = None, sniffing: bool = True) -> str:
    """Convert Markdown to unsanitised HTML, with `flavour` or else the one `text` needs (and, if not
    `sniffing`, without _SniffingInline and the sniffed block tests: the tests' reference)."""
    try:
        return _converter(flavour or flavour_of(text), sniffing).convert(text, folder)
    except BaseException:
        # A conversion that fails half-way (a RecursionError on deep nesting) leaves its block
        # parser in a list or quote state that reset() keeps, and every later text would lose
        # its paragraphs: start again from new instances.
        _converter.cache_clear()
        raise


def render_markdown(source: str, folder: str = "/") -> Rendered:
    """Render an entry body; `folder` is its site-absolute folder, for relative links."""
    body = sanitize(to_html(clean_text(source), folder))
    return Rendered(body, first_paragraph(body))


def sanitize(fragment: str) -> str:
    """Keep only allowlisted tags, attributes and URL schemes; drop off-site image sources."""
    return clean_text(_IMAGE_WITHOUT_SOURCE.sub("", _cleaner().clean(fragment)))


@functools.cache
def _cleaner() -> nh3.Cleaner:
    # Built once: nh3.clean() builds its allowlists again on every call, 16% of sanitising an entry.
    return nh3.Cleaner(tags=TAGS, attributes=ATTRIBUTES, allowed_classes=CLASSES, url_schemes=SCHEMES,
                       attribute_filter=_filter_attribute, link_rel="noopener noreferrer", strip_comments=True)


def _filter_attribute(element: str, attribute: str, value: str) -> str | None:
    if attribute == "src" and (is_remote(value) or not value.startswith("/")):
        return None  # raw HTML images may only come from this site
    if attribute == "href":
        return strip_tracking(value)  # safety rule 1: no tracking parameters in any output
    if attribute in ("width", "height") and not value.isdigit():
        return None
    return value


def relink(fragment: str, prefix: str) -> str:
    """Point site-absolute links at `prefix`: a relative root or `base_url` (ending in '/').

    What _SITE_LINK.sub(lambda m: m.group(1) + prefix, fragment) does, by str.find: the regex
    tried every character of every body, for each page, feed and email that shows it. Each of
    its matches ends in '="/', and no two can overlap; tests/test_markup.py compares the two.
    """
    parts, copied = [], 0
    position = fragment.find('="/')
    while position != -1:
        slash = position + 2
        if fragment[slash + 1:slash + 2] != "/" and (_after_space(fragment, position, "href")
                                                     or _after_space(fragment, position, "src")):
            parts += (fragment[copied:slash], prefix)
            copied = slash + 1
        position = fragment.find('="/', slash + 1)
    parts.append(fragment[copied:])
    return "".join(parts)


def _after_space(text: str, position: int, name: str) -> bool:
    """Tell whether `name` ends at `position` with white space (re's \\s: isspace()) before it."""
    start = position - len(name)
    return start > 0 and text.startswith(name, start) and text[start - 1].isspace()


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
