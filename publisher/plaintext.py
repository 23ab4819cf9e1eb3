"""Plain text for emails, written from an entry's structure (headings, lists, links).

The sanitised body HTML of an entry is its structure: paragraphs, lists, quotes, tables.
We walk that tree, not the finished email, and write text that reads at 72 columns, with
every link as a numbered reference listed at the end of the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from html import unescape
from html.parser import HTMLParser

WIDTH = 72
BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "table",
          "thead", "tbody", "tfoot", "tr", "td", "th", "hr", "div", "dl", "dt", "dd", "caption"}
VOID = {"br", "hr", "img", "wbr"}
BREAK = "\u2028"  # LINE SEPARATOR stands for <br> until wrapping
# A start or end tag as an HTML serializer (nh3's, our templates') writes it: lower-case
# names, attribute values in double quotes. Anything else goes to html.parser.
_TAG = re.compile(r'<(/?)([a-z][a-z0-9]*)((?:\s+[a-z_:][-a-z0-9_:.]*(?:="[^"]*")?)*)\s*(/?)>')
_ATTRIBUTE = re.compile(r'([a-z_:][-a-z0-9_:.]*)(?:="([^"]*)")?')
_RAW_TEXT = ("script", "style")  # html.parser reads their content as text


@dataclass
class Node:
    """An element of the body tree: a tag, its attributes and children (text or nodes)."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list["Node | str"] = field(default_factory=list)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root")
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        _close(self.stack, tag)

    def handle_data(self, data):
        self.stack[-1].children.append(data)


@lru_cache(maxsize=256)  # a parsed body is ~5 times its HTML: 4,096 of them held 200 MB at 10,000 entries
def parse(fragment: str) -> Node:
    """Parse an HTML fragment into a small tree (cached: an entry's body is written for its
    issue and its alert; the tree is only ever read)."""
    tree = _parse_serialized(fragment)
    if tree is not None:
        return tree
    builder = _TreeBuilder()
    builder.feed(fragment)
    builder.close()
    return builder.root


def _parse_serialized(fragment: str) -> Node | None:
    """Parse the HTML a serializer writes as html.parser and _TreeBuilder would, several times
    faster; return None at anything else (a comment, a stray '<', single quotes, upper case)."""
    # One split, not a match object a tag: text, then closing, tag, attributes, self-closing and
    # the text after it, for each tag in turn.
    pieces = _TAG.split(fragment)
    if any("<" in text for text in pieces[::5]):
        return None
    root = Node("root")
    stack = [root]
    for index in range(1, len(pieces), 5):
        text, closing, tag, attributes, self_closing = pieces[index - 1:index + 4]
        if text:
            stack[-1].children.append(unescape(text))
        if tag in _RAW_TEXT or closing and (attributes or self_closing):
            return None
        if not closing:
            node = Node(tag, {name: unescape(value) for name, value in _ATTRIBUTE.findall(attributes)}
                        if attributes else {})
            stack[-1].children.append(node)
            if tag not in VOID:
                stack.append(node)
        if closing or self_closing:  # <p/> opens and closes, as html.parser's handle_startendtag does
            _close(stack, tag)
    if pieces[-1]:
        stack[-1].children.append(unescape(pieces[-1]))
    return root


def _close(stack: list[Node], tag: str) -> None:
    """Close the innermost open element of this tag, and those inside it; ignore a stray end tag."""
    if len(stack) > 1 and stack[-1].tag == tag:  # the usual case, as the loop below would find it first
        del stack[-1]
        return
    for index in range(len(stack) - 1, 0, -1):
        if stack[index].tag == tag:
            del stack[index:]
            return


@lru_cache(maxsize=8192)
def _wrap(words: str, width: int, first: str, indent: str) -> tuple[str, ...]:
    """Wrap single-spaced words greedily, never breaking one (cached: paragraphs recur, in an
    alert and its issue, in the two copies of a message a site's own templates render).

    The lines are those of textwrap.wrap(words, width, initial_indent=first, subsequent_indent=indent,
    break_long_words=False, break_on_hyphens=False), at a fraction of its cost: a word too
    long for a line stands on a line of its own.
    """
    lines: list[str] = []
    prefix, rest = first, words
    while True:  # a line at a time: the greedy line ends at the last space its room reaches
        room = width - len(prefix)
        if len(rest) <= room:
            break
        cut = rest.rfind(" ", 0, room + 1) if room >= 0 else -1
        if cut == -1:  # the first word alone is too long: it stands on its own line
            cut = rest.find(" ")
            if cut == -1:
                break
        lines.append(prefix + rest[:cut])
        prefix, rest = indent, rest[cut + 1:]
    lines.append(prefix + rest)
    return tuple(lines)


class PlainText:
    """Write text for one message, numbering its links as it goes."""

    def __init__(self, width: int = WIDTH, bodies: dict | None = None):
        self.width = width
        self.links: list[str] = []
        self._numbers: dict[str, int] = {}
        # Entry bodies already written, shared by the texts of one message (its everyday and
        # discreet copies): keyed on the links numbered so far, since they change the marks.
        self._bodies = {} if bodies is None else bodies

    def ref(self, url: str) -> str:
        """Return the reference mark of a URL, e.g. '[3]', adding it to the list once."""
        if url not in self._numbers:
            self.links.append(url)
            self._numbers[url] = len(self.links)
        return f"[{self._numbers[url]}]"

    def link(self, text: str, url: str) -> str:
        """Return link text followed by its reference mark."""
        return f"{text} {self.ref(url)}".strip()

    def wrap(self, text: str, indent: str = "", first: str | None = None) -> str:
        """Wrap one paragraph to the width, never breaking words or URLs."""
        first = indent if first is None else first
        lines = []
        for part in text.split(BREAK):  # a <br> keeps its line break; other newlines are spaces
            words = " ".join(part.split())
            if words:
                lines += _wrap(words, self.width, first if not lines else indent, indent)
        return "\n".join(lines)

    def underline(self, text: str, char: str = "-") -> str:
        """Return a heading with a rule under it as long as the heading's longest line."""
        wrapped = self.wrap(text)
        return f"{wrapped}\n{char * min(self.width, max(len(line) for line in wrapped.splitlines()))}"

    def body(self, fragment: str, indent: str = "") -> str:
        """Return an HTML fragment (an entry body) as wrapped text, blocks separated by blank lines."""
        fragment = str(fragment)  # not Markup: html.parser slices it, and Markup wraps every slice
        key = (fragment, indent, self.width, tuple(self.links))
        if key not in self._bodies:
            known = len(self.links)
            text = "\n\n".join(self._blocks(parse(fragment), indent)).rstrip()
            self._bodies[key] = text, tuple(self.links[known:])
        text, added = self._bodies[key]
        for url in added:  # the same links, numbered as the first time
            self.ref(url)
        return text

    def references(self, heading: str) -> str:
        """Return the numbered list of every link used so far."""
        if not self.links:
            return ""
        lines = [f"[{n}] {url.removeprefix('mailto:')}" for n, url in enumerate(self.links, 1)]
        return f"{heading}\n\n" + "\n".join(lines)

    # Blocks ---------------------------------------------------------------------

    def _blocks(self, node: Node, indent: str) -> list[str]:
        blocks: list[str] = []
        inline: list[Node | str] = []

        def flush() -> None:
            text = self._inline(inline)
            if text.strip():
                blocks.append(self.wrap(text, indent))
            inline.clear()

        for child in node.children:
            if isinstance(child, Node) and child.tag in BLOCKS:
                flush()
                blocks.extend(b for b in self._block(child, indent) if b.strip())
            else:
                inline.append(child)
        flush()
        return blocks

    def _block(self, node: Node, indent: str) -> list[str]:
        tag = node.tag
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            text = " ".join(self._inline(node.children).split())
            return [indent + self.underline(text, "~").replace("\n", "\n" + indent)]
        if tag in ("ul", "ol"):
            return [self._list(node, indent)]
        if tag == "blockquote":
            inner = self._blocks(node, "")
            lines = [line for block in inner for line in [*block.splitlines(), ""]][:-1]
            return ["\n".join(f"{indent}> {line}".rstrip() for line in lines)]
        if tag == "pre":
            code = _text_of(node).strip("\n")
            return ["\n".join(indent + "    " + line for line in code.splitlines())]
        if tag == "hr":
            return [indent + "* * *"]
        if tag == "table":
            return [self._table(node, indent)]
        if tag == "dl":
            parts = []
            for child in _elements(node):
                if child.tag == "dt":
                    parts.append(self.wrap(self._inline(child.children), indent))
                elif child.tag == "dd":
                    parts.extend(self._blocks(child, indent + "    "))
            return ["\n".join(parts)]
        return self._blocks(node, indent)

    def _list(self, node: Node, indent: str) -> str:
        items = [c for c in _elements(node) if c.tag == "li"]
        start = int(node.attrs.get("start", "1") or 1) if node.attrs.get("start", "1").isdigit() else 1
        lines = []
        for number, item in enumerate(items, start):
            marker = f"{number}. " if node.tag == "ol" else "- "
            inner = self._blocks(item, indent + " " * len(marker))
            if not inner:
                continue
            first = inner[0]
            first = indent + marker + first[len(indent) + len(marker):]
            lines.append("\n".join([first, *inner[1:]]))
        return "\n".join(lines)

    def _table(self, node: Node, indent: str) -> str:
        rows = []
        for row in _descendants(node, "tr"):
            cells = [" ".join(self._inline(c.children).split()) for c in _elements(row) if c.tag in ("td", "th")]
            rows.append(self.wrap(" | ".join(cells), indent + "  ", first=indent))
        return "\n".join(rows)

    # Inline ---------------------------------------------------------------------

    def _inline(self, children: list[Node | str]) -> str:
        parts: list[str] = []
        for child in children:
            if isinstance(child, str):
                parts.append(child)
            elif child.tag == "br":
                parts.append(BREAK)
            elif child.tag == "img":
                parts.append(f"[{child.attrs.get('alt') or '…'}]")
            elif child.tag == "a" and "footnote-backref" in child.attrs.get("class", ""):
                continue  # the way back up the page; text has no page
            elif child.tag == "a":
                parts.append(self._anchor(child))
            elif child.tag == "sup":
                parts.append(f"({self._inline(child.children)})")
            elif child.tag in BLOCKS:
                parts.append(" " + " ".join(self._blocks(child, "")) + " ")
            else:
                parts.append(self._inline(child.children))
        return "".join(parts)

    def _anchor(self, node: Node) -> str:
        text = self._inline(node.children)
        href = node.attrs.get("href", "")
        if not href or href.startswith("#"):
            return text  # in-page anchors (footnotes) mean nothing in plain text
        if href.removeprefix("mailto:") == text.strip():
            return text
        return f"{text} {self.ref(href)}"


def _elements(node: Node) -> list[Node]:
    return [c for c in node.children if isinstance(c, Node)]


def _descendants(node: Node, tag: str) -> list[Node]:
    found = []
    for child in _elements(node):
        if child.tag == tag:
            found.append(child)
        else:
            found.extend(_descendants(child, tag))
    return found


def _text_of(node: Node) -> str:
    return "".join(c if isinstance(c, str) else _text_of(c) for c in node.children)
