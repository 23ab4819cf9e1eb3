"""The per-text Markdown configuration (markup.flavour_of) renders exactly what the full one does.

Every body we know is converted three times, with the flavour its text gets, with the full
configuration, and with the full configuration as Python-Markdown runs it (its own inline
processor, not markup._SniffingInline, and block processors whose tests search every block),
and the HTML (or the error) must be the same: the sample site, the golden site,
the hostile corpus, the XSS vectors, snippets that put each extension's syntax in odd places,
random mixtures of those, random strings of syntax characters, and a generated corpus.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import TocTreeprocessor

from publisher import markup
from publisher.content import split_front_matter
from test_hostile import CORPUS
from test_sanitize import VECTORS

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO.parent / "shared" / "bench" / "gen_corpus.py"

TRICKY = [
    # footnotes
    "Text[^1] and again[^1].\n\n[^1]: The note.",
    "| a | b |\n|---|---|\n| x[^n] | `a|b` |\n\n[^n]: A note from a table.",
    "[^1]: Defined first.\n\nThen used[^1].",
    "[^a]: : a definition line inside a footnote\n\nref[^a]",
    "- item[^x]\n\n    [^x]: An indented definition.",
    "> quote[^q]\n>\n> [^q]: A note in a quote.",
    "Undefined [^nope] reference and [^] empty.",
    "Two[^1] notes[^2].\n\n[^2]: Second.\n[^1]: First,\n    continued.",
    # abbreviations
    "*[HTML]: Hyper Text Markup Language\n\nThe HTML spec.",
    "The HTML spec.\n*[HTML]: Hyper Text Markup Language",
    "> *[W3C]: World Wide Web Consortium\n> W3C rules.",
    "- *[EU]: European Union\n- the EU",
    "*[HTML]: ''\n\nHTML *[not]: an abbr",
    "*[copy]: copyright\n\n&copy; 2024, an abbreviation inside an entity",
    # definition lists
    "Apple\n:   A fruit.\n\nOrange\n: Another one.",
    "- a list\n\nTerm\n: a definition after a list",
    "> Term\n> : a definition in a quote",
    "1. Term\n\n    : a definition in an ordered item",
    "Term\n\n:\ta definition after a tab",
    "Term\r\n: a definition after CRLF",
    "Term\n  : indented by two\n\n    more of it",
    "Term\n    : indented by four is code",
    "Time: 10:00 and key: value",
    # tables
    "a | b\n--|--\n1 | 2",
    "| a |\n|---|\n| `x|y` |",
    "| left | right |\n|:---|---:|\n| \\| escaped | *em* |",
    "- | in | list |\n  |---|---|\n  | 1 | 2 |",
    "> | q | t |\n> |---|---|\n> | 1 | 2 |",
    "| not | a table\nbecause no separator",
    # fenced code
    "```python\nx = 1 | 2\n# not a heading\n```",
    "~~~\n# not a heading [^1] *[X]: y\n~~~",
    "- item\n\n    ```\n    code in a list\n    ```",
    "> ```\n> in a quote\n> ```",
    "````\n```\nnested\n```\n````",
    "``inline `` code `` and ` single `",
    "Indented code:\n\n    <b>& stays</b>\n    line  \n",
    # headings and the table of contents
    "# Title\n\n## Title\n\n## Title",
    "Setext\n======\n\nSub\n---",
    "> # A heading in a quote\n>\n> Sub\n> ---",
    "- # A heading in a list",
    "[TOC]\n\n# A\n\n## B\n\n### C",
    "[TOC]",
    "Para\n\n   [TOC]   \n\n# x",
    "Not a marker: [TOC] inline, and \\[TOC\\] escaped.",
    "# Heading with `code` and *em* and [link](x) and &amp; and <b>b</b>",
    "# 1\n\n# 1\n\n# 1_1\n\n#\n\n# ✓ Ünïcode Заголовок",
    "# Heading[^1]\n\n[^1]: A note.",
    "#NoSpace\n\n####### seven\n\n## Closed ##",
    "---\n\n***\n\n___\n\n- - -",
    # inline patterns
    "Escapes: \\*not em\\* \\[not link\\] \\\\ \\` \\# \\|",
    "Line with two spaces  \nbreak, and trailing spaces at the end  ",
    "Tab\tbreak\t\nnext",
    "CR\r\nline  \r\nbreak\rlone",
    "<https://example.org/a?b=1&c=2> and <team@example.org> and <mailto:x@y.org>",
    "Entities &amp; &#169; &#xA9; &copy and AT&T &#65 &#x;",
    "Inline <span>html</span>, <!-- a comment -->, <?php x ?> and <![CDATA[ y ]]>",
    "[ref] and [text][ref] and ![img][ref] and ![ref] and [Ref][]\n\n[ref]: https://example.org/ \"Title\"",
    "[undefined] and [x][undefined] and ![y][undefined] and [x] [y]",
    "Under_scores in_words and __strong__ and _em_ and snake_case_name",
    "***strong em*** and **strong *nested em*** and *a **b** c*",
    "Link [with *em* and `code`](https://example.org/ \"t\") and ![alt *x*](/i.png)",
    "[link](<url with spaces>) and [empty]() and [x](relative/page.md#frag)",
    "`code with [brackets](x) and *stars* and <b>`",
    "\\\\` backslash then backtick ` and \\\\\\`",
    "![remote](https://evil.example/x.png) and ![local](pic.png \"title\")",
    "A [link\nacross lines](x) and *em\nacross lines*",
    "Stars * alone * and _ alone _ and 2*3*4",
    # raw HTML blocks
    "<div>\n*not markdown*\n</div>\n\nAfter.",
    "<table><tr><td>| pipe |</td></tr></table>",
    "<!--\n[^1]: hidden\n-->",
    "<div>x</div>: a definition line once the block ends\n\n<p>a</p>  \n: another",
    # control characters Python-Markdown removes itself
    "a\x02b\x03c",
    "*\x02[HTML]: x\n\nHTML",
    "Term\n:\x02 def",
]

FRAGMENTS = TRICKY + [
    "Plain words.", "A *word* and a **word**.", "1. one\n2. two", "- a\n- b\n\n- c", "    code block",
    "> quoted\nlazy", ": colon line", "| x |", "[^1]: note", "*[X]: ex", "Term", "[x]: /target", "X and x",
    "---", "===", "#", "```", "~~~", "", "  ", "\t", "[", "]", "!", "<", "&", "\\", "`", "*", "_",
    "<div>", "</div>", "<br>", "<hr/>", "<!-- c -->", "<p>p</p>", "&#65", ":", "^", "|", "\r",
]
PREFIXES = ["", "", "", "> ", "- ", "1. ", "    ", "> - ", "* > ", "  ", "[^1]: ", ": "]


def mixtures(count: int, seed: int = 8) -> list[str]:
    """Random documents of fragments, each maybe behind a quote, list or footnote prefix."""
    rng = random.Random(seed)
    docs = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(2, 6)):
            prefix = rng.choice(PREFIXES)
            parts.append("\n".join(prefix + line for line in rng.choice(FRAGMENTS).split("\n")))
        docs.append("".join(part + rng.choice(["\n", "\n\n", " ", ""]) for part in parts))
    return docs


TOKENS = list(" \n\t\r>*-+_#=|:`~[]^!<&\\()0.1aAb") + [
    "\n\n", "    ", "  \n", "1. ", "- ", "> ", ": ", "---", "===", "```", "~~~", "[TOC]", "[^1]", "[^1]: ", "*[A]: x",
    "]:", "[x]: /u", "![", "a|b", "<div>", "</div>", "<b>", "&amp;", "http://x.org", "<a@b.c>",
]


def token_soups(count: int, seed: int = 8) -> list[str]:
    """Short random strings of syntax characters and tokens: the odd places nobody thinks of."""
    rng = random.Random(seed)
    return ["".join(rng.choice(TOKENS) for _ in range(rng.randint(1, 40))) for _ in range(count)]


def bodies_of(paths: list[Path]) -> list[str]:
    texts = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        split = split_front_matter(text)
        texts += [text, split[1]] if isinstance(split, tuple) else [text]
    return texts


# Texts Python-Markdown fails on: the failure must be the same one.
FAILING = ["- " * 1000 + "x", "1. " * 1000 + "x", "> - " * 300 + "x", "[^]:[^n]:\n[^x]:"]


def hostile_texts(limit: int = 1000) -> list[str]:
    """Each hostile file's text and body, cut short: their shape matters here, not their size."""
    texts = list(FAILING)
    for files in CORPUS.values():
        for value in files.values():
            if isinstance(value, (str, bytes)):
                text = value if isinstance(value, str) else value.decode("utf-8", errors="replace")
                split = split_front_matter(text.replace("\r\n", "\n"))
                texts += [text[:limit]] + ([split[1][:limit]] if isinstance(split, tuple) else [])
    return texts


def outcome(text: str, flavour: markup.Flavour | None, sniffing: bool = True) -> str:
    try:
        return markup.to_html(text, "/2017/", flavour, sniffing)
    except Exception as exc:  # noqa: BLE001 - a failure must be the same failure, whatever it is
        return f"raised {type(exc).__name__}"


def assert_same_as_full(texts: list[str]) -> None:
    different = [text for text in texts
                 if not outcome(text, None) == outcome(text, markup.FULL) == outcome(text, markup.FULL, sniffing=False)]
    assert not different, f"{len(different)} of {len(texts)} differ, e.g. {different[0][:300]!r}"


@pytest.mark.parametrize("group", ["sample site", "golden site", "hostile corpus", "XSS vectors", "tricky snippets",
                                   "mixtures", "token soups"])
def test_the_sniffed_flavour_renders_what_the_full_configuration_does(group):
    texts = {
        "sample site": lambda: bodies_of(sorted((REPO / "content").rglob("*.md"))),
        "golden site": lambda: bodies_of(sorted((REPO / "tests" / "golden_site").rglob("*.md"))),
        "hostile corpus": hostile_texts,
        "XSS vectors": lambda: [f"Before.\n\n{vector}\n\nAfter." for vector in VECTORS],
        "tricky snippets": lambda: TRICKY,
        "mixtures": lambda: mixtures(600),
        "token soups": lambda: token_soups(1000),
    }[group]()
    assert len(texts) >= 10
    assert_same_as_full(texts)


@pytest.mark.skipif(not GENERATOR.is_file(), reason="needs shared/bench/gen_corpus.py beside the repository")
def test_a_generated_corpus_renders_as_with_the_full_configuration(tmp_path):
    subprocess.run([sys.executable, str(GENERATOR), "--n", "20", "--layout", "plain", "--out", str(tmp_path)],
                   check=True, stdout=subprocess.DEVNULL)
    texts = bodies_of(sorted(tmp_path.rglob("*.md")))
    assert len(texts) == 40
    assert_same_as_full(texts)


def without(part: str) -> markup.Flavour:
    """The full configuration minus one extension, inline pattern or 'unescape'."""
    if part in markup.EXTENSIONS:
        return markup.Flavour(tuple(e for e in markup.EXTENSIONS if e != part))
    return markup.Flavour(markup.FULL.extensions, skipped=frozenset({part}))


@pytest.mark.parametrize("part", sorted(set(markup.EXTENSIONS) - {"sane_lists"})
                         + sorted({name for name, _ in markup._PATTERN_NEEDS} | {"unescape"}))
def test_the_snippets_need_every_part_the_sniffing_may_leave_out(part):
    # Otherwise the comparison above would prove nothing about that part.
    assert any(outcome(text, without(part)) != outcome(text, markup.FULL) for text in TRICKY)


def test_the_snippets_need_the_toc_marker():
    no_marker = markup.Flavour(markup.FULL.extensions, toc_marker=False)
    assert any(outcome(text, no_marker) != outcome(text, markup.FULL) for text in TRICKY)


def test_the_patterns_left_out_are_the_ones_python_markdown_has():
    # A pattern whose expression changed is kept (slower, still right): this says it is time to look again.
    patterns = markup._converter(markup.FULL).md.inlinePatterns
    changed = [name for name, regex in markup._PATTERN_NEEDS if patterns[name].pattern != regex]
    assert not changed, f"Python-Markdown changed {changed}: check what they need and update markup._PATTERN_NEEDS"


def test_a_plain_entry_gets_a_small_flavour():
    flavour = markup.flavour_of("## News\n\nThe *court* ruled, see [the ruling](https://example.org/r).\n\n- a\n- b")
    assert flavour.extensions == ("toc", "sane_lists")
    assert not flavour.toc_marker
    assert {"backtick", "escape", "reference", "html", "entity", "linebreak", "unescape"} <= flavour.skipped
    assert not {"link", "em_strong"} & flavour.skipped


def test_the_inline_loop_sniffing_copies_is_the_librarys():
    # _SniffingInline replaces InlineProcessor.__handleInline with a copy plus one test; a library
    # that changes the loop must be looked at again (the comparisons above would likely fail too).
    import hashlib
    import inspect

    from markdown.treeprocessors import InlineProcessor

    source = inspect.getsource(InlineProcessor._InlineProcessor__handleInline)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == "fe27babc114aed0a", source


def test_sniffing_knows_every_pattern_and_skips_text_without_syntax():
    from markdown.treeprocessors import InlineProcessor

    converter = markup._converter(markup.FULL)
    inline = converter.md.treeprocessors["inline"]
    assert isinstance(inline, markup._SniffingInline)
    assert len(inline.needs) == len(converter.md.inlinePatterns)  # no pattern tried on every text
    stock = markup._converter(markup.FULL, False).md.treeprocessors
    assert [type(t) for t in converter.md.treeprocessors] == [  # it runs where the library's would
        markup._SniffingInline if type(t) is InlineProcessor else type(t) for t in stock]
    tried = []
    apply = inline._InlineProcessor__applyPattern
    inline._InlineProcessor__applyPattern = lambda *args: tried.append(args[1]) or apply(*args)
    try:
        converter.convert("## A heading\n\nPlain words only.\n\n- an item\n\nSome *emphasis* here.", "/")
    finally:
        del inline._InlineProcessor__applyPattern
    assert tried and all("*" in text for text in tried)  # only the paragraph with syntax


def test_the_block_processors_sniffed_are_the_ones_python_markdown_has():
    # A processor whose expression changed is asked about every block (slower, still right): time to look again.
    processors = markup._converter(markup.FULL).md.parser.blockprocessors
    unsniffed = [name for name, _, _ in markup._BLOCK_NEEDS if "test" not in vars(processors[name])]
    assert not unsniffed, f"Python-Markdown changed {unsniffed}: check what they need and update markup._BLOCK_NEEDS"
    stock = markup._converter(markup.FULL, False).md.parser.blockprocessors
    assert not any("test" in vars(processor) for processor in stock)  # the reference is the library's own


@pytest.mark.parametrize("name", [name for name, _, _ in markup._BLOCK_NEEDS])
def test_the_snippets_need_every_block_processor_sniffed(name):
    # Otherwise the comparisons above would prove nothing about that processor's needles.
    converter = markup._Converter(markup.FULL, sniffing=False)
    converter.md.parser.blockprocessors[name].test = lambda parent, block: False
    assert any(converter.convert(text, "/2017/") != outcome(text, markup.FULL) for text in TRICKY)


def test_block_processors_are_asked_only_about_blocks_with_their_syntax(monkeypatch):
    from markdown import blockprocessors

    asked = []
    for kind in (blockprocessors.HashHeaderProcessor, blockprocessors.SetextHeaderProcessor,
                 blockprocessors.HRProcessor, blockprocessors.BlockQuoteProcessor, blockprocessors.ReferenceProcessor):
        test = kind.test
        monkeypatch.setattr(kind, "test", lambda self, parent, block, test=test: asked.append(type(self)) or test(
            self, parent, block))
    converter = markup._Converter(markup.FULL)
    assert converter.convert("Plain words only.\n\nAnother paragraph, with no syntax.", "/") == (
        "<p>Plain words only.</p>\n<p>Another paragraph, with no syntax.</p>")
    assert asked == []
    converter.convert("# A heading", "/")
    assert asked == [blockprocessors.HashHeaderProcessor]


def test_link_brackets_found_by_find_are_the_ones_the_librarys_loops_find():
    # Every index of random text heavy in brackets, parentheses, quotes and angle brackets: both
    # methods of each pattern give what the library's own give, fast path or not.
    found = markup._converter(markup.FULL).md
    stock = markup._converter(markup.FULL, False).md
    found.convert("x"), stock.convert("x")  # unescape() reads the inline processor's stash
    rng = random.Random(8)
    pieces = ["[", "]", "(", ")", "<", ">", "'", '"', " ", "\n", "a", "b", "url", "http://x.org/a_b", "\\", "\x02"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 30))) for _ in range(1000)]
    texts += ["[a](b)", "[a](b 'c')", "[a](<b> \"c\")", "[a]( b )", "[a](b(c))", "[a](b", "[a[b]](c)", "[]()", "[a]"]
    # Places where getText's str.find path applies: the comparisons below must not be only the library's loops.
    fast_paths = sum(text.find("]", i) != -1 and "[" not in text[i:text.find("]", i)] for text in texts for i in range(len(text)))
    for name in ("link", "image_link", "reference", "short_reference", "image_reference", "short_image_ref"):
        mine, theirs = found.inlinePatterns[name], stock.inlinePatterns[name]
        assert type(mine) is markup._FOUND_BRACKETS[type(theirs)]
        methods = ["getText", "getLink"] if isinstance(mine, markup._LinkByFind) else ["getText"]
        for text in texts:
            for index in range(len(text) + 1):
                for method in methods:
                    assert getattr(mine, method)(text, index) == getattr(theirs, method)(text, index), (name, method, text, index)
    assert fast_paths > 3000  # the str.find paths were taken, not only the library's loops


def test_the_link_loops_found_by_find_are_the_librarys():
    # _TextByFind and _LinkByFind stand for what these loops return in the plain case; a library
    # that changes them must be looked at again.
    import hashlib
    import inspect

    from markdown.inlinepatterns import LinkInlineProcessor

    sources = inspect.getsource(LinkInlineProcessor.getText) + inspect.getsource(LinkInlineProcessor.getLink)
    assert hashlib.sha256(sources.encode()).hexdigest()[:16] == "c584b5acf2e20d61", sources


def test_block_level_tags_are_asked_of_a_set_that_answers_as_the_librarys_list():
    import markdown
    from xml.etree import ElementTree

    for flavour in (markup.FULL, markup.flavour_of("Plain words.")):
        md = markup._converter(flavour).md
        assert "is_block_level" in vars(md)  # the set is what is asked
        stock = markup._converter(flavour, False).md
        assert "is_block_level" not in vars(stock)  # the tests' reference keeps the library's method
        names = [*md.block_level_elements, "a", "em", "strong", "code", "span", "img", "br", "x-p", ""]
        tags = [variant for name in names for variant in (name, name.upper(), name + "/", name.title(), f" {name}")]
        tags += [ElementTree.Comment, ElementTree.ProcessingInstruction, None, 1]
        assert any(markdown.Markdown.is_block_level(md, tag) for tag in tags)
        for tag in tags:
            assert md.is_block_level(tag) is markdown.Markdown.is_block_level(md, tag), tag


def heading_soups(count: int) -> list[str]:
    """Documents of headings (ATX and setext) made of words, entities, markup, escapes, footnotes and repeats."""
    rng = random.Random(11)
    pieces = ["News", "news", "Xəbər", "İstanbul", "Новости", "&", "&amp;", "&#38;", "<b>bold</b>", "<br>", "*em*",
              "**strong**", "`a < b`", "[link](/x)", "[^1]", "\\*", "\\#", "<!-- c -->", "  ", "1", "-", "_", "'", '"']
    texts = []
    for _ in range(count):
        lines = []
        for _ in range(rng.randint(1, 6)):
            words = " ".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
            lines.append(f"{'#' * rng.randint(1, 6)} {words}" if rng.random() < 0.8 else f"{words or 'x'}\n---")
        lines.append("Text.[^1]\n\n[^1]: A note.")
        texts.append("\n\n".join(lines))
    return texts


def test_heading_ids_set_without_a_table_are_the_librarys(monkeypatch):
    texts = [text for text in heading_soups(600) + TRICKY if not markup.flavour_of(text).toc_marker]
    assert len(texts) > 600
    plain = []
    monkeypatch.setattr(markup, "_heading_name", lambda el, md, name=markup._heading_name: plain.append(
        not len(el) and isinstance(el.text, str) and not markup._NOT_PLAIN.search(el.text)) or name(el, md))
    for text in texts:
        flavour = markup.flavour_of(text)
        assert outcome(text, flavour) == outcome(text, flavour, sniffing=False) == outcome(text, markup.FULL), text
        mine, theirs = markup._converter(flavour).md, markup._converter(flavour, False).md
        if "toc" in flavour.extensions:
            assert type(mine.treeprocessors["toc"]) is markup._HeadingIds
            assert type(theirs.treeprocessors["toc"]) is TocTreeprocessor
            mine.convert(text), theirs.convert(text)
            assert (mine.toc, mine.toc_tokens) == (theirs.toc, theirs.toc_tokens)
    assert sum(plain) > 300 and plain.count(False) > 300  # both ways of naming a heading were compared


def test_a_table_of_contents_is_the_librarys_to_build():
    flavour = markup.flavour_of("[TOC]\n\n# One\n\n## Two")
    assert flavour.toc_marker
    assert type(markup._converter(flavour).md.treeprocessors["toc"]) is TocTreeprocessor
    assert 'class="toc"' in markup.to_html("[TOC]\n\n# One\n\n## Two")


def test_the_toc_code_heading_ids_stand_for_is_the_librarys():
    # _HeadingIds does what these do when no table is built; a library that changes them must be looked at again.
    import hashlib
    import inspect

    from markdown.extensions import toc

    sources = "".join(inspect.getsource(f) for f in (toc.TocTreeprocessor.run, toc.render_inner_html, toc.strip_tags,
                                                       toc.run_postprocessors))
    assert hashlib.sha256(sources.encode()).hexdigest()[:16] == "3bff1f0a98f2f898", sources
