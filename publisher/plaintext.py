"""Plain text for emails, written from an entry's structure (headings, lists, links).

The sanitised body HTML of an entry is its structure: paragraphs, lists, quotes, tables.
We walk that tree, not the finished email, and write text that reads at 72 columns, with
every link as a numbered reference listed at the end of the message.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser

WIDTH = 72
BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "table",
          "thead", "tbody", "tfoot", "tr", "td", "th", "hr", "div", "dl", "dt", "dd", "caption"}
VOID = {"br", "hr", "img", "wbr"}
BREAK = "\u2028"  # LINE SEPARATOR stands for <br> until wrapping


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
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


@lru_cache(maxsize=4096)
def parse(fragment: str) -> Node:
    """Parse an HTML fragment into a small tree (cached: an entry's body is written for its
    issue, its discreet twin and its alert; the tree is only ever read)."""
    builder = _TreeBuilder()
    builder.feed(fragment)
    builder.close()
    return builder.root


@lru_cache(maxsize=65536)
def _wrap(words: str, width: int, first: str, indent: str) -> tuple[str, ...]:
    """Wrap a paragraph (cached: the discreet twin of a message wraps the same paragraphs)."""
    return tuple(textwrap.wrap(words, width, initial_indent=first, subsequent_indent=indent,
                               break_long_words=False, break_on_hyphens=False))


class PlainText:
    """Write text for one message, numbering its links as it goes."""

    def __init__(self, width: int = WIDTH):
        self.width = width
        self.links: list[str] = []

    def ref(self, url: str) -> str:
        """Return the reference mark of a URL, e.g. '[3]', adding it to the list once."""
        if url not in self.links:
            self.links.append(url)
        return f"[{self.links.index(url) + 1}]"

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
        return "\n\n".join(self._blocks(parse(fragment), indent)).rstrip()

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
